import { ErrorCode, StreamBusError } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lastSequence, ProducerStateTable, SEQUENCE_MAX } from './idempotence.js';

function errCode(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    return (err as StreamBusError).code;
  }
  return 0;
}

/** Appends a batch as the partition shell does: check, then record with an offset. */
function append(
  t: ProducerStateTable,
  pid: number,
  epoch: number,
  seq: number,
  count: number,
  offset: number,
) {
  const last = lastSequence(seq, count - 1);
  const d = t.check(pid, epoch, seq, last);
  if (d.kind === 'duplicate') return d.entry.baseOffset;
  t.record(pid, epoch, seq, last, offset);
  return null;
}

describe('ProducerStateTable', () => {
  it('accepts any sequence from an unknown producer and then requires continuity', () => {
    const t = new ProducerStateTable();
    expect(append(t, 7, 0, 42, 3, 0)).toBeNull();
    expect(append(t, 7, 0, 45, 2, 3)).toBeNull();
    expect(errCode(() => t.check(7, 0, 48, 48))).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(errCode(() => t.check(7, 0, 46, 47))).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(t.check(7, 0, 47, 50).kind).toBe('append');
  });

  it('answers a retried batch with its original base offset', () => {
    const t = new ProducerStateTable();
    append(t, 1, 0, 0, 10, 100);
    append(t, 1, 0, 10, 10, 110);
    const d = t.check(1, 0, 0, 9);
    expect(d).toEqual({ kind: 'duplicate', entry: { firstSeq: 0, lastSeq: 9, baseOffset: 100 } });
  });

  it('keeps only the last five batches', () => {
    const t = new ProducerStateTable();
    for (let i = 0; i < 6; i++) append(t, 1, 0, i, 1, i);
    expect(errCode(() => t.check(1, 0, 0, 0))).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(t.check(1, 0, 1, 1)).toMatchObject({ kind: 'duplicate', entry: { baseOffset: 1 } });
  });

  it('fences older epochs and requires sequence 0 for a new epoch', () => {
    const t = new ProducerStateTable();
    append(t, 1, 3, 0, 5, 0);
    expect(errCode(() => t.check(1, 2, 5, 5))).toBe(ErrorCode.INVALID_PRODUCER_EPOCH);
    expect(errCode(() => t.check(1, 4, 5, 5))).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(append(t, 1, 4, 0, 1, 5)).toBeNull();
    expect(errCode(() => t.check(1, 3, 5, 5))).toBe(ErrorCode.INVALID_PRODUCER_EPOCH);
  });

  it('wraps sequences at 2^31 - 1', () => {
    const t = new ProducerStateTable();
    append(t, 1, 0, SEQUENCE_MAX - 1, 2, 0);
    expect(lastSequence(SEQUENCE_MAX - 1, 2)).toBe(0);
    expect(t.check(1, 0, 0, 4).kind).toBe('append');
  });

  it('forgets the least recently used producer at the bound, and rolls back failed appends', () => {
    const t = new ProducerStateTable(2);
    append(t, 1, 0, 0, 1, 0);
    append(t, 2, 0, 0, 1, 1);
    append(t, 1, 0, 1, 1, 2);
    append(t, 3, 0, 0, 1, 3);
    expect(t.size).toBe(2);
    expect(t.check(2, 0, 99, 99).kind).toBe('append'); // forgotten: any sequence
    const e = t.record(1, 0, 2, 2, null);
    t.forget(1, e);
    expect(t.check(1, 0, 2, 2).kind).toBe('append');
  });

  it('round-trips through a snapshot and rebuilds by replaying headers', () => {
    const t = new ProducerStateTable();
    append(t, 5, 1, 0, 4, 10);
    append(t, 5, 1, 4, 4, 14);
    const copy = ProducerStateTable.fromJSON(JSON.parse(JSON.stringify(t.toJSON())));
    expect(copy.check(5, 1, 4, 7)).toMatchObject({ kind: 'duplicate', entry: { baseOffset: 14 } });
    const replayed = new ProducerStateTable();
    replayed.observe(5, 1, 0, 3, 10);
    replayed.observe(5, 1, 4, 3, 14);
    replayed.observe(-1, -1, -1, 9, 18); // not idempotent: ignored
    expect(replayed.toJSON()).toEqual(t.toJSON());
  });

  it('matches a model: in-order batches append, retries of the last five are duplicates, gaps fail', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: -7, max: 2 })), {
          maxLength: 60,
        }),
        (ops) => {
          const t = new ProducerStateTable();
          const log: Array<{ first: number; last: number; offset: number }> = [];
          let next = 0;
          let offset = 0;
          for (const [count, shift] of ops) {
            const first =
              shift <= 0 && log.length > 0
                ? log[Math.max(0, log.length + shift - 1)]!.first
                : next + Math.max(0, shift - 1);
            const known = log.slice(-5).find((b) => b.first === first);
            const last = known ? known.last : first + count - 1;
            let outcome: string;
            try {
              const d = t.check(9, 0, first, last);
              if (d.kind === 'duplicate') outcome = `dup:${d.entry.baseOffset}`;
              else {
                t.record(9, 0, first, last, offset);
                outcome = 'append';
              }
            } catch {
              outcome = 'gap';
            }
            const expected = known
              ? `dup:${known.offset}`
              : log.length === 0 || first === next
                ? 'append'
                : 'gap';
            expect(outcome).toBe(expected);
            if (outcome === 'append') {
              log.push({ first, last, offset });
              next = last + 1;
              offset += last - first + 1;
            }
          }
        },
      ),
    );
  });
});
