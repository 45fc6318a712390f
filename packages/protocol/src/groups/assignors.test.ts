// Property tests of the assignors: every partition of a subscribed topic assigned exactly once,
// and only to a subscriber; balance within one where the assignor guarantees it; output
// independent of input order; cooperative-sticky moves the minimum and, over its two phases,
// never hands a partition to a member while another still owns it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Assignor,
  type AssignorMember,
  cooperativeStickyAssignor,
  type GroupAssignment,
  rangeAssignor,
  roundRobinAssignor,
  stickyTarget,
} from './assignors.js';
import type { TopicPartition } from './topic-partition.js';

const TOPICS = ['a', 'b', 'c'];

const counts = fc
  .tuple(fc.nat(7), fc.nat(7), fc.nat(7))
  .map((ns) => new Map(TOPICS.map((t, i) => [t, ns[i]!] as [string, number])));

const key = (tp: TopicPartition) => `${tp.topic}/${tp.partition}`;

/** Members with random subscriptions; owned partitions disjoint (as a real generation leaves them). */
function membersArb(sameTopics: boolean) {
  return fc
    .tuple(
      fc.uniqueArray(fc.constantFrom('m1', 'm2', 'm3', 'm4', 'm5', 'x', 'y'), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.subarray(TOPICS, { minLength: 1 }),
      fc.array(fc.subarray(TOPICS, { minLength: 1 }), { minLength: 7, maxLength: 7 }),
      fc.array(fc.tuple(fc.constantFrom(...TOPICS), fc.nat(9), fc.nat(6)), { maxLength: 20 }),
    )
    .map(([ids, common, subs, owned]) => {
      const seen = new Set<string>();
      return ids.map((memberId, i) => ({
        memberId,
        topics: sameTopics ? common : subs[i]!,
        ownedPartitions: owned
          .filter(([, , who]) => who === i)
          .map(([topic, partition]) => ({ topic, partition }))
          .filter((tp) => {
            if (seen.has(key(tp))) return false;
            seen.add(key(tp));
            return true;
          }),
      }));
    });
}

function checkExactlyOnce(
  members: readonly AssignorMember[],
  partitionCounts: ReadonlyMap<string, number>,
  out: GroupAssignment,
  complete: boolean,
): void {
  expect([...out.keys()].sort()).toEqual(members.map((m) => m.memberId).sort());
  const owner = new Map<string, string>();
  for (const [id, tps] of out) {
    const m = members.find((x) => x.memberId === id)!;
    for (const tp of tps) {
      expect(m.topics).toContain(tp.topic);
      expect(tp.partition).toBeLessThan(partitionCounts.get(tp.topic) ?? 0);
      expect(owner.has(key(tp))).toBe(false);
      owner.set(key(tp), id);
    }
  }
  if (!complete) return;
  for (const t of new Set(members.flatMap((m) => m.topics))) {
    for (let p = 0; p < (partitionCounts.get(t) ?? 0); p++) {
      expect(owner.has(`${t}/${p}`)).toBe(true);
    }
  }
}

function spread(values: number[]): number {
  return values.length === 0 ? 0 : Math.max(...values) - Math.min(...values);
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function deterministic(a: Assignor) {
  return fc.property(membersArb(false), counts, fc.nat(), (members, c, seed) => {
    const one = a.assign(members, c);
    const other = a.assign(
      shuffled(members, seed).map((m) => ({ ...m, topics: shuffled(m.topics, seed + 1) })),
      c,
    );
    expect([...other].sort()).toEqual([...one].sort());
  });
}

describe('range', () => {
  it('assigns every partition once, to a subscriber, within one per topic', () => {
    fc.assert(
      fc.property(membersArb(false), counts, (members, c) => {
        const out = rangeAssignor.assign(members, c);
        checkExactlyOnce(members, c, out, true);
        for (const t of TOPICS) {
          const subs = members.filter((m) => m.topics.includes(t));
          const per = subs.map((m) => out.get(m.memberId)!.filter((tp) => tp.topic === t).length);
          expect(spread(per)).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 300 },
    );
  });
  it('is deterministic', () => {
    fc.assert(deterministic(rangeAssignor), { numRuns: 200 });
  });
  it('gives contiguous ranges in member id order', () => {
    const out = rangeAssignor.assign(
      [
        { memberId: 'b', topics: ['a'], ownedPartitions: [] },
        { memberId: 'a', topics: ['a'], ownedPartitions: [] },
      ],
      new Map([['a', 5]]),
    );
    expect(out.get('a')!.map((tp) => tp.partition)).toEqual([0, 1, 2]);
    expect(out.get('b')!.map((tp) => tp.partition)).toEqual([3, 4]);
  });
});

describe('round-robin', () => {
  it('assigns every partition once, to a subscriber; within one overall for equal subscriptions', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), counts, (same, _x, c) => {
        return fc.assert(
          fc.property(membersArb(same), (members) => {
            const out = roundRobinAssignor.assign(members, c);
            checkExactlyOnce(members, c, out, true);
            if (same) expect(spread([...out.values()].map((l) => l.length))).toBeLessThanOrEqual(1);
          }),
          { numRuns: 20 },
        );
      }),
      { numRuns: 20 },
    );
  });
  it('is deterministic', () => {
    fc.assert(deterministic(roundRobinAssignor), { numRuns: 200 });
  });
});

describe('cooperative-sticky', () => {
  it('never assigns a partition that another member still owns, nor one twice', () => {
    fc.assert(
      fc.property(membersArb(false), counts, (members, c) => {
        const out = cooperativeStickyAssignor.assign(members, c);
        checkExactlyOnce(members, c, out, false);
        for (const [id, tps] of out) {
          for (const tp of tps) {
            const owner = members.find((m) => m.ownedPartitions.some((o) => key(o) === key(tp)));
            expect(owner === undefined || owner.memberId === id).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  /** Runs rebalances, each member owning what the last one gave it, until nothing changes. */
  function converge(
    members: readonly AssignorMember[],
    c: ReadonlyMap<string, number>,
    max: number,
  ) {
    let current = members;
    for (let round = 1; round <= max; round++) {
      const out = cooperativeStickyAssignor.assign(current, c);
      const revoked = current.some((m) => {
        const kept = new Set(out.get(m.memberId)!.map(key));
        return m.ownedPartitions.some((tp) => !kept.has(key(tp)));
      });
      current = current.map((m) => ({ ...m, ownedPartitions: out.get(m.memberId)! }));
      if (!revoked) return { rounds: round, members: current, out };
    }
    return { rounds: max + 1, members: current, out: new Map() as GroupAssignment };
  }

  it('completes in the second phase for equal subscriptions: everything once, nothing revoked', () => {
    fc.assert(
      fc.property(membersArb(true), counts, (members, c) => {
        const first = cooperativeStickyAssignor.assign(members, c);
        const next = members.map((m) => ({ ...m, ownedPartitions: first.get(m.memberId)! }));
        const second = cooperativeStickyAssignor.assign(next, c);
        checkExactlyOnce(next, c, second, true);
        // The second phase revokes nothing: only the first one moves partitions away.
        for (const m of next) {
          const kept = new Set(second.get(m.memberId)!.map(key));
          for (const tp of m.ownedPartitions) expect(kept.has(key(tp))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('converges for any subscriptions: a few rebalances, then everything assigned once', () => {
    fc.assert(
      fc.property(membersArb(false), counts, (members, c) => {
        const result = converge(members, c, 4);
        expect(result.rounds).toBeLessThanOrEqual(4);
        checkExactlyOnce(result.members, c, result.out, true);
      }),
      { numRuns: 300 },
    );
  });

  it('balances within one for equal subscriptions and moves the minimum', () => {
    fc.assert(
      fc.property(membersArb(true), counts, (members, c) => {
        const target = stickyTarget(members, c);
        checkExactlyOnce(members, c, target, true);
        const sizes = [...target.values()].map((l) => l.length);
        expect(spread(sizes)).toBeLessThanOrEqual(1);
        // Minimal movement: each member keeps as many of its (valid) partitions as its final count allows.
        for (const m of members) {
          const valid = m.ownedPartitions.filter(
            (tp) => m.topics.includes(tp.topic) && tp.partition < (c.get(tp.topic) ?? 0),
          );
          const final = target.get(m.memberId)!;
          const kept = final.filter((tp) => valid.some((o) => key(o) === key(tp))).length;
          expect(kept).toBe(Math.min(valid.length, final.length));
        }
        // And the members that end above the minimum are ones that owned that many already
        // whenever possible: the number of partitions that change owner is the least possible.
        const total = sizes.reduce((x, y) => x + y, 0);
        const lo = Math.floor(total / members.length);
        const validCounts = members.map(
          (m) =>
            m.ownedPartitions.filter(
              (tp) => m.topics.includes(tp.topic) && tp.partition < (c.get(tp.topic) ?? 0),
            ).length,
        );
        const highs = total - lo * members.length;
        const sortedValid = [...validCounts].sort((x, y) => y - x);
        let minMoves = 0;
        sortedValid.forEach((v, i) => {
          minMoves += Math.max(0, v - (i < highs ? lo + 1 : lo));
        });
        let moves = 0;
        members.forEach((m, i) => {
          const kept = target
            .get(m.memberId)!
            .filter((tp) => m.ownedPartitions.some((o) => key(o) === key(tp))).length;
          moves += validCounts[i]! - kept;
        });
        expect(moves).toBe(minMoves);
      }),
      { numRuns: 400 },
    );
  });

  it('is deterministic', () => {
    fc.assert(deterministic(cooperativeStickyAssignor), { numRuns: 200 });
  });

  it('keeps everything when nothing changes', () => {
    const c = new Map([['a', 6]]);
    const members = ['m1', 'm2', 'm3'].map((memberId) => ({
      memberId,
      topics: ['a'],
      ownedPartitions: [] as TopicPartition[],
    }));
    const first = cooperativeStickyAssignor.assign(members, c);
    const again = cooperativeStickyAssignor.assign(
      members.map((m) => ({ ...m, ownedPartitions: first.get(m.memberId)! })),
      c,
    );
    expect(again).toEqual(first);
  });
});
