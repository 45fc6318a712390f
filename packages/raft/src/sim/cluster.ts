// The deterministic simulator: N real `RaftNode`s on a simulated network with a simulated disk
// and clock, driven entirely by one seed (TigerBeetle's VOPR idea, applied to this core).
//
// Faults: message delay (hence reordering), loss and duplication; symmetric partitions and
// one-way link cuts, and healing; crashes that lose every write not yet fsynced (a pending
// Ready is dropped, or a random prefix of its entries survives, as a torn write would) and
// restarts from the durable state; membership changes (add learner, promote, remove, including
// the leader) and leadership transfers during all of it; log compaction with snapshots.
// After every event the SafetyChecker runs on what the node shells observed. When the fault
// phase ends the network heals, crashed nodes restart, and liveness is checked: a leader must
// emerge and commit a new proposal within LIVENESS_TICKS_MAX ticks.
//
// Quiescence (RaftConfig.quiesce) is on for odd seeds: idle groups go silent, and a crashed
// node's peers are told at once (as a transport's closed link would tell them); partitions and
// cuts stay silent, so only messages, proposals and reads wake the nodes they reach. Those
// seeds also have idle spells (no proposals or reads for 100-500 ms) so that groups do quiesce,
// and crashes of quiesced leaders happen (counted as `crash-quiesced-leader`).
//
// It does not model clock drift between nodes (every node ticks on the same simulated clock),
// disk corruption (the storage layer's CRCs own that), or byzantine messages.

import type { RaftConfig } from '../config.js';
import { RaftError } from '../errors.js';
import { RaftNode } from '../raft.js';
import { type SeededRandom, seededRandom } from '../rng.js';
import { MemoryStorage } from '../storage.js';
import type { Entry, EntryRange, LogIndex, Message, NodeId, Ready, Term } from '../types.js';
import { ConfChangeType, StateRole } from '../types.js';
import { chainNext, DurableLogMirror, entryKey, SafetyChecker, type Violation } from './checker.js';
import { ColdStorage } from './cold-storage.js';
import { EventQueue } from './event-queue.js';

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 2;
/**
 * Liveness bound: once every fault is healed, a leader must be elected AND commit a fresh
 * proposal within this many ticks (= 10 election timeouts). The worst case observed over
 * 10,000 seeds is recorded in docs/raft.md; the bound leaves a wide margin above it.
 */
export const LIVENESS_TICKS_MAX = 10 * ELECTION_TICKS;

export interface SimOptions {
  readonly seed: number;
  /** Simulated milliseconds of faults before healing (default 3000). */
  readonly faultPhaseMs?: number;
  /** Test-only unsafe switches passed to every node (to prove the checkers can fail). */
  readonly unsafe?: RaftConfig['unsafe'];
  /**
   * Cold storage: older entries are randomly declared "on disk" (LogStorage.available says
   * no) and loaded 1-3 ticks after the core asks for them in Ready.entriesWanted.
   */
  readonly coldStorage?: boolean;
  /** Receives a line per notable event (for replaying a failing seed). */
  readonly trace?: (line: string) => void;
}

export interface SimResult {
  readonly seed: number;
  readonly steps: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly faultCount: number;
  readonly proposals: number;
  readonly committed: number;
  readonly reads: number;
  readonly violations: readonly Violation[];
  /** Ticks from healing to the first committed proposal of a leader, or null if it never came. */
  readonly livenessTicks: number | null;
  readonly simTimeMs: number;
}

type Event =
  | { kind: 'tick' }
  | { kind: 'deliver'; msg: Message }
  | { kind: 'persisted'; node: NodeId; generation: number }
  | { kind: 'fetched'; node: NodeId; generation: number; range: EntryRange }
  | { kind: 'chaos' }
  | { kind: 'propose' }
  | { kind: 'read' }
  | { kind: 'heal' };

/** Snapshot data of the simulated state machine: the chain hash of the applied prefix. */
function encodeChain(chain: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, chain);
  return out;
}
function decodeChain(data: Uint8Array): number {
  if (data.byteLength === 0) return 0;
  return new DataView(data.buffer, data.byteOffset, 8).getFloat64(0);
}

interface PendingWrite {
  readonly ready: Ready;
  readonly becameLeaderTerm: Term | null;
}

class SimNode {
  raft: RaftNode | null = null;
  readonly storage: MemoryStorage;
  readonly mirror = new DurableLogMirror();
  pending: PendingWrite | null = null;
  generation = 0;
  appliedIndex = 0;
  appliedChain = 0;

  constructor(
    readonly id: NodeId,
    storage: MemoryStorage,
  ) {
    this.storage = storage;
  }
  get alive(): boolean {
    return this.raft !== null;
  }
}

export class Simulation {
  private readonly rng: SeededRandom;
  private readonly queue = new EventQueue<Event>();
  readonly checker = new SafetyChecker();
  private readonly nodes = new Map<NodeId, SimNode>();
  private now = 0;
  private steps = 0;
  private readonly faults: Record<string, number> = {};
  private proposals = 0;
  private reads = 0;
  private proposalSeq = 0;
  private readonly readsIssued = new Map<string, number>();
  private readonly blocked = new Set<number>();
  private healed = false;
  private healedAtTick = 0;
  private ticks = 0;
  private livenessTicks: number | null = null;
  private probe: { index: LogIndex; key: number } | null = null;
  private readonly removed = new Set<NodeId>();
  private readonly everAdded = new Set<NodeId>();
  // Network and disk weather, drawn per seed.
  private delayMinMs: number;
  private delayMaxMs: number;
  private lossRate: number;
  private dupRate: number;
  private readonly fsyncMaxMs: number;
  private readonly compactEvery: number;
  private readonly faultPhaseMs: number;
  private readonly quiesce: boolean;
  /** Idle spell (quiescing seeds): no proposals or reads before this time. */
  private idleUntil = 0;

  constructor(private readonly options: SimOptions) {
    this.rng = seededRandom(options.seed);
    const r = this.rng;
    this.faultPhaseMs = options.faultPhaseMs ?? 3000;
    this.quiesce = (options.seed & 1) === 1;
    this.delayMinMs = 1 + r.int(5);
    this.delayMaxMs = this.delayMinMs + r.int(40);
    this.lossRate = r.chance(0.3) ? 0 : r.float() * 0.1;
    this.dupRate = r.chance(0.5) ? 0 : r.float() * 0.05;
    this.fsyncMaxMs = r.int(8);
    this.compactEvery = 8 + r.int(60);
    const voterCount = r.chance(0.5) ? 3 : 5;
    const spareCount = 2;
    const voters: NodeId[] = [];
    for (let i = 1; i <= voterCount; i++) voters.push(i as NodeId);
    for (let i = 1; i <= voterCount + spareCount; i++) {
      const id = i as NodeId;
      const conf = i <= voterCount ? { voters, learners: [] } : undefined;
      const storage = options.coldStorage ? new ColdStorage(conf) : new MemoryStorage(conf);
      const node = new SimNode(id, storage);
      this.nodes.set(id, node);
      if (i <= voterCount) this.everAdded.add(id);
      this.start(node);
    }
    this.trace(
      `seed ${options.seed}: ${voterCount} voters + ${spareCount} spares, delay ${this.delayMinMs}-${this.delayMaxMs} ms, loss ${this.lossRate.toFixed(3)}, dup ${this.dupRate.toFixed(3)}, fsync <= ${this.fsyncMaxMs} ms, compact every ${this.compactEvery}`,
    );
  }

  private trace(line: string): void {
    this.options.trace?.(`[${String(this.now).padStart(6)}ms] ${line}`);
  }

  private fault(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  private start(node: SimNode): void {
    node.generation++;
    node.raft = new RaftNode(
      {
        id: node.id,
        random: this.rng.fork(),
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: HEARTBEAT_TICKS,
        inflightMsgsMax: 4 + this.rng.int(60),
        inflightBytesMax: 1024 * 1024,
        appendBytesMax: 64 + this.rng.int(512),
        committedBytesMax: 256,
        snapshotTimeoutTicks: 3 * ELECTION_TICKS,
        quiesce: this.quiesce,
        ...(this.options.unsafe ? { unsafe: this.options.unsafe } : {}),
      },
      node.storage,
    );
    const meta = node.storage.snapshotMeta();
    node.appliedIndex = meta.index;
    node.appliedChain = decodeChain(node.storage.snapshot().data);
    node.pending = null;
    this.checker.observeRestart(node.id, meta.index);
  }

  run(): SimResult {
    this.queue.push(TICK_MS, { kind: 'tick' });
    this.queue.push(20, { kind: 'chaos' });
    this.queue.push(5, { kind: 'propose' });
    this.queue.push(30, { kind: 'read' });
    this.queue.push(this.faultPhaseMs, { kind: 'heal' });
    const endTick = Math.ceil(this.faultPhaseMs / TICK_MS) + LIVENESS_TICKS_MAX + 1;
    for (;;) {
      const next = this.queue.pop();
      if (!next) break;
      this.now = next.at;
      this.steps++;
      this.handle(next.event);
      this.checkLeaders();
      if (this.checker.violations.length > 0) break;
      if (this.livenessTicks !== null) break;
      if (this.ticks > endTick) {
        this.checker.recordLiveness(
          `no leader committed a proposal within ${LIVENESS_TICKS_MAX} ticks after healing`,
        );
        break;
      }
    }
    return {
      seed: this.options.seed,
      steps: this.steps,
      faults: this.faults,
      faultCount: Object.values(this.faults).reduce((a, b) => a + b, 0),
      proposals: this.proposals,
      committed: this.checker.committedMax,
      reads: this.reads,
      violations: this.checker.violations,
      livenessTicks: this.livenessTicks,
      simTimeMs: this.now,
    };
  }

  private handle(event: Event): void {
    switch (event.kind) {
      case 'tick':
        this.ticks++;
        for (const node of this.nodes.values()) {
          if (!node.raft) continue;
          if (node.raft.isQuiesced && node.raft.currentRole === StateRole.Leader)
            this.fault('quiesced-leader-tick');
          node.raft.tick();
          this.pump(node);
        }
        if (this.healed) this.checkLiveness();
        this.queue.push(this.now + TICK_MS, { kind: 'tick' });
        return;
      case 'deliver':
        this.deliver(event.msg);
        return;
      case 'persisted': {
        const node = this.nodes.get(event.node)!;
        if (node.generation !== event.generation || !node.pending) return;
        this.completeWrite(node);
        this.pump(node);
        return;
      }
      case 'fetched': {
        const node = this.nodes.get(event.node)!;
        if (node.generation !== event.generation || !node.raft) return;
        (node.storage as ColdStorage).load(event.range);
        this.fault('entries-fetched');
        node.raft.entriesFetched();
        this.pump(node);
        return;
      }
      case 'chaos':
        if (this.healed) return;
        this.chaos();
        this.queue.push(this.now + 20 + this.rng.int(80), { kind: 'chaos' });
        return;
      case 'propose':
        if (this.quiesce && !this.healed && this.rng.chance(0.03)) {
          this.idleUntil = this.now + 100 + this.rng.int(400);
          this.fault('idle-spell');
        }
        if (!this.healed && this.now >= this.idleUntil) this.proposeSomewhere();
        this.queue.push(this.now + 3 + this.rng.int(20), { kind: 'propose' });
        return;
      case 'read':
        if (!this.healed && this.now >= this.idleUntil) this.readSomewhere();
        this.queue.push(this.now + 10 + this.rng.int(60), { kind: 'read' });
        return;
      case 'heal':
        this.heal();
        return;
    }
  }

  // ------------------------------------------------------------ node shell

  /** Takes a Ready if the node has one and no write is in flight. */
  private pump(node: SimNode): void {
    for (let guard = 0; guard < 1000; guard++) {
      const raft = node.raft;
      if (!raft || node.pending || !raft.hasReady()) return;
      const ready = raft.ready();
      const becameLeaderTerm = ready.softState?.role === StateRole.Leader ? raft.currentTerm : null;
      node.pending = { ready, becameLeaderTerm };
      if (ready.mustSync && this.fsyncMaxMs > 0) {
        this.queue.push(this.now + this.rng.int(this.fsyncMaxMs + 1), {
          kind: 'persisted',
          node: node.id,
          generation: node.generation,
        });
        return;
      }
      this.completeWrite(node);
    }
  }

  /** The pending Ready is durable: persist, send, apply, advance (the Ready contract). */
  private completeWrite(node: SimNode): void {
    const { ready, becameLeaderTerm } = node.pending!;
    node.pending = null;
    const raft = node.raft!;
    if (ready.snapshot) {
      const snap = ready.snapshot;
      node.storage.applySnapshot(snap);
      const chain = decodeChain(snap.data);
      node.mirror.restore(snap.meta.index, snap.meta.term, chain);
      this.checker.observeSnapshotInstall(node.id, snap.meta.index, chain);
      node.appliedIndex = snap.meta.index;
      node.appliedChain = chain;
    }
    this.persistEntries(node, ready.entries);
    if (ready.hardState) node.storage.setHardState(ready.hardState);
    this.checker.observeDurable(
      node.id,
      node.mirror,
      ready.entries[0]?.index ?? Number.POSITIVE_INFINITY,
      node.storage.hardState().commit,
    );
    if (becameLeaderTerm !== null)
      this.checker.observeLeaderLog(node.id, becameLeaderTerm, node.mirror);
    for (const m of ready.messages) this.send(m);
    for (const range of ready.entriesWanted) {
      this.queue.push(this.now + TICK_MS * (1 + this.rng.int(3)), {
        kind: 'fetched',
        node: node.id,
        generation: node.generation,
        range,
      });
    }
    for (const e of ready.committedEntries) this.apply(node, e);
    for (const rs of ready.readStates) {
      const issued = this.readsIssued.get(rs.context);
      if (issued !== undefined) this.checker.observeRead(node.id, rs.context, rs.index, issued);
    }
    raft.advance();
    this.maybeCompact(node);
  }

  private persistEntries(node: SimNode, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    node.storage.append(entries);
    node.mirror.append(entries);
  }

  private apply(node: SimNode, e: Entry): void {
    const key = entryKey(e);
    this.checker.observeApply(node.id, e.index, e.term, key);
    node.appliedIndex = e.index;
    node.appliedChain = chainNext(node.appliedChain, e.term, key);
  }

  private maybeCompact(node: SimNode): void {
    const raft = node.raft!;
    const first = node.storage.firstIndex();
    if (node.appliedIndex - first + 1 < this.compactEvery) return;
    const index = node.appliedIndex as LogIndex;
    if (index <= node.storage.snapshotMeta().index) return;
    node.storage.createSnapshot(index, raft.confStateAt(index), encodeChain(node.appliedChain));
    const keep = this.rng.int(4);
    const upTo = Math.max(first, index - keep) as LogIndex;
    node.storage.compact(upTo);
    node.mirror.compact(upTo);
    this.fault('compaction');
  }

  // ------------------------------------------------------------ network

  private send(m: Message): void {
    if (this.rng.chance(this.lossRate)) {
      this.fault('message-lost');
      return;
    }
    const copies = this.rng.chance(this.dupRate) ? 2 : 1;
    if (copies === 2) this.fault('message-duplicated');
    for (let i = 0; i < copies; i++) {
      const delay = this.delayMinMs + this.rng.int(this.delayMaxMs - this.delayMinMs + 1);
      this.queue.push(this.now + delay, { kind: 'deliver', msg: m });
    }
  }

  private deliver(m: Message): void {
    if (this.blocked.has(m.from * 1000 + m.to)) return;
    const node = this.nodes.get(m.to);
    if (!node?.raft) return;
    try {
      node.raft.step(m);
    } catch (err) {
      if (err instanceof RaftError) {
        this.checker.recordLiveness(
          `node ${m.to} rejected a ${m.type} from ${m.from}: ${err.message}`,
        );
        return;
      }
      throw err;
    }
    this.pump(node);
  }

  // ------------------------------------------------------------ clients

  private leaders(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.raft?.currentRole === StateRole.Leader) out.push(n);
    return out;
  }

  private pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.rng.int(items.length)];
  }

  private proposeSomewhere(): void {
    const node = this.pick(this.leaders());
    if (!node?.raft) return;
    const data = new Uint8Array(8 + this.rng.int(24));
    new DataView(data.buffer).setUint32(0, this.options.seed >>> 0);
    new DataView(data.buffer).setUint32(4, ++this.proposalSeq);
    try {
      node.raft.propose(data);
      this.proposals++;
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
    this.pump(node);
  }

  private readSomewhere(): void {
    const alive = [...this.nodes.values()].filter((n) => n.raft !== null);
    const node = this.pick(alive);
    if (!node?.raft) return;
    const context = `r${this.reads + 1}`;
    try {
      node.raft.readIndex(context);
      this.reads++;
      this.readsIssued.set(context, this.checker.committedMax);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
    this.pump(node);
  }

  private checkLeaders(): void {
    for (const n of this.nodes.values()) {
      const raft = n.raft;
      if (raft && raft.currentRole === StateRole.Leader)
        this.checker.observeLeader(n.id, raft.currentTerm);
    }
  }

  // ------------------------------------------------------------ faults

  private chaos(): void {
    if (this.options.coldStorage && this.rng.chance(0.5)) {
      const node = this.pick([...this.nodes.values()]);
      if (node) {
        (node.storage as ColdStorage).evict(this.rng.int(3));
        this.fault('eviction');
      }
    }
    const ids = [...this.nodes.keys()];
    const roll = this.rng.float();
    if (roll < 0.1) {
      // Symmetric partition: a random split into two sides.
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      for (const a of ids)
        for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(a * 1000 + b);
      this.fault('partition');
      this.trace(`partition {${[...side].join(',')}} | rest`);
    } else if (roll < 0.17) {
      const a = this.pick(ids)!;
      const b = this.pick(ids.filter((x) => x !== a))!;
      this.blocked.add(a * 1000 + b);
      this.fault('one-way-cut');
      this.trace(`cut ${a} -> ${b}`);
    } else if (roll < 0.3) {
      this.blocked.clear();
      this.trace('network healed');
    } else if (roll < 0.4) {
      const node = this.pick([...this.nodes.values()].filter((n) => n.raft !== null));
      if (node) this.crash(node);
    } else if (roll < 0.55) {
      const node = this.pick([...this.nodes.values()].filter((n) => n.raft === null));
      if (node) {
        this.start(node);
        this.trace(`restart ${node.id}`);
      }
    } else if (roll < 0.67) {
      this.changeMembership();
    } else if (roll < 0.72) {
      const leader = this.pick(this.leaders());
      const raft = leader?.raft;
      if (raft) {
        const to = this.pick(raft.status().conf.voters.filter((v) => v !== leader.id));
        if (to !== undefined) {
          raft.transferLeadership(to);
          this.fault('leadership-transfer');
          this.trace(`transfer ${leader.id} -> ${to}`);
          this.pump(leader);
        }
      }
    } else if (roll < 0.77) {
      // Network weather changes.
      this.delayMinMs = 1 + this.rng.int(5);
      this.delayMaxMs = this.delayMinMs + this.rng.int(60);
      this.lossRate = this.rng.float() * 0.15;
      this.fault('weather-change');
    }
  }

  private crash(node: SimNode): void {
    if (node.raft?.isQuiesced && node.raft.currentRole === StateRole.Leader)
      this.fault('crash-quiesced-leader');
    const pending = node.pending;
    if (
      pending &&
      !pending.ready.snapshot &&
      pending.ready.entries.length > 0 &&
      this.rng.chance(0.5)
    ) {
      // A torn write: some unsynced entries reached the disk, the hard state did not.
      const n = this.rng.int(pending.ready.entries.length + 1);
      this.persistEntries(node, pending.ready.entries.slice(0, n));
      this.checker.observeDurable(
        node.id,
        node.mirror,
        pending.ready.entries[0]!.index,
        node.storage.hardState().commit,
      );
      this.fault('torn-write');
    }
    node.pending = null;
    node.raft = null;
    node.generation++;
    this.fault('crash');
    this.trace(`crash ${node.id}`);
    // Its links close: every peer's transport reports it unreachable (what wakes quiesced ones).
    for (const peer of this.nodes.values()) {
      if (!peer.raft) continue;
      peer.raft.reportUnreachable(node.id);
      this.pump(peer);
    }
  }

  private changeMembership(): void {
    const leader = this.pick(this.leaders());
    const raft = leader?.raft;
    if (!leader || !raft) return;
    const conf = raft.status().conf;
    const spares = [...this.nodes.keys()].filter((id) => !this.everAdded.has(id));
    const options: Array<() => void> = [];
    const spare = this.pick(spares);
    if (spare !== undefined) {
      options.push(() => {
        raft.proposeConfChange({ type: ConfChangeType.AddLearner, node: spare });
        this.everAdded.add(spare);
        this.trace(`propose add-learner ${spare} at ${leader.id}`);
      });
    }
    const learner = this.pick(conf.learners);
    if (learner !== undefined && conf.voters.length < 5) {
      options.push(() => {
        raft.proposeConfChange({ type: ConfChangeType.AddVoter, node: learner });
        this.trace(`propose promote ${learner} at ${leader.id}`);
      });
    }
    if (conf.voters.length > 3) {
      const victim = this.pick(conf.voters)!;
      options.push(() => {
        raft.proposeConfChange({ type: ConfChangeType.Remove, node: victim });
        this.removed.add(victim);
        this.trace(
          `propose remove ${victim} at ${leader.id}${victim === leader.id ? ' (the leader)' : ''}`,
        );
      });
    }
    const action = this.pick(options);
    if (!action) return;
    try {
      action();
      this.fault('membership-change');
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
    this.pump(leader);
  }

  private heal(): void {
    this.healed = true;
    this.healedAtTick = this.ticks;
    this.blocked.clear();
    this.lossRate = 0;
    this.dupRate = 0;
    this.delayMinMs = 1;
    this.delayMaxMs = 5;
    for (const node of this.nodes.values()) {
      if (!node.raft) this.start(node);
    }
    this.trace('heal: network repaired, every node restarted');
  }

  private checkLiveness(): void {
    if (this.probe) {
      if (this.checker.committedKeyAt(this.probe.index) === this.probe.key) {
        this.livenessTicks = this.ticks - this.healedAtTick;
        this.trace(
          `liveness: probe committed at ${this.probe.index} after ${this.livenessTicks} ticks`,
        );
        return;
      }
    }
    for (const node of this.leaders()) {
      const raft = node.raft!;
      if (this.probe && raft.currentTerm === this.probeTerm) continue;
      const data = new Uint8Array(12);
      new DataView(data.buffer).setUint32(0, 0xfeedface);
      new DataView(data.buffer).setUint32(4, this.ticks);
      new DataView(data.buffer).setUint32(8, node.id);
      try {
        const p = raft.propose(data);
        this.probe = { index: p.index, key: entryKey({ type: 0, data }) };
        this.probeTerm = p.term;
        this.pump(node);
      } catch (err) {
        if (!(err instanceof RaftError)) throw err;
      }
    }
  }
  private probeTerm = 0;
}

export function runSeed(options: SimOptions): SimResult {
  return new Simulation(options).run();
}
