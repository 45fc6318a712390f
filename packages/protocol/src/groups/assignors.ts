// The partition assignors a group's leader runs (docs/groups.md): range, round-robin and
// cooperative-sticky. Pure and deterministic: the output depends only on the members' ids,
// subscriptions and owned partitions and on the partition counts, never on input order.
//
// Cooperative-sticky (KIP-429): first a sticky target (every member keeps what it owns and may
// still own, the rest goes to the least loaded, then single moves from the most to the least
// loaded member until counts differ by at most one where subscriptions allow); then the
// cooperative rule: a partition whose target owner differs from its current owner is left out
// of this assignment (its owner revokes it and rejoins; the next rebalance hands it over).
import type { TopicPartition } from './topic-partition.js';

export interface AssignorMember {
  readonly memberId: string;
  readonly topics: readonly string[];
  readonly ownedPartitions: readonly TopicPartition[];
}

/** Member id -> partitions, each list sorted by topic then partition; every member present. */
export type GroupAssignment = Map<string, TopicPartition[]>;

export interface Assignor {
  readonly name: string;
  assign(
    members: readonly AssignorMember[],
    partitionsPerTopic: ReadonlyMap<string, number>,
  ): GroupAssignment;
}

export function compareTopicPartitions(a: TopicPartition, b: TopicPartition): number {
  if (a.topic !== b.topic) return a.topic < b.topic ? -1 : 1;
  return a.partition - b.partition;
}

function compareIds(a: { memberId: string }, b: { memberId: string }): number {
  return a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0;
}

function tpKey(tp: TopicPartition): string {
  return `${tp.topic}\u0000${tp.partition}`;
}

function emptyAssignment(members: readonly AssignorMember[]): GroupAssignment {
  const out: GroupAssignment = new Map();
  for (const m of [...members].sort(compareIds)) out.set(m.memberId, []);
  return out;
}

function sortLists(a: GroupAssignment): GroupAssignment {
  for (const list of a.values()) list.sort(compareTopicPartitions);
  return a;
}

/** Every partition of every topic some member subscribes to (and that exists), sorted. */
function subscribedPartitions(
  members: readonly AssignorMember[],
  partitionsPerTopic: ReadonlyMap<string, number>,
): TopicPartition[] {
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
  const out: TopicPartition[] = [];
  for (const topic of topics) {
    const n = partitionsPerTopic.get(topic) ?? 0;
    for (let p = 0; p < n; p++) out.push({ topic, partition: p });
  }
  return out;
}

/** Per topic, its subscribers in id order share its partitions in contiguous ranges. */
export const rangeAssignor: Assignor = {
  name: 'range',
  assign(members, partitionsPerTopic) {
    const out = emptyAssignment(members);
    const sorted = [...members].sort(compareIds);
    const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
    for (const topic of topics) {
      const n = partitionsPerTopic.get(topic) ?? 0;
      const subs = sorted.filter((m) => m.topics.includes(topic));
      const per = Math.floor(n / subs.length);
      const extra = n % subs.length;
      let next = 0;
      subs.forEach((m, i) => {
        const count = per + (i < extra ? 1 : 0);
        for (let p = next; p < next + count; p++)
          out.get(m.memberId)!.push({ topic, partition: p });
        next += count;
      });
    }
    return sortLists(out);
  },
};

/** All partitions in order, dealt to the members in id order, skipping non-subscribers. */
export const roundRobinAssignor: Assignor = {
  name: 'roundrobin',
  assign(members, partitionsPerTopic) {
    const out = emptyAssignment(members);
    const sorted = [...members].sort(compareIds);
    let next = 0;
    for (const tp of subscribedPartitions(members, partitionsPerTopic)) {
      for (let i = 0; i < sorted.length; i++) {
        const m = sorted[(next + i) % sorted.length]!;
        if (!m.topics.includes(tp.topic)) continue;
        out.get(m.memberId)!.push(tp);
        next = (next + i + 1) % sorted.length;
        break;
      }
    }
    return sortLists(out);
  },
};

/** The sticky target, before the cooperative rule (exported for the stickiness tests). */
export function stickyTarget(
  members: readonly AssignorMember[],
  partitionsPerTopic: ReadonlyMap<string, number>,
): GroupAssignment {
  const out = emptyAssignment(members);
  const sorted = [...members].sort(compareIds);
  const subscribed = new Map(sorted.map((m) => [m.memberId, new Set(m.topics)]));
  const exists = (tp: TopicPartition) => tp.partition < (partitionsPerTopic.get(tp.topic) ?? 0);
  const taken = new Set<string>();
  // 1. Keep what each member owns and may still own (a partition claimed twice: lowest id).
  for (const m of sorted) {
    for (const tp of [...m.ownedPartitions].sort(compareTopicPartitions)) {
      const key = tpKey(tp);
      if (!exists(tp) || !subscribed.get(m.memberId)!.has(tp.topic) || taken.has(key)) continue;
      taken.add(key);
      out.get(m.memberId)!.push({ topic: tp.topic, partition: tp.partition });
    }
  }
  const count = (id: string) => out.get(id)!.length;
  const leastLoaded = (topic: string, below: number) => {
    let best: AssignorMember | undefined;
    for (const m of sorted) {
      if (!subscribed.get(m.memberId)!.has(topic) || count(m.memberId) >= below) continue;
      if (best === undefined || count(m.memberId) < count(best.memberId)) best = m;
    }
    return best;
  };
  // 2. The rest goes to the least loaded subscriber, topics with the fewest subscribers first.
  const subscribers = (topic: string) =>
    sorted.filter((m) => subscribed.get(m.memberId)!.has(topic)).length;
  const rest = subscribedPartitions(members, partitionsPerTopic).sort(
    (x, y) => subscribers(x.topic) - subscribers(y.topic) || compareTopicPartitions(x, y),
  );
  const fresh = new Set<string>();
  for (const tp of rest) {
    if (taken.has(tpKey(tp))) continue;
    const m = leastLoaded(tp.topic, Number.POSITIVE_INFINITY);
    if (m === undefined) continue;
    out.get(m.memberId)!.push(tp);
    taken.add(tpKey(tp));
    fresh.add(tpKey(tp));
  }
  // 3. Single moves from the most loaded member to a subscriber with at least two fewer; a
  //    partition given out in step 2 moves before one the member already owned.
  for (;;) {
    const donors = [...sorted].sort(
      (a, b) => count(b.memberId) - count(a.memberId) || compareIds(a, b),
    );
    let moved = false;
    for (const a of donors) {
      // Owned partitions first, fresh ones last: the scan from the end tries fresh ones first.
      const list = out
        .get(a.memberId)!
        .sort(
          (x, y) =>
            Number(fresh.has(tpKey(x))) - Number(fresh.has(tpKey(y))) ||
            compareTopicPartitions(x, y),
        );
      for (let i = list.length - 1; i >= 0 && !moved; i--) {
        const tp = list[i]!;
        const b = leastLoaded(tp.topic, list.length - 1);
        if (b === undefined) continue;
        list.splice(i, 1);
        out.get(b.memberId)!.push(tp);
        moved = true;
      }
      if (moved) break;
    }
    if (!moved) break;
  }
  return sortLists(out);
}

export const cooperativeStickyAssignor: Assignor = {
  name: 'cooperative-sticky',
  assign(members, partitionsPerTopic) {
    const target = stickyTarget(members, partitionsPerTopic);
    const owner = new Map<string, string>();
    for (const m of [...members].sort(compareIds)) {
      for (const tp of m.ownedPartitions)
        if (!owner.has(tpKey(tp))) owner.set(tpKey(tp), m.memberId);
    }
    const out: GroupAssignment = new Map();
    for (const [id, tps] of target) {
      out.set(
        id,
        tps.filter((tp) => {
          const o = owner.get(tpKey(tp));
          return o === undefined || o === id;
        }),
      );
    }
    return out;
  },
};

export const ASSIGNORS: ReadonlyMap<string, Assignor> = new Map(
  [rangeAssignor, roundRobinAssignor, cooperativeStickyAssignor].map((a) => [a.name, a]),
);

/** Whether a member must rejoin after this assignment: it lost a partition it owned (KIP-429). */
export function revokedPartitions(
  owned: readonly TopicPartition[],
  assigned: readonly TopicPartition[],
): TopicPartition[] {
  const keep = new Set(assigned.map(tpKey));
  return owned.filter((tp) => !keep.has(tpKey(tp))).sort(compareTopicPartitions);
}
