// Property and fuzz tests of the Raft batch codec and the link frames: random batches round-trip
// (data as views, large data not copied on encode); random bytes, bit flips, truncations and
// forged counts end in typed errors only, without allocating beyond the input.
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import {
  type Entry,
  type LogIndex,
  type Message,
  MessageType,
  message,
  type NodeId,
  type Term,
} from '@streambus/raft';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeErrorResponse,
  decodeHello,
  decodeRefuse,
  decodeRequest,
  decodeWelcome,
  encodeHello,
  isPeerPreamble,
  PEER_PREAMBLE,
  PeerFrameParser,
} from './peer-frame.js';
import {
  decodeRaftBatch,
  encodedMessageBytes,
  encodeRaftBatch,
  type GroupMessage,
  HEARTBEAT_FORM_BYTES,
  INLINE_DATA_BYTES_MAX,
  inHeartbeatForm,
  MESSAGE_FIXED_BYTES,
  MESSAGE_TYPES,
} from './raft-batch-codec.js';

const TYPED = new Set<number>([
  ErrorCode.CORRUPT_MESSAGE,
  ErrorCode.INVALID_REQUEST,
  ErrorCode.MALFORMED_FRAME,
  ErrorCode.FRAME_TOO_LARGE,
]);

function typedOnly(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!isStreamBusError(err) || !TYPED.has(err.code)) {
      throw new Error(`untyped or unexpected error: ${String(err)}`, { cause: err });
    }
  }
}

const safe = fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER), fc.nat());
const nodeId = fc.integer({ min: 1, max: 0xffffffff }).map((n) => n as NodeId);
const data = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ minLength: INLINE_DATA_BYTES_MAX, maxLength: INLINE_DATA_BYTES_MAX + 300 }),
);
const entry: fc.Arbitrary<Entry> = fc.record({
  term: safe.map((n) => n as Term),
  index: safe.map((n) => n as LogIndex),
  type: fc.constantFrom(0 as const, 1 as const),
  data,
});
const ids = fc.uniqueArray(nodeId, { maxLength: 5 });
const arbMessage: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...MESSAGE_TYPES),
    from: nodeId,
    to: nodeId,
    term: safe,
    logTerm: safe,
    index: safe,
    commit: safe,
    rejectHint: safe,
    readSeq: safe,
    reject: fc.boolean(),
    context: fc.oneof(fc.constant(''), fc.string({ maxLength: 60 })),
    entries: fc.array(entry, { maxLength: 4 }),
    snapshot: fc.option(
      fc.record({
        meta: fc.record({
          index: safe.map((n) => n as LogIndex),
          term: safe.map((n) => n as Term),
          conf: fc.record({ voters: ids, learners: ids }),
        }),
        data,
      }),
    ),
  })
  .map((f) =>
    message({
      ...f,
      term: f.term as Term,
      logTerm: f.logTerm as Term,
      index: f.index as LogIndex,
      commit: f.commit as LogIndex,
      rejectHint: f.rejectHint as LogIndex,
    }),
  );
/** What the Raft core sends as heartbeats and their responses (the heartbeat form, rule 4). */
const arbHeartbeat: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(MessageType.Heartbeat, MessageType.HeartbeatResp),
    from: nodeId,
    to: nodeId,
    term: safe,
    commit: safe,
    readSeq: safe,
    context: fc.oneof(fc.constant(''), fc.constant('quiesce'), fc.string({ maxLength: 20 })),
  })
  .map((f) => message({ ...f, term: f.term as Term, commit: f.commit as LogIndex }));
const groupKey = fc.record({
  topicId: fc.nat({ max: 0xffffffff }),
  partition: fc.nat({ max: 0xffffffff }),
});
const item: fc.Arbitrary<GroupMessage> = fc.record({
  group: groupKey,
  message: fc.oneof(arbMessage, arbHeartbeat),
});

function joined(items: readonly GroupMessage[]): Buffer {
  const body = encodeRaftBatch(items);
  const buf = Buffer.concat(body.parts as Buffer[]);
  expect(buf.length).toBe(body.bytes);
  return buf;
}

/** Entries and snapshot data as plain arrays, for deep comparison with the input. */
function plain(items: readonly GroupMessage[]): unknown {
  return items.map(({ group, message: m }) => ({
    group: { topicId: group.topicId, partition: group.partition },
    message: {
      ...m,
      entries: m.entries.map((e) => ({ ...e, data: [...e.data] })),
      snapshot: m.snapshot
        ? {
            meta: {
              ...m.snapshot.meta,
              conf: {
                voters: [...m.snapshot.meta.conf.voters],
                learners: [...m.snapshot.meta.conf.learners],
              },
            },
            data: [...m.snapshot.data],
          }
        : null,
    },
  }));
}

describe('raft batch codec', () => {
  it('round-trips random batches; the size estimate is exact', () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 8 }), (items) => {
        const buf = joined(items);
        const sum = 4 + items.reduce((n, i) => n + encodedMessageBytes(i.message), 0);
        expect(buf.length).toBe(sum);
        expect(plain(decodeRaftBatch(buf))).toEqual(plain(items));
      }),
      { numRuns: 300 },
    );
  });

  it('sends large data as its own part (no copy) and decodes data as views of the body', () => {
    const big = Buffer.alloc(INLINE_DATA_BYTES_MAX * 4, 7);
    const m = message({
      type: 'append',
      from: 1 as NodeId,
      to: 2 as NodeId,
      term: 3 as Term,
      entries: [
        { term: 3 as Term, index: 10 as LogIndex, type: 0, data: big },
        { term: 3 as Term, index: 11 as LogIndex, type: 0, data: Buffer.from('tiny') },
      ],
    });
    const body = encodeRaftBatch([{ group: { topicId: 5, partition: 1 }, message: m }]);
    expect(body.parts.some((p) => p === big)).toBe(true);
    const buf = Buffer.concat(body.parts as Buffer[]);
    const [decoded] = decodeRaftBatch(buf);
    const d = decoded!.message.entries[0]!.data;
    expect(d.buffer).toBe(buf.buffer);
    expect(Buffer.from(d).equals(big)).toBe(true);
  });

  it('refuses random bytes, bit flips and truncations with typed errors only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        typedOnly(() => decodeRaftBatch(Buffer.from(bytes)));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(
        fc.array(item, { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(),
        (items, flips, cut) => {
          const buf = joined(items);
          const flipped = Buffer.from(buf);
          for (const [at, x] of flips) flipped[at % flipped.length]! ^= x;
          typedOnly(() => decodeRaftBatch(flipped));
          const truncated = buf.subarray(0, cut % buf.length);
          let err: unknown = null;
          try {
            decodeRaftBatch(truncated);
          } catch (e) {
            err = e;
          }
          expect(isStreamBusError(err, ErrorCode.CORRUPT_MESSAGE)).toBe(true);
          typedOnly(() => decodeRaftBatch(Buffer.concat([buf, Buffer.from([0])])));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('checks declared counts against the body before allocating', () => {
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff, 0);
    expect(() => decodeRaftBatch(huge)).toThrow(/cannot fit/);
    // One message whose entry count claims 2^32 - 1 entries.
    const m = message({ type: 'append', from: 1 as NodeId, to: 2 as NodeId, term: 1 as Term });
    const buf = joined([{ group: { topicId: 1, partition: 0 }, message: m }]);
    buf.writeUInt32BE(0xffffffff, 4 + MESSAGE_FIXED_BYTES - 4);
    expect(() => decodeRaftBatch(buf)).toThrow(/entry count 4294967295 .* cannot fit/);
  });

  it('coalesced heartbeats: 1,000 groups of heartbeats and responses in one small body, decoded as sent', () => {
    const items: GroupMessage[] = [];
    for (let g = 0; g < 1000; g++) {
      const type = g % 2 === 0 ? MessageType.Heartbeat : MessageType.HeartbeatResp;
      const m = message({
        type,
        from: 1 as NodeId,
        to: 2 as NodeId,
        term: 7 as Term,
        commit: (g * 3) as LogIndex,
        readSeq: g,
      });
      expect(inHeartbeatForm(m)).toBe(true);
      items.push({ group: { topicId: 1 + (g >> 4), partition: g & 15 }, message: m });
    }
    const buf = joined(items);
    expect(buf.length).toBe(4 + 1000 * HEARTBEAT_FORM_BYTES);
    expect(HEARTBEAT_FORM_BYTES).toBeLessThan(MESSAGE_FIXED_BYTES * 0.65);
    expect(plain(decodeRaftBatch(buf))).toEqual(plain(items));
    // A heartbeat the form cannot carry (a reject, say) takes the full form, unchanged.
    const odd = message({
      type: MessageType.HeartbeatResp,
      from: 2 as NodeId,
      to: 1 as NodeId,
      term: 7 as Term,
      reject: true,
    });
    expect(inHeartbeatForm(odd)).toBe(false);
    const oddItems = [{ group: { topicId: 1, partition: 0 }, message: odd }];
    expect(plain(decodeRaftBatch(joined(oddItems)))).toEqual(plain(oddItems));
  });

  it('the heartbeat form on another type, or mixed with other flags, is refused typed', () => {
    const hb = message({ type: 'heartbeat', from: 1 as NodeId, to: 2 as NodeId, term: 1 as Term });
    const buf = joined([{ group: { topicId: 1, partition: 0 }, message: hb }]);
    const onAppend = Buffer.from(buf);
    onAppend[4 + 8] = MESSAGE_TYPES.indexOf(MessageType.Append);
    expect(() => decodeRaftBatch(onAppend)).toThrow(/append message in the heartbeat form/);
    const mixed = Buffer.from(buf);
    mixed[4 + 9] = 0x4 | 0x1;
    expect(() => decodeRaftBatch(mixed)).toThrow(/mix the heartbeat form/);
  });

  it('names a node id of 0 and an unknown type as invalid requests', () => {
    const m = message({ type: 'heartbeat', from: 1 as NodeId, to: 2 as NodeId, term: 1 as Term });
    const buf = joined([{ group: { topicId: 1, partition: 0 }, message: m }]);
    const zeroFrom = Buffer.from(buf);
    zeroFrom.writeUInt32BE(0, 4 + 10);
    expect(() => decodeRaftBatch(zeroFrom)).toThrow(/from is node 0/);
    const badType = Buffer.from(buf);
    badType[4 + 8] = MESSAGE_TYPES.length;
    let err: unknown = null;
    try {
      decodeRaftBatch(badType);
    } catch (e) {
      err = e;
    }
    expect(isStreamBusError(err, ErrorCode.INVALID_REQUEST)).toBe(true);
  });
});

describe('peer frames', () => {
  it('the preamble is decided by its first byte and is never a valid native frame length', () => {
    expect(isPeerPreamble(PEER_PREAMBLE.subarray(0, 1))).toBe(true);
    expect(isPeerPreamble(PEER_PREAMBLE)).toBe(true);
    expect(isPeerPreamble(Buffer.from([0, 0, 0, 20]))).toBe(false);
    expect(isPeerPreamble(Buffer.from('GET / HTTP/1.1'))).toBe(false);
    expect(isPeerPreamble(Buffer.alloc(0))).toBe(false);
    expect(PEER_PREAMBLE.readUInt32BE(0)).toBeGreaterThan(1024 * 1024 * 1024);
  });

  it('the parser refuses oversized and unknown frames at their header, typed', () => {
    const p = new PeerFrameParser(1024);
    const big = Buffer.from([0, 0, 8, 0, 4]);
    expect(() => p.push(big)).toThrow(/exceeds the maximum/);
    expect(() => p.push(Buffer.alloc(0))).toThrow(/exceeds the maximum/);
    const q = new PeerFrameParser(1024);
    expect(() => q.push(Buffer.from([0, 0, 0, 1, 99]))).toThrow(/unknown peer frame kind 99/);
  });

  it('reassembles frames split at every byte', () => {
    const hello = encodeHello({
      version: 1,
      from: 3 as NodeId,
      to: 1 as NodeId,
      clusterId: 'c-1',
    });
    const stream = Buffer.concat([hello, hello]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const p = new PeerFrameParser(1024);
      const frames = [...p.push(stream.subarray(0, cut)), ...p.push(stream.subarray(cut))];
      expect(frames.length).toBe(2);
      expect(decodeHello(frames[1]!.body)).toEqual({
        version: 1,
        from: 3,
        to: 1,
        clusterId: 'c-1',
      });
    }
  });

  it('random bytes into the parser and every body decoder end in typed errors only', () => {
    const decoders = [
      decodeHello,
      decodeWelcome,
      decodeRefuse,
      decodeRequest,
      decodeErrorResponse,
      decodeRaftBatch,
    ];
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), (chunks) => {
        const p = new PeerFrameParser(4096);
        typedOnly(() => {
          for (const c of chunks) {
            for (const f of p.push(Buffer.from(c))) {
              for (const d of decoders) typedOnly(() => d(f.body));
            }
          }
        });
      }),
      { numRuns: 500 },
    );
  });
});
