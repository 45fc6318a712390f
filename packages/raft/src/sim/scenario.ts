// The scripted scenario driver (etcd-raft's `interaction_test` idea): a small command language
// that drives a cluster of real RaftNodes step by step, with canonical, diffable output. Used by
// scenario.test.ts on packages/raft/testdata/*.txt.
//
// File format: lines starting with `> ` are commands; the lines after a command, up to the next
// command, are its expected output. `#` lines and blank lines between scenarios are comments.
// Persistence is synchronous (a Ready is durable when processed); the network is a FIFO queue
// that `deliver`/`stabilize` drain, with optional partitions. The SafetyChecker watches
// everything and prints `VIOLATION ...` lines.
//
// Commands:
//   add-nodes N [prevote=false] [checkquorum=false] [unsafe=commit-previous-term|vote-twice]
//   add-spare ID                       a node outside the configuration (to be added later)
//   campaign ID | tick ID [N] | tick-heartbeat ID | tick-election ID
//   propose ID TEXT | propose-conf ID add-learner|add-voter|remove NODE
//   transfer ID TO | read-index ID CONTEXT
//   process-ready ID... | deliver [ID...] | stabilize | drop FROM TO
//   partition IDS / IDS | cut FROM TO | heal
//   crash ID | restart ID | compact ID | status ID... | log ID
//   evict ID [KEEP]   the node's stored entries but the last KEEP (default 0) go "on disk"
//                     (LogStorage.available says no; the core prints `wants [lo, hi)`)
//   fetch ID          loads the ranges the node asked for and calls entriesFetched()

import { decodeConfState } from '../conf.js';
import type { RaftConfig } from '../config.js';
import { RaftError } from '../errors.js';
import { RaftNode } from '../raft.js';
import { seededRandom } from '../rng.js';
import {
  type ConfChangeType,
  type Entry,
  type EntryRange,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  type Ready,
  StateRole,
} from '../types.js';
import { chainNext, DurableLogMirror, entryKey, SafetyChecker } from './checker.js';
import { ColdStorage } from './cold-storage.js';

const text = new TextDecoder();
const utf8 = new TextEncoder();

export function formatEntry(e: Entry): string {
  const id = `${e.index}/${e.term}`;
  if (e.type === EntryType.Conf) {
    const c = decodeConfState(e.data);
    return `${id} conf(v=${c.voters.join(',')}${c.learners.length ? ` l=${c.learners.join(',')}` : ''})`;
  }
  return e.data.byteLength === 0 ? `${id} noop` : `${id} "${text.decode(e.data)}"`;
}

export function formatMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case MessageType.PreVote:
    case MessageType.Vote:
      return `${head} last=${m.index}/${m.logTerm}${m.context ? ` ${m.context}` : ''}`;
    case MessageType.PreVoteResp:
    case MessageType.VoteResp:
      return `${head}${m.reject ? ' rejected' : ' granted'}`;
    case MessageType.Append:
      return `${head} prev=${m.index}/${m.logTerm} commit=${m.commit}${m.entries.length ? ` [${m.entries.map(formatEntry).join(', ')}]` : ''}`;
    case MessageType.AppendResp:
      return m.reject
        ? `${head} rejected index=${m.index} hint=${m.rejectHint}/${m.logTerm}`
        : `${head} index=${m.index}`;
    case MessageType.Heartbeat:
      return `${head} commit=${m.commit}${m.readSeq ? ` read=${m.readSeq}` : ''}`;
    case MessageType.HeartbeatResp:
      return `${head}${m.readSeq ? ` read=${m.readSeq}` : ''}`;
    case MessageType.Snapshot: {
      const s = m.snapshot!.meta;
      return `${head} snap=${s.index}/${s.term} voters=${s.conf.voters.join(',')}`;
    }
    case MessageType.ReadIndex:
      return `${head} ctx=${m.context}`;
    case MessageType.ReadIndexResp:
      return `${head} ctx=${m.context} index=${m.index}`;
    default:
      return head;
  }
}

interface ScenarioNode {
  raft: RaftNode | null;
  readonly storage: ColdStorage;
  readonly mirror: DurableLogMirror;
  /** Ranges the core asked for (Ready.entriesWanted) and `fetch` has not loaded yet. */
  wanted: EntryRange[];
  appliedIndex: number;
  appliedChain: number;
  options: Partial<RaftConfig>;
}

export class ScenarioEnv {
  private readonly nodes = new Map<NodeId, ScenarioNode>();
  private queue: Message[] = [];
  private readonly blocked = new Set<number>();
  readonly checker = new SafetyChecker();
  private violationsPrinted = 0;
  private out: string[] = [];

  /** Runs one command line; returns its output lines. */
  run(line: string): string[] {
    this.out = [];
    const [cmd, ...args] = line.trim().split(/\s+/);
    try {
      this.dispatch(cmd ?? '', args);
    } catch (err) {
      if (err instanceof RaftError) this.out.push(`error ${err.code}: ${err.message}`);
      else throw err;
    }
    const v = this.checker.violations;
    for (; this.violationsPrinted < v.length; this.violationsPrinted++) {
      const x = v[this.violationsPrinted]!;
      this.out.push(`VIOLATION ${x.kind}: ${x.detail}`);
    }
    return this.out;
  }

  private node(arg: string | undefined): ScenarioNode & { raft: RaftNode } {
    const id = Number(arg) as NodeId;
    const n = this.nodes.get(id);
    if (!n) throw new Error(`scenario: no node ${arg}`);
    if (!n.raft) throw new Error(`scenario: node ${arg} is down`);
    return n as ScenarioNode & { raft: RaftNode };
  }

  private dispatch(cmd: string, args: string[]): void {
    switch (cmd) {
      case 'add-nodes':
        this.addNodes(Number(args[0]), args.slice(1));
        return;
      case 'add-spare':
        this.addNode(Number(args[0]) as NodeId, new ColdStorage(), this.lastOptions);
        return;
      case 'campaign':
        this.node(args[0]).raft.campaign();
        return;
      case 'tick': {
        const n = this.node(args[0]);
        for (let i = 0; i < Number(args[1] ?? 1); i++) n.raft.tick();
        return;
      }
      case 'tick-heartbeat': {
        const n = this.node(args[0]);
        for (let i = 0; i < (n.options.heartbeatTicks ?? 1); i++) n.raft.tick();
        return;
      }
      case 'tick-election': {
        const n = this.node(args[0]);
        for (let i = 0; i < 2 * (n.options.electionTicks ?? 10); i++) n.raft.tick();
        return;
      }
      case 'propose': {
        const p = this.node(args[0]).raft.propose(utf8.encode(args.slice(1).join(' ')));
        this.out.push(`proposed ${p.index}/${p.term}`);
        return;
      }
      case 'propose-conf': {
        const p = this.node(args[0]).raft.proposeConfChange({
          type: args[1] as ConfChangeType,
          node: Number(args[2]) as NodeId,
        });
        this.out.push(`proposed ${p.index}/${p.term}`);
        return;
      }
      case 'transfer':
        this.node(args[0]).raft.transferLeadership(Number(args[1]) as NodeId);
        return;
      case 'read-index':
        this.node(args[0]).raft.readIndex(args[1] ?? '');
        return;
      case 'process-ready':
        for (const a of args) this.processReady(this.node(a));
        return;
      case 'deliver':
        this.deliver(args.length ? new Set(args.map(Number)) : null);
        return;
      case 'stabilize':
        this.stabilize();
        return;
      case 'drop': {
        const [from, to] = args.map(Number);
        const before = this.queue.length;
        this.queue = this.queue.filter((m) => !(m.from === from && m.to === to));
        this.out.push(`dropped ${before - this.queue.length} messages ${from}->${to}`);
        return;
      }
      case 'partition': {
        const cut = args.indexOf('/');
        const left = args.slice(0, cut).map(Number);
        const right = args.slice(cut + 1).map(Number);
        for (const a of left)
          for (const b of right) {
            this.blocked.add(a * 1000 + b);
            this.blocked.add(b * 1000 + a);
          }
        return;
      }
      case 'cut':
        this.blocked.add(Number(args[0]) * 1000 + Number(args[1]));
        return;
      case 'heal':
        this.blocked.clear();
        return;
      case 'crash': {
        const id = Number(args[0]);
        this.node(args[0]);
        this.nodes.get(id as NodeId)!.raft = null;
        this.queue = this.queue.filter((m) => m.to !== id);
        return;
      }
      case 'restart': {
        const n = this.nodes.get(Number(args[0]) as NodeId)!;
        this.start(Number(args[0]) as NodeId, n);
        return;
      }
      case 'compact': {
        const n = this.node(args[0]);
        const index = n.appliedIndex as never;
        const chain = new Uint8Array(8);
        new DataView(chain.buffer).setFloat64(0, n.appliedChain);
        n.storage.createSnapshot(index, n.raft.confStateAt(index), chain);
        n.storage.compact(index);
        n.mirror.compact(index);
        this.out.push(`${args[0]}: snapshot and compaction at ${n.appliedIndex}`);
        return;
      }
      case 'evict': {
        const n = this.node(args[0]);
        n.storage.evict(Number(args[1] ?? 0));
        this.out.push(`${args[0]}: entries below ${n.storage.hotFromIndex} not in memory`);
        return;
      }
      case 'fetch': {
        const n = this.node(args[0]);
        for (const r of n.wanted) {
          n.storage.load(r);
          this.out.push(`${args[0]}: fetched [${r.lo}, ${r.hi})`);
        }
        n.wanted = [];
        n.raft.entriesFetched();
        return;
      }
      case 'status':
        for (const a of args) this.printStatus(this.node(a));
        return;
      case 'log': {
        const n = this.nodes.get(Number(args[0]) as NodeId)!;
        const s = n.storage;
        const first = s.firstIndex();
        const entries =
          s.lastIndex() >= first ? s.rawEntries(first, (s.lastIndex() + 1) as never) : [];
        this.out.push(
          `${args[0]}: snapshot ${s.snapshotMeta().index}/${s.snapshotMeta().term}; ${entries.map(formatEntry).join(', ') || 'no entries'}`,
        );
        return;
      }
      default:
        throw new Error(`scenario: unknown command '${cmd}'`);
    }
  }

  private lastOptions: Partial<RaftConfig> = {};

  private addNodes(count: number, flags: string[]): void {
    const options: Partial<RaftConfig> = {
      electionTicks: 10,
      heartbeatTicks: 1,
      preVote: !flags.includes('prevote=false'),
      checkQuorum: !flags.includes('checkquorum=false'),
      appendBytesMax: 64,
      inflightBytesMax: 1024,
      ...(flags.includes('unsafe=commit-previous-term')
        ? { unsafe: { commitPreviousTerm: true } }
        : {}),
      ...(flags.includes('unsafe=vote-twice') ? { unsafe: { voteTwice: true } } : {}),
    };
    this.lastOptions = options;
    const voters: NodeId[] = [];
    for (let i = 1; i <= count; i++) voters.push(i as NodeId);
    for (const id of voters) this.addNode(id, new ColdStorage({ voters, learners: [] }), options);
  }

  private addNode(id: NodeId, storage: ColdStorage, options: Partial<RaftConfig>): void {
    const n: ScenarioNode = {
      raft: null,
      storage,
      mirror: new DurableLogMirror(),
      wanted: [],
      appliedIndex: 0,
      appliedChain: 0,
      options,
    };
    this.nodes.set(id, n);
    this.start(id, n);
  }

  private start(id: NodeId, n: ScenarioNode): void {
    n.raft = new RaftNode({ ...n.options, id, random: seededRandom(id) }, n.storage);
    n.appliedIndex = n.storage.snapshotMeta().index;
    const data = n.storage.snapshot().data;
    n.appliedChain =
      data.byteLength === 8 ? new DataView(data.buffer, data.byteOffset).getFloat64(0) : 0;
    this.checker.observeRestart(id, n.appliedIndex);
  }

  private processReady(n: ScenarioNode & { raft: RaftNode }): boolean {
    const raft = n.raft;
    if (!raft.hasReady()) return false;
    const rd: Ready = raft.ready();
    const id = raft.id;
    if (rd.softState || rd.hardState) {
      const s = raft.status();
      this.out.push(
        `${id}: ${s.role} lead=${s.lead} term=${s.term} vote=${s.vote} commit=${s.commit}`,
      );
    }
    if (rd.snapshot) {
      const snap = rd.snapshot;
      n.storage.applySnapshot(snap);
      const chain = new DataView(snap.data.buffer, snap.data.byteOffset).getFloat64(0);
      n.mirror.restore(snap.meta.index, snap.meta.term, chain);
      this.checker.observeSnapshotInstall(id, snap.meta.index, chain);
      n.appliedIndex = snap.meta.index;
      n.appliedChain = chain;
      this.out.push(`${id}: install snapshot ${snap.meta.index}/${snap.meta.term}`);
    }
    if (rd.entries.length > 0) {
      n.storage.append(rd.entries);
      n.mirror.append(rd.entries);
      this.out.push(`${id}: persist ${rd.entries.map(formatEntry).join(', ')}`);
    }
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.checker.observeDurable(
      id,
      n.mirror,
      rd.entries[0]?.index ?? Infinity,
      n.storage.hardState().commit,
    );
    if (rd.softState?.role === StateRole.Leader)
      this.checker.observeLeaderLog(id, raft.currentTerm, n.mirror);
    for (const m of rd.messages) this.queue.push(m);
    for (const r of rd.entriesWanted) {
      this.out.push(`${id}: wants [${r.lo}, ${r.hi})`);
      if (!n.wanted.some((w) => w.lo === r.lo && w.hi === r.hi)) n.wanted.push(r);
    }
    if (rd.committedEntries.length > 0) {
      for (const e of rd.committedEntries) {
        const key = entryKey(e);
        this.checker.observeApply(id, e.index, e.term, key);
        n.appliedIndex = e.index;
        n.appliedChain = chainNext(n.appliedChain, e.term, key);
      }
      this.out.push(`${id}: apply ${rd.committedEntries.map(formatEntry).join(', ')}`);
    }
    for (const rs of rd.readStates) this.out.push(`${id}: read ${rs.context} at index ${rs.index}`);
    raft.advance();
    if (raft.currentRole === StateRole.Leader) this.checker.observeLeader(id, raft.currentTerm);
    return true;
  }

  private deliver(only: Set<number> | null): void {
    const batch = this.queue.filter((m) => only === null || only.has(m.to));
    this.queue = this.queue.filter((m) => !(only === null || only.has(m.to)));
    for (const m of batch) {
      const to = this.nodes.get(m.to);
      if (this.blocked.has(m.from * 1000 + m.to) || !to?.raft) {
        this.out.push(`  ${formatMessage(m)} DROPPED`);
        continue;
      }
      this.out.push(`  ${formatMessage(m)}`);
      to.raft.step(m);
      if (to.raft.currentRole === StateRole.Leader)
        this.checker.observeLeader(to.raft.id, to.raft.currentTerm);
    }
  }

  private stabilize(): void {
    for (let round = 0; round < 1000; round++) {
      let progressed = false;
      for (const n of [...this.nodes.values()].filter((x) => x.raft)) {
        while (this.processReady(n as ScenarioNode & { raft: RaftNode })) progressed = true;
      }
      if (this.queue.length > 0) {
        this.deliver(null);
        progressed = true;
      }
      if (!progressed) return;
    }
    throw new Error('scenario: stabilize did not settle in 1000 rounds');
  }

  private printStatus(n: ScenarioNode & { raft: RaftNode }): void {
    const s = n.raft.status();
    const conf = `voters=${s.conf.voters.join(',')}${s.conf.learners.length ? ` learners=${s.conf.learners.join(',')}` : ''}`;
    this.out.push(
      `${s.id}: ${s.role} term=${s.term} lead=${s.lead} commit=${s.commit} applied=${s.applied} log=${s.firstIndex}..${s.lastIndex} ${conf}`,
    );
    for (const [id, p] of s.progress) {
      this.out.push(
        `  ${id}: match=${p.match} next=${p.next} ${p.state}${p.isLearner ? ' learner' : ''}`,
      );
    }
  }
}

/** Runs a scenario file's text and returns it with every command's output regenerated. */
export function runScenarioFile(source: string): string {
  const env = new ScenarioEnv();
  const lines = source.split('\n');
  const result: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('> ')) {
      result.push(line);
      for (const o of env.run(line.slice(2))) result.push(o);
      // Skip the old expected output up to the next command or comment/blank separator.
      while (
        i + 1 < lines.length &&
        !lines[i + 1]!.startsWith('> ') &&
        !lines[i + 1]!.startsWith('#') &&
        lines[i + 1] !== ''
      )
        i++;
    } else {
      result.push(line);
    }
  }
  return result.join('\n');
}
