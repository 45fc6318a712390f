// The consumer-protocol bytes are Kafka's: a hand-written ConsumerProtocolSubscription v1 and
// Assignment, round trips, older and newer versions, and damage refused with CORRUPT_DATA.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, StreamBusError } from '../errors.js';
import {
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
} from './consumer-protocol.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('consumer protocol bytes', () => {
  it("writes Kafka's Subscription v1 and Assignment v1 layouts", () => {
    const sub = encodeSubscription({
      topics: ['t'],
      ownedPartitions: [
        { topic: 't', partition: 0 },
        { topic: 't', partition: 2 },
      ],
      userData: new Uint8Array(0),
    });
    // version 1 | 1 topic "t" | userData of 0 bytes | 1 owned topic "t" with partitions [0, 2]
    expect(Buffer.from(sub).toString('hex')).toBe(
      '0001' +
        '00000001' +
        '000174' +
        '00000000' +
        '00000001' +
        '000174' +
        '00000002' +
        '00000000' +
        '00000002',
    );
    const a = encodeAssignment({
      partitions: [{ topic: 'ab', partition: 7 }],
      userData: Uint8Array.of(9),
    });
    expect(Buffer.from(a).toString('hex')).toBe(
      '0001' + '00000001' + '00026162' + '00000001' + '00000007' + '00000001' + '09',
    );
  });

  it('reads v0 (no owned partitions, null userData) and a newer version with extra fields', () => {
    const v0 = hex('0000 00000002 000161 000162 ffffffff');
    expect(decodeSubscription(v0)).toEqual({
      topics: ['a', 'b'],
      ownedPartitions: [],
      userData: new Uint8Array(0),
    });
    // v4 (unknown): the v3 fields (generation, rack) then a trailing field that is ignored.
    const v4 = hex(
      '0004 00000001 000161 00000000 00000001 000161 00000001 00000003 0000000a ffff 1234',
    );
    expect(decodeSubscription(v4).ownedPartitions).toEqual([{ topic: 'a', partition: 3 }]);
  });

  it('round-trips any subscription and assignment', () => {
    const tps = fc.array(
      fc.record({ topic: fc.constantFrom('a', 'b', 'ü'), partition: fc.nat(1000) }),
      { maxLength: 20 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 10 })),
        tps,
        fc.uint8Array({ maxLength: 50 }),
        (topics, owned, userData) => {
          const d = decodeSubscription(
            encodeSubscription({ topics, ownedPartitions: owned, userData }),
          );
          expect(d.topics).toEqual(topics);
          // Grouped by topic on the wire: the same set, topic by topic in first-seen order.
          expect([...d.ownedPartitions].sort(cmp)).toEqual([...owned].sort(cmp));
          expect(d.userData).toEqual(userData);
          const a = decodeAssignment(encodeAssignment({ partitions: owned, userData }));
          expect([...a.partitions].sort(cmp)).toEqual([...owned].sort(cmp));
        },
      ),
    );
  });

  it('refuses truncated or damaged bytes with CORRUPT_DATA, never another error', () => {
    const good = encodeSubscription({
      topics: ['topic'],
      ownedPartitions: [{ topic: 'topic', partition: 1 }],
      userData: Uint8Array.of(1, 2),
    });
    for (let cut = 1; cut < good.length; cut++) {
      expect(() => decodeSubscription(good.subarray(0, cut))).toThrow(StreamBusError);
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        for (const decode of [decodeSubscription, decodeAssignment]) {
          try {
            decode(bytes);
          } catch (err) {
            expect(err).toBeInstanceOf(StreamBusError);
            expect((err as StreamBusError).code).toBe(ErrorCode.CORRUPT_DATA);
          }
        }
      }),
    );
    expect(() => decodeAssignment(hex('0001 7fffffff'))).toThrow(/assignment: .*count/);
    expect(decodeAssignment(new Uint8Array(0)).partitions).toEqual([]);
  });
});

function cmp(a: { topic: string; partition: number }, b: { topic: string; partition: number }) {
  return a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1;
}
