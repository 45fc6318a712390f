// Test helper (not exported from the package): N partition replicas of one group in one
// process, each with its own MemoryFileSystem (its own disk, so a crash loses that node's
// unsynced writes only), on a MemoryTransportHub behind a link filter (pass, drop or hold per
// direction), driven by a manual tick loop: `tick()` ticks every live replica, `settle()` runs
// `process()` on every replica with work until none has any. Deterministic for a seed.
import { encodeRecordBatch } from '@streambus/protocol';
import { type Message, type NodeId, seededRandom } from '@streambus/raft';
import { type CrashMode, MemoryFileSystem, type PartitionLogConfig } from '@streambus/storage';
import {
  type GroupHost,
  type GroupKey,
  type HostedGroup,
  MemoryTransportHub,
  type RaftTransport,
} from '../cluster/contract.js';
import { PartitionReplica, type PartitionReplicaOptions } from './partition-replica.js';

export const KEY: GroupKey = { topicId: 7, partition: 0 };
export const DIR = '/data/t-7-0';

export const REPLICA_LOG_CONFIG: PartitionLogConfig = {
  segmentBytesMax: 64 * 1024,
  segmentAgeMsMax: 60 * 60 * 1000,
  indexIntervalBytes: 512,
  retentionBytesMax: -1,
  retentionMs: -1,
  durability: 'always',
  flushIntervalMs: 5,
};

/** A batch of `count` records whose values name `tag` (so reads can be checked). */
export function batch(tag: number, count = 1 + (tag % 3)): Buffer {
  return encodeRecordBatch(
    Array.from({ length: count }, (_, i) => ({ value: Buffer.from(`r${tag}.${i}`), timestamp: 1 })),
    { timestamp: 1 },
  );
}

/** 'corrupt': appends carrying data go out with one bit flipped in their last data entry. */
export type LinkMode = 'pass' | 'drop' | 'hold' | 'corrupt';

function corrupted(m: Message, cluster: ReplicaCluster): Message {
  const k = m.entries.findLastIndex((e) => e.data.byteLength > 0);
  if (k < 0) return m;
  const e = m.entries[k]!;
  const data = Buffer.from(e.data); // a copy: the sender's entry stays intact
  data[data.length - 1] = data[data.length - 1]! ^ 1;
  cluster.corrupted++;
  const entries = m.entries.slice();
  entries[k] = { ...e, data };
  return { ...m, entries };
}

class TestHost implements GroupHost {
  notified = 0;
  add(_group: HostedGroup): void {}
  remove(_key: GroupKey): void {}
  notify(_key: GroupKey): void {
    this.notified++;
  }
}

/** The hub's transport for one node, with every outbound message passed through the filter. */
class FilteredTransport implements RaftTransport {
  constructor(
    private readonly inner: RaftTransport,
    private readonly cluster: ReplicaCluster,
  ) {}
  get self(): NodeId {
    return this.inner.self;
  }
  send(group: GroupKey, messages: readonly Message[]): void {
    const pass: Message[] = [];
    for (const m of messages) {
      const mode = this.cluster.link(m.from, m.to);
      if (mode === 'pass') pass.push(m);
      else if (mode === 'hold') this.cluster.held.push({ transport: this.inner, group, m });
      else if (mode === 'corrupt') pass.push(corrupted(m, this.cluster));
    }
    if (pass.length > 0) this.inner.send(group, pass);
  }
  setMessageHandler(h: Parameters<RaftTransport['setMessageHandler']>[0]): void {
    this.inner.setMessageHandler(h);
  }
  request(to: NodeId, kind: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.inner.request(to, kind, body, timeoutMs);
  }
  setRequestHandler(h: Parameters<RaftTransport['setRequestHandler']>[0]): void {
    this.inner.setRequestHandler(h);
  }
  setUnreachableHandler(h: (peer: NodeId) => void): void {
    this.inner.setUnreachableHandler(h);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface ClusterNode {
  readonly id: NodeId;
  fs: MemoryFileSystem;
  replica: PartitionReplica | null;
  transport: RaftTransport | null;
  readonly host: TestHost;
}

export interface ReplicaClusterOptions {
  readonly ids?: readonly number[];
  readonly seed?: number;
  readonly logConfig?: PartitionLogConfig;
  readonly replica?: Partial<PartitionReplicaOptions>;
}

export class ReplicaCluster {
  readonly hub = new MemoryTransportHub();
  readonly nodes = new Map<number, ClusterNode>();
  readonly held: Array<{ transport: RaftTransport; group: GroupKey; m: Message }> = [];
  /** Messages sent damaged by a 'corrupt' link. */
  corrupted = 0;
  private readonly links = new Map<string, LinkMode>();
  private readonly ids: NodeId[];
  private readonly extra = new Set<number>();
  private readonly seed: number;

  constructor(private readonly options: ReplicaClusterOptions = {}) {
    this.ids = (options.ids ?? [1, 2, 3]).map((n) => n as NodeId);
    this.seed = options.seed ?? 1;
    for (const id of this.ids) {
      this.nodes.set(id, {
        id,
        fs: new MemoryFileSystem({ seed: this.seed * 100 + id }),
        replica: null,
        transport: null,
        host: new TestHost(),
      });
    }
  }

  link(from: number, to: number): LinkMode {
    return this.links.get(`${from}>${to}`) ?? 'pass';
  }
  setLink(from: number, to: number, mode: LinkMode): void {
    this.links.set(`${from}>${to}`, mode);
  }
  /** Both directions between `id` and every other node. */
  isolate(id: number, mode: LinkMode = 'drop'): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.setLink(id, other, mode);
      this.setLink(other, id, mode);
    }
  }
  heal(): void {
    this.links.clear();
  }
  /** Delivers the held messages (in order) and stops holding. */
  release(): void {
    for (const [k, v] of this.links) if (v === 'hold') this.links.delete(k);
    for (const h of this.held.splice(0)) h.transport.send(h.group, [h.m]);
  }

  node(id: number): ClusterNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }
  replica(id: number): PartitionReplica {
    const r = this.node(id).replica;
    if (!r) throw new Error(`node ${id} is down`);
    return r;
  }
  live(): PartitionReplica[] {
    return [...this.nodes.values()].flatMap((n) => (n.replica ? [n.replica] : []));
  }

  /** Adds a node that is not in the initial configuration (it starts with no voters). */
  addNode(id: number): void {
    this.nodes.set(id, {
      id: id as NodeId,
      fs: new MemoryFileSystem({ seed: this.seed * 100 + id }),
      replica: null,
      transport: null,
      host: new TestHost(),
    });
    this.extra.add(id);
  }

  async start(id: number): Promise<PartitionReplica> {
    const n = this.node(id);
    if (n.replica) throw new Error(`node ${id} is running`);
    const transport = new FilteredTransport(this.hub.transport(n.id), this);
    const replica = await PartitionReplica.open({
      key: KEY,
      self: n.id,
      dir: DIR,
      fs: n.fs,
      logConfig: this.options.logConfig ?? REPLICA_LOG_CONFIG,
      initialVoters: this.extra.has(id) ? [] : this.ids,
      transport,
      host: n.host,
      random: seededRandom(this.seed * 1000 + id + n.host.notified),
      nowMs: () => 1_000,
      ...this.options.replica,
    });
    transport.setMessageHandler((_group, m) => n.replica?.step(m));
    n.transport = transport;
    n.replica = replica;
    return replica;
  }

  async startAll(): Promise<void> {
    for (const id of this.nodes.keys()) await this.start(id);
  }

  /**
   * Power loss: unsynced writes are lost; the replica object is abandoned (never closed). The
   * others are told the node is unreachable, as their closed TCP links would tell them (that
   * wakes a quiesced group).
   */
  async crash(id: number, mode: CrashMode = 'drop-unsynced'): Promise<void> {
    const n = this.node(id);
    n.replica = null;
    await n.transport?.close();
    n.transport = null;
    n.fs = n.fs.crash(mode);
    this.reportDown(id);
  }

  /** A clean stop (the others are told, as for a crash). */
  async stop(id: number): Promise<void> {
    const n = this.node(id);
    const r = n.replica;
    n.replica = null;
    await n.transport?.close();
    n.transport = null;
    await r?.close();
    this.reportDown(id);
  }

  private reportDown(id: number): void {
    for (const r of this.live()) r.reportUnreachable(id as NodeId);
  }

  async closeAll(): Promise<void> {
    for (const id of this.nodes.keys()) await this.stop(id);
  }

  /** Runs process() on every replica with work until none has any (bounded). */
  async settle(roundsMax = 2000): Promise<void> {
    for (let round = 0; round < roundsMax; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const busy = this.live().filter((r) => r.hasWork());
      if (busy.length === 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (!this.live().some((r) => r.hasWork())) return;
        continue;
      }
      await Promise.all(busy.map((r) => r.process()));
    }
    throw new Error(`replicas did not settle within ${roundsMax} rounds`);
  }

  async tick(n = 1): Promise<void> {
    for (let i = 0; i < n; i++) {
      for (const r of this.live()) r.tick();
      await this.settle();
    }
  }

  leader(): PartitionReplica | undefined {
    const leaders = this.live().filter((r) => r.role === 'leader');
    // The newest term wins when a deposed leader has not heard yet.
    return leaders.sort((a, b) => b.leaderEpoch - a.leaderEpoch)[0];
  }

  /**
   * Ticks until one live replica leads, every replica of `among` (default: all live) follows
   * it, and it has committed an entry of its term (its high watermark covers its no-op).
   */
  async waitLeader(ticksMax = 200, among?: readonly number[]): Promise<PartitionReplica> {
    for (let i = 0; i < ticksMax; i++) {
      const l = this.leader();
      const group = among ? among.map((id) => this.replica(id)) : this.live();
      if (
        l &&
        group.every((r) => r === l || r.leaderId === l.self) &&
        l.highWatermark >= l.logEndOffset
      ) {
        return l;
      }
      await this.tick();
    }
    throw new Error(`no leader within ${ticksMax} ticks`);
  }
}
