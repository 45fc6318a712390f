// TEST DOUBLE. `StandInReplica` is a deliberately small partition replica used to build and test
// the cluster simulation before the real `PartitionReplica` (replication/) existed, and kept as
// a second subject so a harness change can be told apart from a replica change. It is not the
// product: no segment log, no offset translator, no idempotence, no snapshots, the whole log in
// memory (the raft package's MemoryStorage).
//
// What it does keep real, because the checkers need it: a Raft core per replica; durability on
// the node's simulated file system (one write-ahead file, fsynced before the Ready's messages
// leave, so a crash loses exactly what was not fsynced); offsets stamped by the leader into the
// batch (`baseOffset`, `partitionLeaderEpoch` = term) as the entry is first persisted, from the
// end offset of the entry before it, and checked on every replica that persists it; acks=all
// answered at commit, acks=1 at the leader's own persist; pending requests failed with
// NOT_LEADER_OR_FOLLOWER when the replica stops leading.
//
// Write-ahead file `<dir>/standin.wal`, a sequence of records:
//   u32 bodyLength | u32 crc32c(body) | body
//   body = u8 1 (entry) | f64 term | f64 index | u8 type | data...
//        | u8 2 (hard state) | f64 term | f64 vote | f64 commit
// Recovery replays records in order (an entry at or below the last index truncates the suffix)
// and cuts the file at the first short or damaged record (a torn write).
// No-op entries (empty data) hold no offsets.

import assert from 'node:assert/strict';
import {
  crc32c,
  ErrorCode,
  readBatchHeader,
  StreamBusError,
  setBaseOffset,
  setPartitionLeaderEpoch,
} from '@streambus/protocol';
import {
  type Entry,
  type HardState,
  type LogIndex,
  MemoryStorage,
  type NodeId,
  RaftError,
  RaftNode,
  StateRole,
  type Term,
} from '@streambus/raft';
import { type FileHandle, joinPath } from '@streambus/storage';
import type { GroupKey, HostedGroup, RaftTransport } from '../cluster/contract.js';
import type {
  ReplicaContext,
  ReplicaRole,
  SimAcks,
  SimReplica,
  SimReplicaFactory,
} from './sim-replica.js';

const KIND_ENTRY = 1;
const KIND_HARD = 2;
const RECORD_HEAD_BYTES = 8;

interface Waiter {
  readonly term: number;
  readonly acks: SimAcks;
  readonly resolve: (baseOffset: number) => void;
  readonly reject: (err: unknown) => void;
}

function encodeRecord(body: Buffer): Buffer {
  const head = Buffer.alloc(RECORD_HEAD_BYTES);
  head.writeUInt32BE(body.length, 0);
  head.writeUInt32BE(crc32c(body), 4);
  return Buffer.concat([head, body]);
}

function entryRecord(e: Entry): Buffer {
  const body = Buffer.alloc(18 + e.data.byteLength);
  body[0] = KIND_ENTRY;
  body.writeDoubleBE(e.term, 1);
  body.writeDoubleBE(e.index, 9);
  body[17] = e.type;
  body.set(e.data, 18);
  return encodeRecord(body);
}

function hardRecord(h: HardState): Buffer {
  const body = Buffer.alloc(25);
  body[0] = KIND_HARD;
  body.writeDoubleBE(h.term, 1);
  body.writeDoubleBE(h.vote, 9);
  body.writeDoubleBE(h.commit, 17);
  return encodeRecord(body);
}

function notLeader(node: number, lead: number): StreamBusError {
  return new StreamBusError(
    ErrorCode.NOT_LEADER_OR_FOLLOWER,
    `node ${node} is not the leader${lead > 0 ? ` (node ${lead} is)` : ''}`,
  );
}

export class StandInReplica implements SimReplica, HostedGroup {
  readonly key: GroupKey;
  private readonly raft: RaftNode;
  /** End offset after the entry at each index (index 0: 0). */
  private readonly offsetEnd: number[] = [0];
  private readonly waiters = new Map<number, Waiter>();
  /** Batches this leader proposed and has not stamped yet. */
  private readonly unstamped = new WeakSet<Uint8Array>();
  private failure: unknown = null;
  /**
   * The last committed entry handed out by a Ready (hence durable here and matching the
   * leader). Not `raft.commitIndex`: a follower may learn a commit index for entries it holds
   * only unstably, while its storage still has the stale suffix they replace.
   */
  private appliedIndex = 0;

  private constructor(
    private readonly ctx: ReplicaContext,
    private readonly storage: MemoryStorage,
    private readonly wal: FileHandle,
    private walBytes: number,
  ) {
    this.key = ctx.key;
    for (let i = 1; i <= storage.lastIndex(); i++)
      this.noteOffsets(storage.entries(i as LogIndex, (i + 1) as LogIndex, Infinity)[0]!);
    this.raft = new RaftNode(
      {
        id: ctx.nodeId,
        random: ctx.random,
        electionTicks: ctx.electionTicks,
        heartbeatTicks: ctx.heartbeatTicks,
      },
      storage,
    );
  }

  get group(): HostedGroup {
    return this;
  }

  private get transport(): RaftTransport {
    return this.ctx.transport;
  }

  static async open(ctx: ReplicaContext): Promise<StandInReplica> {
    await ctx.fs.mkdir(ctx.dir);
    const path = joinPath(ctx.dir, 'standin.wal');
    const existed = (await ctx.fs.stat(path)) !== null;
    const wal = await ctx.fs.open(path, 'create');
    // The file's name is durable only once its directory is fsynced (MemoryFileSystem models
    // it: without this, a crash loses the whole file, acknowledged entries included).
    if (!existed) await ctx.fs.syncDir(ctx.dir);
    const bytes = await ctx.fs.readFile(path);
    const storage = new MemoryStorage({
      voters: [...ctx.voters].sort((a, b) => a - b),
      learners: [],
    });
    let pos = 0;
    while (pos + RECORD_HEAD_BYTES <= bytes.length) {
      const len = bytes.readUInt32BE(pos);
      const end = pos + RECORD_HEAD_BYTES + len;
      if (end > bytes.length) break;
      const body = bytes.subarray(pos + RECORD_HEAD_BYTES, end);
      if (crc32c(body) !== bytes.readUInt32BE(pos + 4)) break;
      if (body[0] === KIND_ENTRY) {
        const e: Entry = {
          term: body.readDoubleBE(1) as Term,
          index: body.readDoubleBE(9) as LogIndex,
          type: body[17] === 1 ? 1 : 0,
          data: Buffer.from(body.subarray(18)),
        };
        storage.append([e]);
      } else {
        assert.equal(body[0], KIND_HARD, `stand-in wal: unknown record kind ${body[0]}`);
        storage.setHardState({
          term: body.readDoubleBE(1) as Term,
          vote: body.readDoubleBE(9) as NodeId,
          commit: body.readDoubleBE(17) as LogIndex,
        });
      }
      pos = end;
    }
    if (pos < bytes.length) {
      await wal.truncate(pos);
      await wal.sync();
    }
    const replica = new StandInReplica(ctx, storage, wal, pos);
    ctx.host.add(replica);
    return replica;
  }

  // ---- HostedGroup

  tick(): void {
    if (this.failure === null) this.raft.tick();
  }

  step(message: Parameters<HostedGroup['step']>[0]): void {
    if (this.failure !== null) return;
    try {
      this.raft.step(message);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  reportUnreachable(peer: NodeId): void {
    if (this.failure === null) this.raft.reportUnreachable(peer);
  }

  hasWork(): boolean {
    return this.failure === null && this.raft.hasReady();
  }

  async process(): Promise<void> {
    if (!this.hasWork()) return;
    const rd = this.raft.ready();
    try {
      const records: Buffer[] = [];
      let end = rd.entries.length > 0 ? this.offsetEnd[rd.entries[0]!.index - 1] : 0;
      assert.ok(end !== undefined, `stand-in: no end offset before index ${rd.entries[0]?.index}`);
      for (const e of rd.entries) {
        end = this.stamp(e, end);
        records.push(entryRecord(e));
      }
      if (rd.hardState) records.push(hardRecord(rd.hardState));
      if (records.length > 0) {
        const all = Buffer.concat(records);
        await this.wal.write(all, this.walBytes);
        this.walBytes += all.length;
      }
      if (rd.mustSync) await this.wal.sync();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    for (const e of rd.entries) {
      this.noteOffsets(e);
      const w = this.waiters.get(e.index);
      if (w && w.term === e.term && e.data.byteLength > 0) {
        if (w.acks === 'leader') {
          this.waiters.delete(e.index);
          w.resolve(readBatchHeader(e.data).baseOffset);
        }
      }
    }
    this.transport.send(this.key, rd.messages);
    for (const e of rd.committedEntries) {
      this.appliedIndex = e.index;
      const w = this.waiters.get(e.index);
      if (!w) continue;
      this.waiters.delete(e.index);
      if (w.term === e.term) w.resolve(readBatchHeader(e.data).baseOffset);
      else w.reject(notLeader(this.ctx.nodeId, this.raft.currentLead));
    }
    if (rd.softState && rd.softState.role !== StateRole.Leader) this.failWaiters();
    this.raft.advance();
  }

  /**
   * The leader's fresh proposal gets its offsets (from `base`, the end offset of the entry
   * before it) and its epoch; any other entry is checked. Returns the entry's end offset.
   */
  private stamp(e: Entry, base: number): number {
    if (e.data.byteLength === 0) return base;
    if (this.unstamped.has(e.data)) {
      this.unstamped.delete(e.data);
      setBaseOffset(e.data, 0, base);
      setPartitionLeaderEpoch(e.data, 0, e.term);
    }
    const h = readBatchHeader(e.data);
    assert.equal(
      h.baseOffset,
      base,
      `stand-in: entry ${e.index} has base offset ${h.baseOffset}, log end is ${base}`,
    );
    assert.equal(
      h.partitionLeaderEpoch,
      e.term,
      `stand-in: entry ${e.index} epoch is not its term`,
    );
    return base + h.recordCount;
  }

  private noteOffsets(e: Entry): void {
    const before = this.offsetEnd[e.index - 1];
    assert.ok(before !== undefined, `stand-in: gap before index ${e.index}`);
    this.offsetEnd.length = e.index;
    const count = e.data.byteLength === 0 ? 0 : readBatchHeader(e.data).recordCount;
    this.offsetEnd.push(before + count);
  }

  private fail(err: unknown): void {
    this.failure = err;
    this.failWaiters(err);
  }

  private failWaiters(err?: unknown): void {
    for (const w of this.waiters.values())
      w.reject(err ?? notLeader(this.ctx.nodeId, this.raft.currentLead));
    this.waiters.clear();
  }

  // ---- SimReplica

  role(): ReplicaRole {
    return {
      leader: this.failure === null && this.raft.currentRole === StateRole.Leader,
      term: this.raft.currentTerm,
      lead: this.raft.currentLead,
    };
  }

  produce(batch: Buffer, acks: SimAcks): Promise<number> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.raft.currentRole !== StateRole.Leader) {
      return Promise.reject(notLeader(this.ctx.nodeId, this.raft.currentLead));
    }
    const data = Buffer.from(batch);
    let proposed: { index: number; term: number };
    try {
      proposed = this.raft.propose(data);
    } catch (err) {
      if (err instanceof RaftError) {
        return Promise.reject(new StreamBusError(ErrorCode.NOT_LEADER_OR_FOLLOWER, err.message));
      }
      throw err;
    }
    this.unstamped.add(data);
    this.ctx.host.notify(this.key);
    return new Promise<number>((resolve, reject) => {
      this.waiters.set(proposed.index, { term: proposed.term, acks, resolve, reject });
    });
  }

  private committedIndex(): number {
    return this.appliedIndex;
  }

  highWatermark(): number {
    return this.offsetEnd[this.committedIndex()] ?? 0;
  }

  async read(offset: number, bytesMax: number): Promise<Buffer> {
    const hi = this.committedIndex();
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (let i = 1; i <= hi; i++) {
      if ((this.offsetEnd[i] ?? 0) <= offset) continue;
      const e = this.storage.entries(i as LogIndex, (i + 1) as LogIndex, Infinity)[0]!;
      if (e.data.byteLength === 0) continue;
      if (out.length > 0 && bytes + e.data.byteLength > bytesMax) break;
      out.push(e.data);
      bytes += e.data.byteLength;
    }
    return Buffer.concat(out);
  }

  describe(): string {
    const off = this.failure !== null ? ` failed: ${String(this.failure)}` : '';
    return `${this.raft.currentRole} term ${this.raft.currentTerm} lead ${this.raft.currentLead} applied ${this.appliedIndex} hw ${this.highWatermark()}${off}`;
  }

  transferLeadership(to: NodeId): void {
    if (this.failure !== null) return;
    try {
      this.raft.transferLeadership(to);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
    this.ctx.host.notify(this.key);
  }
}

export const standInReplicaFactory: SimReplicaFactory = {
  name: 'stand-in',
  idempotent: false,
  open: (ctx) => StandInReplica.open(ctx),
};
