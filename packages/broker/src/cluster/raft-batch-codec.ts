// The binary codec for a batch of Raft messages: one body carries many (group, message) pairs,
// so one tick's heartbeats for every group shared by two brokers leave as one frame. It knows
// nothing about sockets or link framing (peer-frame.ts wraps the body) and does no I/O.
//
// Body layout (all integers big-endian; u64 is two u32 halves, high first, holding a safe
// integer, so its high half is at most 0x1fffff):
//
//   u32  count                          number of messages that follow
//   count times:
//     u32  topicId, u32 partition        the group (GroupKey)
//     u8   type                          index into MESSAGE_TYPES below
//     u8   flags                         bit 0 reject, bit 1 snapshot present, bit 2 heartbeat
//                                        form; others zero
//     u32  from, u32 to                  node ids, >= 1
//     if heartbeat form (a Heartbeat or HeartbeatResp carrying only what those carry):
//       u64  term, commit, readSeq
//       u16  contextBytes, then that many bytes of UTF-8
//       (logTerm, index and rejectHint are 0, no entries, no snapshot, not a reject)
//     else:
//     u64  term, logTerm, index, commit, rejectHint, readSeq
//     u16  contextBytes, then that many bytes of UTF-8
//     u32  entryCount
//     entryCount times:
//       u64 term, u64 index, u8 type (0 normal, 1 conf), u32 dataBytes, then the data
//     if snapshot:
//       u64 index, u64 term,
//       u16 voterCount, voterCount x u32, u16 learnerCount, learnerCount x u32,
//       u32 dataBytes, then the data
//
// Rules:
//   1. Entry and snapshot data are never copied on decode: they are views into the body, which
//      stays alive as long as any of them does. On encode, data of `INLINE_DATA_BYTES_MAX` or
//      more is not copied either: `encodeRaftBatch` returns the body as parts (the small fields
//      in one buffer, cut around each large data block), written back to back.
//   2. Decode checks every declared count and length against the bytes left before it
//      allocates anything, so a body can make the decoder allocate no more than a constant
//      times its own size. Structural damage (truncation, trailing bytes, a count that does not
//      fit, reserved bits set, an out-of-range integer, bad UTF-8) is CORRUPT_MESSAGE; a
//      well-formed field whose value no message may have (an unknown type, node id 0) is
//      INVALID_REQUEST. Nothing else escapes `decodeRaftBatch`.
//   3. Encode takes only messages the Raft core built; a value out of range there is a bug and
//      fails an assertion.
//   4. Coalesced heartbeats: every group's heartbeats between two brokers already leave in one
//      body per tick (peer-links.ts batches a turn's messages per peer; the host ticks every
//      group in one pass), and their responses likewise per round. Each heartbeat and response
//      takes the heartbeat form: 44 bytes plus its context instead of 76, the fields neither
//      carries left out (CockroachDB coalesces its heartbeats to a (range, term, commit) list
//      per node pair for the same reason). Decoded, it is the same message.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import {
  type ConfState,
  type Entry,
  EntryType,
  type LogIndex,
  type Message,
  MessageType,
  type NodeId,
  type Snapshot,
  type Term,
} from '@streambus/raft';
import type { GroupKey } from './contract.js';

/** The wire number of each message type is its position here. Append only. */
export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze([
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.Append,
  MessageType.AppendResp,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.Snapshot,
  MessageType.TimeoutNow,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
]);
const TYPE_NUMBER = new Map<MessageType, number>(MESSAGE_TYPES.map((t, i) => [t, i]));

/** Longest `context` string in bytes (ReadIndex names; the core's are short). */
export const CONTEXT_BYTES_MAX = 1024;
/** Data at least this long travels as its own part instead of being copied into the body. */
export const INLINE_DATA_BYTES_MAX = 512;
/** Node ids, topic ids and partitions fit a u32. */
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const TWO_32 = 0x1_0000_0000;
const U64_HIGH_MAX = 0x1fffff;

const FLAG_REJECT = 0x1;
const FLAG_SNAPSHOT = 0x2;
const FLAG_HEARTBEAT_FORM = 0x4;
const FLAGS_KNOWN = FLAG_REJECT | FLAG_SNAPSHOT | FLAG_HEARTBEAT_FORM;

/** Fixed bytes of a message without context, entries or snapshot. */
export const MESSAGE_FIXED_BYTES = 4 + 4 + 1 + 1 + 4 + 4 + 6 * 8 + 2 + 4;
/** Fixed bytes of a message in the heartbeat form (rule 4), without context. */
export const HEARTBEAT_FORM_BYTES = 4 + 4 + 1 + 1 + 4 + 4 + 3 * 8 + 2;
const ENTRY_FIXED_BYTES = 8 + 8 + 1 + 4;
const SNAPSHOT_FIXED_BYTES = 8 + 8 + 2 + 2 + 4;
const COUNT_BYTES = 4;

export interface GroupMessage {
  readonly group: GroupKey;
  readonly message: Message;
}

export interface EncodedBody {
  /** The body, as consecutive parts (see rule 1). */
  readonly parts: readonly Buffer[];
  readonly bytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const EMPTY_ENTRIES: readonly Entry[] = Object.freeze([]);
const EMPTY_IDS: readonly NodeId[] = Object.freeze([]);

function assertEncodable(ok: boolean, what: string): void {
  if (!ok) notEncodable(what);
}

function notEncodable(what: string): never {
  throw new Error(`raft batch codec: ${what}`);
}

function contextBytes(m: Message): number {
  return m.context.length === 0 ? 0 : Buffer.byteLength(m.context, 'utf8');
}

/** A Heartbeat or HeartbeatResp with nothing the heartbeat form leaves out (rule 4). */
export function inHeartbeatForm(m: Message): boolean {
  return (
    (m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResp) &&
    m.logTerm === 0 &&
    m.index === 0 &&
    m.rejectHint === 0 &&
    !m.reject &&
    m.entries.length === 0 &&
    m.snapshot === null
  );
}

/** Encoded size of one message, data included: what it costs in an outbound queue. */
export function encodedMessageBytes(m: Message): number {
  if (inHeartbeatForm(m)) return HEARTBEAT_FORM_BYTES + contextBytes(m);
  let n = MESSAGE_FIXED_BYTES + contextBytes(m);
  for (const e of m.entries) n += ENTRY_FIXED_BYTES + e.data.length;
  const s = m.snapshot;
  if (s) {
    n += SNAPSHOT_FIXED_BYTES + 4 * (s.meta.conf.voters.length + s.meta.conf.learners.length);
    n += s.data.length;
  }
  return n;
}

/** Bytes of the body's own buffer: everything but the data blocks that travel as parts. */
function metaBytes(m: Message): number {
  if (inHeartbeatForm(m)) return HEARTBEAT_FORM_BYTES + contextBytes(m);
  let n = MESSAGE_FIXED_BYTES + contextBytes(m);
  for (const e of m.entries) {
    n += ENTRY_FIXED_BYTES + (e.data.length < INLINE_DATA_BYTES_MAX ? e.data.length : 0);
  }
  const s = m.snapshot;
  if (s) {
    n += SNAPSHOT_FIXED_BYTES + 4 * (s.meta.conf.voters.length + s.meta.conf.learners.length);
    n += s.data.length < INLINE_DATA_BYTES_MAX ? s.data.length : 0;
  }
  return n;
}

class BodyWriter {
  readonly parts: Buffer[] = [];
  private cut = 0;
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }
  // The assertion messages are built only on failure: these run for every field of every
  // message, and a template string per field (a number formatted each time) was a good part of
  // encoding a message (issue 9, peer codec CPU).
  u16(v: number, what: string): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= U16_MAX)) notEncodable(`${what} ${v} is not a u16`);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number, what: string): void {
    if (!(Number.isInteger(v) && v >= 0 && v <= U32_MAX)) notEncodable(`${what} ${v} is not a u32`);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }
  u64(v: number, what: string): void {
    if (!(Number.isSafeInteger(v) && v >= 0)) {
      notEncodable(`${what} ${v} is not a safe integer >= 0`);
    }
    this.buf.writeUInt32BE(Math.floor(v / TWO_32), this.pos);
    this.buf.writeUInt32BE(v % TWO_32, this.pos + 4);
    this.pos += 8;
  }
  /** `s`, whose UTF-8 length `bytes` the caller computed. */
  utf8(s: string, bytes: number): void {
    assertEncodable(this.buf.write(s, this.pos, bytes, 'utf8') === bytes, 'context length');
    this.pos += bytes;
  }
  data(d: Uint8Array): void {
    this.u32(d.length, 'data length');
    if (d.length < INLINE_DATA_BYTES_MAX) {
      this.buf.set(d, this.pos);
      this.pos += d.length;
      return;
    }
    if (this.pos > this.cut) this.parts.push(this.buf.subarray(this.cut, this.pos));
    this.cut = this.pos;
    this.parts.push(Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.length));
  }
  finish(): void {
    if (this.pos > this.cut) this.parts.push(this.buf.subarray(this.cut, this.pos));
    this.cut = this.pos;
  }
}

function writeIds(w: BodyWriter, ids: readonly NodeId[], what: string): void {
  w.u16(ids.length, `${what} count`);
  for (const id of ids) w.u32(id, what);
}

function writeContext(w: BodyWriter, m: Message): void {
  const ctx = contextBytes(m);
  if (ctx > CONTEXT_BYTES_MAX) notEncodable(`context of ${ctx} bytes`);
  w.u16(ctx, 'context length');
  if (ctx > 0) w.utf8(m.context, ctx);
}

/** Encodes the pairs in order (see rule 1 for the parts). */
export function encodeRaftBatch(items: readonly GroupMessage[]): EncodedBody {
  let meta = COUNT_BYTES;
  let total = COUNT_BYTES;
  for (const { message } of items) {
    meta += metaBytes(message);
    total += encodedMessageBytes(message);
  }
  const w = new BodyWriter(Buffer.allocUnsafe(meta));
  w.u32(items.length, 'message count');
  for (const { group, message: m } of items) {
    const type = TYPE_NUMBER.get(m.type);
    if (type === undefined) notEncodable(`unknown message type ${m.type}`);
    w.u32(group.topicId, 'topicId');
    w.u32(group.partition, 'partition');
    w.u8(type as number);
    const heartbeatForm = inHeartbeatForm(m);
    w.u8(
      heartbeatForm
        ? FLAG_HEARTBEAT_FORM
        : (m.reject ? FLAG_REJECT : 0) | (m.snapshot ? FLAG_SNAPSHOT : 0),
    );
    w.u32(m.from, 'from');
    w.u32(m.to, 'to');
    w.u64(m.term, 'term');
    if (heartbeatForm) {
      w.u64(m.commit, 'commit');
      w.u64(m.readSeq, 'readSeq');
      writeContext(w, m);
      continue;
    }
    w.u64(m.logTerm, 'logTerm');
    w.u64(m.index, 'index');
    w.u64(m.commit, 'commit');
    w.u64(m.rejectHint, 'rejectHint');
    w.u64(m.readSeq, 'readSeq');
    writeContext(w, m);
    w.u32(m.entries.length, 'entry count');
    for (const e of m.entries) {
      w.u64(e.term, 'entry term');
      w.u64(e.index, 'entry index');
      w.u8(e.type);
      w.data(e.data);
    }
    const s = m.snapshot;
    if (s) {
      w.u64(s.meta.index, 'snapshot index');
      w.u64(s.meta.term, 'snapshot term');
      writeIds(w, s.meta.conf.voters, 'voter');
      writeIds(w, s.meta.conf.learners, 'learner');
      w.data(s.data);
    }
  }
  if (w.pos !== meta) notEncodable(`wrote ${w.pos} bytes of a ${meta}-byte body`);
  w.finish();
  return { parts: w.parts, bytes: total };
}

function corrupt(message: string, where = 'raft batch'): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_MESSAGE, `${where}: ${message}`);
}

function invalid(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_REQUEST, `raft batch: ${message}`);
}

/**
 * A bounded cursor over a received body: every read checks the bytes left and fails with
 * CORRUPT_MESSAGE naming `where` and the field. Shared with the link frames (peer-frame.ts).
 */
export class BodyReader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly where = 'raft batch',
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }
  need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      throw corrupt(
        `${what}: needs ${n} bytes, ${this.buf.length - this.pos} left at ${this.pos}`,
        this.where,
      );
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const hi = this.buf.readUInt32BE(this.pos);
    if (hi > U64_HIGH_MAX) throw corrupt(`${what} at ${this.pos} is above 2^53`, this.where);
    const v = hi * TWO_32 + this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return v;
  }
  /** A count of items of at least `itemBytes` each, checked against the bytes left. */
  count(width: 2 | 4, itemBytes: number, what: string): number {
    const at = this.pos;
    const n = width === 2 ? this.u16(what) : this.u32(what);
    if (n * itemBytes > this.remaining) {
      throw corrupt(
        `${what} ${n} at ${at} cannot fit in the ${this.remaining} bytes left`,
        this.where,
      );
    }
    return n;
  }
  /** `n` bytes as a view (no copy). */
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** The rest of the body as a view. */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }
  /** A u8- or u16-length-prefixed UTF-8 string of at most `bytesMax` bytes. */
  string(width: 1 | 2, bytesMax: number, what: string): string {
    const n = width === 1 ? this.u8(`${what} length`) : this.u16(`${what} length`);
    if (n > bytesMax) throw corrupt(`${what} of ${n} bytes exceeds ${bytesMax}`, this.where);
    if (n === 0) return '';
    const raw = this.bytes(n, what);
    try {
      return utf8.decode(raw);
    } catch {
      throw corrupt(`${what} is not valid UTF-8`, this.where);
    }
  }
}

function readNodeId(r: BodyReader, what: string): NodeId {
  const id = r.u32(what);
  if (id === 0) throw invalid(`${what} is node 0 (node ids start at 1)`);
  return id as NodeId;
}

function readIds(r: BodyReader, what: string): readonly NodeId[] {
  const n = r.count(2, 4, `${what} count`);
  if (n === 0) return EMPTY_IDS;
  const ids: NodeId[] = new Array(n);
  for (let i = 0; i < n; i++) ids[i] = readNodeId(r, what);
  return ids;
}

function readEntry(r: BodyReader): Entry {
  const term = r.u64('entry term') as Term;
  const index = r.u64('entry index') as LogIndex;
  const type = r.u8('entry type');
  if (type !== EntryType.Normal && type !== EntryType.Conf) {
    throw invalid(`entry type ${type} is neither normal (0) nor conf (1)`);
  }
  const data = r.bytes(r.u32('entry data length'), 'entry data');
  return { term, index, type: type as EntryType, data };
}

function readSnapshot(r: BodyReader): Snapshot {
  const index = r.u64('snapshot index') as LogIndex;
  const term = r.u64('snapshot term') as Term;
  const conf: ConfState = { voters: readIds(r, 'voter'), learners: readIds(r, 'learner') };
  const data = r.bytes(r.u32('snapshot data length'), 'snapshot data');
  return { meta: { index, term, conf }, data };
}

function readMessage(r: BodyReader): GroupMessage {
  const topicId = r.u32('topicId');
  const partition = r.u32('partition');
  const typeNumber = r.u8('message type');
  const type = MESSAGE_TYPES[typeNumber];
  if (type === undefined) throw invalid(`unknown message type ${typeNumber}`);
  const flags = r.u8('flags');
  if ((flags & ~FLAGS_KNOWN) !== 0) throw corrupt(`reserved flag bits 0x${flags.toString(16)}`);
  const from = readNodeId(r, 'from');
  const to = readNodeId(r, 'to');
  const term = r.u64('term') as Term;
  if ((flags & FLAG_HEARTBEAT_FORM) !== 0) {
    if (flags !== FLAG_HEARTBEAT_FORM) {
      throw corrupt(`flags 0x${flags.toString(16)} mix the heartbeat form with others`);
    }
    if (type !== MessageType.Heartbeat && type !== MessageType.HeartbeatResp) {
      throw invalid(`a ${type} message in the heartbeat form`);
    }
    const commit = r.u64('commit') as LogIndex;
    const readSeq = r.u64('readSeq');
    const context = r.string(2, CONTEXT_BYTES_MAX, 'context');
    const message: Message = {
      type,
      from,
      to,
      term,
      logTerm: 0 as Term,
      index: 0 as LogIndex,
      entries: EMPTY_ENTRIES,
      commit,
      reject: false,
      rejectHint: 0 as LogIndex,
      snapshot: null,
      context,
      readSeq,
    };
    return { group: { topicId, partition }, message };
  }
  const logTerm = r.u64('logTerm') as Term;
  const index = r.u64('index') as LogIndex;
  const commit = r.u64('commit') as LogIndex;
  const rejectHint = r.u64('rejectHint') as LogIndex;
  const readSeq = r.u64('readSeq');
  const context = r.string(2, CONTEXT_BYTES_MAX, 'context');
  const entryCount = r.count(4, ENTRY_FIXED_BYTES, 'entry count');
  let entries = EMPTY_ENTRIES;
  if (entryCount > 0) {
    const list: Entry[] = new Array(entryCount);
    for (let i = 0; i < entryCount; i++) list[i] = readEntry(r);
    entries = list;
  }
  const snapshot = (flags & FLAG_SNAPSHOT) !== 0 ? readSnapshot(r) : null;
  const message: Message = {
    type,
    from,
    to,
    term,
    logTerm,
    index,
    entries,
    commit,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
    snapshot,
    context,
    readSeq,
  };
  return { group: { topicId, partition }, message };
}

/**
 * Decodes a body written by `encodeRaftBatch`. Throws only StreamBusError CORRUPT_MESSAGE or
 * INVALID_REQUEST (rule 2). Data fields are views into `body`.
 */
export function decodeRaftBatch(body: Buffer): GroupMessage[] {
  const r = new BodyReader(body);
  const n = r.count(4, HEARTBEAT_FORM_BYTES, 'message count');
  const out: GroupMessage[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readMessage(r);
  if (r.remaining !== 0) throw corrupt(`${r.remaining} trailing bytes after ${n} messages`);
  return out;
}
