// Independent safety checkers for a Raft cluster, fed with what the nodes' shells observe (what
// reached durable storage, what was applied, who claims leadership). They never look inside
// the core beyond its public accessors, so a bug in the core cannot hide itself here.
//
// Checked (Raft paper Figure 3 properties):
//   - election safety: at most one leader per term;
//   - log matching: two durable logs holding an entry with the same index and term hold the
//     same entries up to it (tracked with a chain hash per (index, term));
//   - leader completeness: a new leader's durable log holds every committed entry;
//   - state machine safety: no two nodes apply different entries at one index; applies are
//     contiguous;
//   - no committed entry lost: no durable log ever replaces a committed entry;
//   - linearizable reads: a ReadIndex answer is at or above every index committed before the
//     read was issued.
// It does not check liveness; the simulator does (with a stated bound).

import type { Entry, LogIndex, NodeId, Term } from '../types.js';

export interface Violation {
  readonly kind:
    | 'election-safety'
    | 'log-matching'
    | 'leader-completeness'
    | 'state-machine-safety'
    | 'committed-entry-lost'
    | 'linearizability'
    | 'liveness';
  readonly detail: string;
}

/** A 32-bit hash of an entry's identity (type and payload bytes). */
export function entryKey(e: Pick<Entry, 'type' | 'data'>): number {
  let h = 0x811c9dc5 ^ e.type;
  const d = e.data;
  for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i]!, 0x01000193);
  return h >>> 0;
}

/** The chain hash of a log prefix: chain(i) = mix(chain(i - 1), term(i), key(i)); chain(0) = 0. */
export function chainNext(prev: number, term: number, key: number): number {
  const lo = prev % 0x200000;
  const hi = Math.floor(prev / 0x200000);
  let a = Math.imul(hi ^ term, 0x9e3779b1) ^ key;
  a = Math.imul(a ^ (a >>> 15), 0x85ebca77);
  let b = Math.imul(lo ^ key, 0xc2b2ae3d) ^ term;
  b = Math.imul(b ^ (b >>> 13), 0x27d4eb2f) ^ a;
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}

interface CommittedRecord {
  readonly term: Term;
  readonly key: number;
  readonly chain: number;
}

/** One node's durable log as the checker sees it: (term, key, chain) from `base` + 1 on. */
export class DurableLogMirror {
  base: LogIndex = 0 as LogIndex;
  baseTerm: Term = 0 as Term;
  baseChain = 0;
  terms: Term[] = [];
  keys: number[] = [];
  chains: number[] = [];

  lastIndex(): LogIndex {
    return (this.base + this.terms.length) as LogIndex;
  }
  chainAt(index: number): number | undefined {
    if (index === this.base) return this.baseChain;
    if (index < this.base || index > this.lastIndex()) return undefined;
    return this.chains[index - this.base - 1];
  }
  termAt(index: number): Term | undefined {
    if (index === this.base) return this.baseTerm;
    return this.terms[index - this.base - 1];
  }
  keyAt(index: number): number | undefined {
    return this.keys[index - this.base - 1];
  }
  /** Mirrors `append` (truncate the suffix, then add); returns the first index written. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let first = entries[0]!.index;
    let skip = 0;
    if (first <= this.base) {
      skip = this.base + 1 - first;
      first = (this.base + 1) as LogIndex;
    }
    const keep = first - this.base - 1;
    this.terms.length = keep;
    this.keys.length = keep;
    this.chains.length = keep;
    let chain = keep === 0 ? this.baseChain : this.chains[keep - 1]!;
    for (let i = skip; i < entries.length; i++) {
      const e = entries[i]!;
      const key = entryKey(e);
      chain = chainNext(chain, e.term, key);
      this.terms.push(e.term);
      this.keys.push(key);
      this.chains.push(chain);
    }
  }
  restore(index: LogIndex, term: Term, chain: number): void {
    this.base = index;
    this.baseTerm = term;
    this.baseChain = chain;
    this.terms = [];
    this.keys = [];
    this.chains = [];
  }
  compact(index: LogIndex): void {
    if (index <= this.base) return;
    const k = index - this.base;
    this.baseTerm = this.terms[k - 1]!;
    this.baseChain = this.chains[k - 1]!;
    this.base = index;
    this.terms = this.terms.slice(k);
    this.keys = this.keys.slice(k);
    this.chains = this.chains.slice(k);
  }
}

export class SafetyChecker {
  readonly violations: Violation[] = [];
  private readonly leaders = new Map<number, NodeId>();
  /** (index, term) -> chain hash, over every durable log ever seen. */
  private readonly chainsByIndexTerm = new Map<number, number>();
  private readonly committed: CommittedRecord[] = [];
  private readonly appliedTo = new Map<NodeId, number>();
  /** Per node: its durable log equalled the committed log up to this index when last seen. */
  private readonly matched = new Map<NodeId, number>();

  /** The highest index known committed (by any node's durable hard state). */
  get committedMax(): LogIndex {
    return this.committed.length as LogIndex;
  }

  committedKeyAt(index: number): number | undefined {
    return this.committed[index - 1]?.key;
  }
  committedChainAt(index: number): number | undefined {
    if (index === 0) return 0;
    return this.committed[index - 1]?.chain;
  }

  private fail(kind: Violation['kind'], detail: string): void {
    if (this.violations.length < 20) this.violations.push({ kind, detail });
  }

  /** Called whenever a node is seen as leader of `term`. */
  observeLeader(node: NodeId, term: Term): void {
    const prev = this.leaders.get(term);
    if (prev === undefined) this.leaders.set(term, node);
    else if (prev !== node)
      this.fail('election-safety', `nodes ${prev} and ${node} both lead term ${term}`);
  }

  /**
   * After a node made entries [from, mirror.lastIndex()] durable (and possibly its commit index
   * `commit`): log matching, no committed entry lost, and new committed entries recorded.
   */
  observeDurable(node: NodeId, mirror: DurableLogMirror, from: number, commit: number): void {
    const last = mirror.lastIndex();
    for (let i = Math.max(from, mirror.base + 1); i <= last; i++) {
      const term = mirror.termAt(i)!;
      const chain = mirror.chainAt(i)!;
      const k = i * 0x100000 + term; // index < 2^32 and term < 2^20 in any simulated run
      const seen = this.chainsByIndexTerm.get(k);
      if (seen === undefined) this.chainsByIndexTerm.set(k, chain);
      else if (seen !== chain) {
        this.fail(
          'log-matching',
          `node ${node}: entry ${i}/${term} differs from another log's ${i}/${term}`,
        );
      }
    }
    // No committed entry lost: where this node's durable log held the committed prefix, it must
    // still hold it (a stale leader may append other entries at committed indexes; it must
    // never replace committed ones it had).
    const held = this.matched.get(node) ?? 0;
    if (held > mirror.base) {
      const upTo = Math.min(held, last);
      if (upTo < held || mirror.chainAt(upTo) !== this.committedChainAt(upTo)) {
        this.fail(
          'committed-entry-lost',
          `node ${node}: durable log held committed entries up to ${held}, now differs at or below it (rewritten from ${from})`,
        );
      }
    }
    // Record what this node's commit index newly covers.
    for (let i = this.committed.length + 1; i <= commit; i++) {
      const term = mirror.termAt(i);
      const key = mirror.keyAt(i);
      const chain = mirror.chainAt(i);
      if (term === undefined || key === undefined || chain === undefined) break;
      const prevChain = this.committedChainAt(i - 1);
      if (prevChain !== undefined && i - 1 >= mirror.base && mirror.chainAt(i - 1) !== prevChain) {
        this.fail(
          'committed-entry-lost',
          `node ${node}: commits ${i} on a log that differs below it`,
        );
        break;
      }
      this.committed.push({ term, key, chain });
    }
    this.matched.set(node, this.matchedPrefix(mirror));
  }

  /** The highest index up to which `mirror` equals the committed log (prefix property). */
  private matchedPrefix(mirror: DurableLogMirror): number {
    let lo: number = mirror.base;
    if (this.committedChainAt(lo) !== mirror.baseChain) return 0;
    let hi = Math.min(mirror.lastIndex(), this.committed.length);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (mirror.chainAt(mid) === this.committedChainAt(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** A node became leader: its durable log (after its first persist as leader) must hold all committed entries. */
  observeLeaderLog(node: NodeId, term: Term, mirror: DurableLogMirror): void {
    const c = this.committed.length;
    if (c === 0) return;
    if (mirror.base >= c) {
      if (mirror.base === c && mirror.baseChain !== this.committed[c - 1]!.chain) {
        this.fail('leader-completeness', `leader ${node} (term ${term}) snapshot at ${c} differs`);
      }
      return;
    }
    const chain = mirror.chainAt(c);
    if (chain !== this.committed[c - 1]!.chain) {
      this.fail(
        'leader-completeness',
        `leader ${node} of term ${term} lacks committed entry ${c} (log ends at ${mirror.lastIndex()})`,
      );
    }
  }

  /** A node applied `entry` (in order), or installed a snapshot at `index` with prefix `chain`. */
  observeApply(node: NodeId, index: number, term: number, key: number): void {
    const prev = this.appliedTo.get(node) ?? 0;
    if (index !== prev + 1) {
      this.fail('state-machine-safety', `node ${node} applied ${index} after ${prev}`);
    }
    this.appliedTo.set(node, index);
    const c = this.committed[index - 1];
    if (c === undefined) {
      // Applied before any durable hard state said committed: allowed (commit is persisted
      // lazily), but it must then be the entry that gets committed; record it now.
      if (index === this.committed.length + 1) {
        const prevChain = this.committedChainAt(index - 1) ?? 0;
        this.committed.push({ term: term as Term, key, chain: chainNext(prevChain, term, key) });
      }
      return;
    }
    if (c.term !== term || c.key !== key) {
      this.fail(
        'state-machine-safety',
        `node ${node} applied ${index}/${term} but ${index}/${c.term} is the committed entry`,
      );
    }
  }

  observeSnapshotInstall(node: NodeId, index: number, chain: number): void {
    const known = this.committedChainAt(index);
    if (known !== undefined && known !== chain) {
      this.fail(
        'state-machine-safety',
        `node ${node} installed a snapshot at ${index} that differs`,
      );
    }
    this.appliedTo.set(node, index);
  }

  /** A node restarted from durable state: it will re-apply from its snapshot. */
  observeRestart(node: NodeId, appliedIndex: number): void {
    this.appliedTo.set(node, appliedIndex);
  }

  /** A ReadIndex answer `index` for a read issued when `committedAtIssue` was committed. */
  observeRead(node: NodeId, context: string, index: number, committedAtIssue: number): void {
    if (index < committedAtIssue) {
      this.fail(
        'linearizability',
        `node ${node}: read ${context} got index ${index} below ${committedAtIssue}, committed before it was issued`,
      );
    }
  }

  recordLiveness(detail: string): void {
    this.fail('liveness', detail);
  }
}
