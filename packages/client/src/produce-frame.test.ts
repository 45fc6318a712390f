import { ApiKey, decodeRequest, encodeRequest, FrameParser } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeProduceChunks } from './produce-frame.js';

describe('encodeProduceChunks', () => {
  const topicArb = fc.record({
    name: fc.string({ minLength: 1, maxLength: 300, unit: 'grapheme' }),
    partitions: fc.array(
      fc.record({
        partition: fc.oneof(
          fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 99_999),
          fc.nat({ max: 99_999 }),
        ),
        records: fc
          .oneof(
            { arbitrary: fc.nat({ max: 300 }), weight: 30 },
            { arbitrary: fc.constantFrom(255, 256, 65535, 65536), weight: 1 },
          )
          .map((n) => Buffer.alloc(n, n & 0xff)),
      }),
      { maxLength: 18 },
    ),
  });

  it('writes a frame decodeRequest reads back as the same request', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(-1 as const, 0 as const, 1 as const),
        fc.oneof(fc.constantFrom(0, 31, 32, 127, 128, 30_000, 65536), fc.nat()),
        fc.array(topicArb, { maxLength: 18 }),
        fc.nat(),
        (acks, timeoutMs, topics, correlationId) => {
          const frame = Buffer.concat(
            encodeProduceChunks(correlationId, 0, acks, timeoutMs, topics),
          );
          // msgpackr's encoding differs only in map headers (map16 vs fixmap).
          const reference = encodeRequest(
            ApiKey.PRODUCE,
            correlationId,
            { acks, timeoutMs, topics },
            { apiVersion: 0 },
          );
          expect(reference.length - frame.length).toBe(
            2 * (1 + topics.length + topics.reduce((s, t) => s + t.partitions.length, 0)),
          );
          const parsed = new FrameParser().push(frame);
          expect(parsed).toHaveLength(1);
          expect(parsed[0]!.correlationId).toBe(correlationId);
          const back = decodeRequest(ApiKey.PRODUCE, parsed[0]!);
          expect(back.acks).toBe(acks);
          expect(back.timeoutMs).toBe(timeoutMs);
          expect(back.topics.map((t) => t.name)).toEqual(topics.map((t) => t.name));
          const sent = topics.flatMap((t) => t.partitions);
          const got = back.topics.flatMap((t) => t.partitions);
          expect(got.map((p) => p.partition)).toEqual(sent.map((p) => p.partition));
          for (let i = 0; i < sent.length; i++) {
            expect(Buffer.from(got[i]!.records).equals(sent[i]!.records)).toBe(true);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('leaves the batch buffers uncopied among the chunks', () => {
    const records = Buffer.alloc(100_000, 7);
    const chunks = encodeProduceChunks(9, 0, 1, 1000, [
      { name: 't', partitions: [{ partition: 0, records }] },
    ]);
    expect(chunks).toHaveLength(2);
    expect(chunks[1]).toBe(records);
  });
});
