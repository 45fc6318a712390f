import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RaftError } from './errors.js';
import { MemoryStorage } from './storage.js';
import type { Entry, LogIndex, NodeId, Term } from './types.js';

const entry = (index: number, term: number, size = 1): Entry => ({
  index: index as LogIndex,
  term: term as Term,
  type: 0,
  data: new Uint8Array(size),
});

describe('MemoryStorage', () => {
  it('matches a plain-array model under appends, truncations and compactions', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('append' as const),
        back: fc.nat({ max: 5 }),
        count: fc.integer({ min: 1, max: 4 }),
      }),
      fc.record({
        kind: fc.constant('compact' as const),
        back: fc.nat({ max: 6 }),
        count: fc.constant(0),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const s = new MemoryStorage({ voters: [1 as NodeId], learners: [] });
        let model: Entry[] = []; // model[k] has index k + 1
        let compacted = 0;
        let term = 1;
        for (const o of ops) {
          if (o.kind === 'append') {
            term++;
            const at = Math.max(compacted + 1, model.length + 1 - o.back);
            const es = Array.from({ length: o.count }, (_, i) => entry(at + i, term));
            s.append(es);
            model = [...model.slice(0, at - 1), ...es];
          } else {
            const to = Math.max(compacted, model.length - o.back);
            if (to > compacted) {
              s.createSnapshot(
                to as LogIndex,
                { voters: [1 as NodeId], learners: [] },
                new Uint8Array(0),
              );
              s.compact(to as LogIndex);
              compacted = to;
            }
          }
          expect(s.firstIndex()).toBe(compacted + 1);
          expect(s.lastIndex()).toBe(model.length);
          for (let i = compacted + 1; i <= model.length; i++)
            expect(s.term(i as LogIndex)).toBe(model[i - 1]!.term);
          if (model.length > compacted) {
            const got = s.entries(
              (compacted + 1) as LogIndex,
              (model.length + 1) as LogIndex,
              Infinity,
            );
            expect(got.map((e) => e.index)).toEqual(model.slice(compacted).map((e) => e.index));
          }
        }
      }),
    );
  });

  it('returns entries by reference within the byte limit, at least one', () => {
    const s = new MemoryStorage();
    const es = [entry(1, 1, 100), entry(2, 1, 100), entry(3, 1, 100)];
    s.append(es);
    expect(s.entries(1 as LogIndex, 4 as LogIndex, 250)).toHaveLength(2);
    expect(s.entries(1 as LogIndex, 4 as LogIndex, 10)).toHaveLength(1);
    expect(s.entries(1 as LogIndex, 4 as LogIndex, 10)[0]!.data).toBe(es[0]!.data);
  });

  it('refuses gaps, out-of-range reads and compaction past the snapshot with typed errors', () => {
    const s = new MemoryStorage();
    s.append([entry(1, 1), entry(2, 1)]);
    expect(() => s.append([entry(4, 1)])).toThrow(RaftError);
    expect(() => s.entries(1 as LogIndex, 5 as LogIndex, 10)).toThrow(RaftError);
    expect(() => s.compact(2 as LogIndex)).toThrow(/beyond the snapshot/);
    expect(s.term(0 as LogIndex)).toBe(0);
    expect(s.term(3 as LogIndex)).toBeUndefined();
  });
});
