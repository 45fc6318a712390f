// The group consumer against the fake broker's coordinator (testing/fake-groups.ts): join and
// sync (MEMBER_ID_REQUIRED first), consumption from committed offsets, commits (auto, explicit,
// on revoke, on close), cooperative revocation of only the moving partitions, the eager
// assignors giving up everything, maxPollIntervalMs, a moved coordinator, lag, and bad options.
import { ApiKey, ErrorCode, type TopicPartition } from '@streambus/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import type { GroupConsumer, GroupConsumerOptions, RevocationEvent } from './group-consumer.js';
import { FakeBroker, FakeCluster } from './testing/fake-broker.js';
import type { FakeGroupCoordinator } from './testing/fake-groups.js';

const fastRetry = { retriesMax: 5, backoffInitialMs: 5, backoffMaxMs: 50, totalTimeoutMs: 3_000 };
/** Fast heartbeats, polls and commits for the fake coordinator. */
const fast = {
  // Long enough that a loaded machine's pauses never expire a session (a spurious rebalance).
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 50,
  maxWaitMs: 50,
  autoCommitIntervalMs: 100,
} as const;

let broker: FakeBroker;
const clients: StreamBusClient[] = [];

function newClient(bootstrap = broker.bootstrap): StreamBusClient {
  const c = new StreamBusClient({ bootstrap, retry: fastRetry });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  broker = await FakeBroker.start({ defaultPartitions: 1 });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await broker.close();
});

/** Records `${topic}-${first + i}`, round-robin over the partitions. */
async function produce(
  client: StreamBusClient,
  topic: string,
  partitions: number,
  n: number,
  first = 0,
) {
  const producer = client.producer({ lingerMs: 0 });
  await producer.sendBatch(
    Array.from({ length: n }, (_, i) => ({
      topic,
      partition: (first + i) % partitions,
      value: `${topic}-${first + i}`,
    })),
  );
}

/** Iterates in the background, collecting values, until stopped. */
function drain(consumer: GroupConsumer): { values: string[]; done: Promise<void> } {
  const values: string[] = [];
  const done = (async () => {
    for await (const r of consumer) values.push(Buffer.from(r.value ?? []).toString());
  })();
  return { values, done };
}

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** No partition owned by two members in one generation, over every recorded generation. */
function checkSingleOwners(groups: FakeGroupCoordinator): void {
  for (const g of groups.history) {
    const seen = new Map<string, string>();
    for (const [member, tps] of g.assignments) {
      for (const tp of tps) {
        const k = `${tp.topic}/${tp.partition}`;
        expect(seen.get(k), `generation ${g.generation}: ${k}`).toBeUndefined();
        seen.set(k, member);
      }
    }
  }
}

const tps = (list: readonly TopicPartition[]) => list.map((tp) => `${tp.topic}/${tp.partition}`);

describe('group consumer (fake coordinator)', () => {
  it('joins (member id first), consumes every record, and commits the log ends on close', async () => {
    broker.createTopic('orders', 3);
    const client = newClient();
    await produce(client, 'orders', 3, 30);
    const assigned: string[][] = [];
    const consumer = client.consumer({
      groupId: 'g1',
      ...fast,
      onAssigned: (e) => {
        assigned.push(tps(e.assignment));
      },
    });
    await consumer.subscribe({ topics: ['orders'] });
    const { values, done } = drain(consumer);
    await until('30 records', () => values.length === 30);
    expect(consumer.generation).toBe(1);
    expect(consumer.memberId).toMatch(/^member-\d+$/);
    expect(assigned).toEqual([['orders/0', 'orders/1', 'orders/2']]);
    // KIP-394: the first join is answered MEMBER_ID_REQUIRED, the second joins.
    expect(broker.groups.count(ApiKey.JOIN_GROUP)).toBe(2);
    await consumer.close();
    await done;
    for (let p = 0; p < 3; p++) expect(broker.groups.committed('g1', 'orders', p)).toBe(10);
    // It left the group: the group is empty.
    expect(broker.groups.groups.get('g1')?.members.size).toBe(0);
  });

  it('commits past control batches (a new leader no-op), fetched with records or alone', async () => {
    broker.createTopic('noop', 2);
    const client = newClient();
    await produce(client, 'noop', 2, 20);
    // Partition 0: records, then a leader's no-op, fetched together.
    broker.appendControlBatch('noop', 0);
    const consumer = client.consumer({ groupId: 'g-noop', ...fast });
    await consumer.subscribe({ topics: ['noop'] });
    const { values, done } = drain(consumer);
    await until('20 records', () => values.length === 20);
    await until(
      'partition 0 committed past its no-op',
      () => broker.groups.committed('g-noop', 'noop', 0) === 11,
    );
    // Partition 1: a no-op alone after every record was consumed (a failover at an idle log).
    broker.appendControlBatch('noop', 1);
    await until(
      'partition 1 committed past its no-op',
      () => broker.groups.committed('g-noop', 'noop', 1) === 11,
    );
    await consumer.close();
    await done;
    expect(values).toHaveLength(20);
    expect(broker.groups.committed('g-noop', 'noop', 0)).toBe(11);
    expect(broker.groups.committed('g-noop', 'noop', 1)).toBe(11);
  });

  it('rides out a leader that stays away longer than the retry policy: no error reaches the loop', async () => {
    broker.createTopic('away', 1);
    const client = newClient();
    await produce(client, 'away', 1, 10);
    const consumer = client.consumer({ groupId: 'g-away', ...fast });
    await consumer.subscribe({ topics: ['away'] });
    const { values, done } = drain(consumer);
    let failed: unknown = null;
    done.catch((err: unknown) => {
      failed = err;
    });
    await until('10 records', () => values.length === 10);
    // fastRetry gives up after about 0.2 s; the leader answers NOT_LEADER_OR_FOLLOWER for 1 s.
    broker.failFetchesUntilMs = Date.now() + 1_000;
    await new Promise((r) => setTimeout(r, 1_200));
    await produce(client, 'away', 1, 10, 10);
    await until('20 records', () => values.length === 20 || failed !== null);
    expect(failed).toBeNull();
    await consumer.close();
    await done;
    expect(values).toHaveLength(20);
  });

  it('starts at the committed offsets, and at autoOffsetReset where there are none', async () => {
    broker.createTopic('t', 2);
    const client = newClient();
    await produce(client, 't', 2, 10);
    const first = client.consumer({ groupId: 'g', ...fast, autoCommit: false });
    await first.subscribe({ topics: ['t'] });
    const a = drain(first);
    await until('10 records', () => a.values.length === 10);
    await first.commit([{ topic: 't', partition: 0, offset: 3 }]);
    await first.close();
    await a.done;
    expect(broker.groups.committed('g', 't', 0)).toBe(3);
    // Nothing was committed for partition 1 (autoCommit off): it starts at 'latest' there.
    await produce(client, 't', 2, 4);
    const second = client.consumer({ groupId: 'g', ...fast, autoOffsetReset: 'latest' });
    await second.subscribe({ topics: ['t'] });
    const b = drain(second);
    // Partition 0 from offset 3: its records 6, 8 (offsets 3, 4) and the new 0, 2 (5, 6).
    await until('partition 0 from 3', () => b.values.length >= 4);
    await new Promise((r) => setTimeout(r, 200));
    expect(b.values.sort()).toEqual(['t-0', 't-2', 't-6', 't-8']);
    await second.close();
    await b.done;
  });

  it("fails the iteration with NO_COMMITTED_OFFSET under autoOffsetReset 'none'", async () => {
    broker.createTopic('t', 1);
    const consumer = newClient().consumer({ groupId: 'g', ...fast, autoOffsetReset: 'none' });
    await consumer.subscribe({ topics: ['t'] });
    await expect(
      (async () => {
        for await (const _ of consumer) break;
      })(),
    ).rejects.toMatchObject({ code: ErrorCode.NO_COMMITTED_OFFSET });
  });

  it('cooperative-sticky: a second member takes half, and only those are revoked from the first', async () => {
    broker.createTopic('t', 6);
    const client = newClient();
    await produce(client, 't', 6, 60);
    const revokedA: RevocationEvent[] = [];
    const a = client.consumer({
      groupId: 'coop',
      ...fast,
      onRevoked: (e) => {
        revokedA.push(e);
      },
    });
    await a.subscribe({ topics: ['t'] });
    const da = drain(a);
    await until('a consumes', () => da.values.length === 60);
    const b = newClient().consumer({ groupId: 'coop', ...fast });
    await b.subscribe({ topics: ['t'] });
    const db = drain(b);
    await until('b owns three', () => b.assignment().length === 3 && a.assignment().length === 3);
    // Records produced now are consumed by whichever member owns their partition, once each.
    await produce(client, 't', 6, 60, 60);
    await until('all 120', () => da.values.length + db.values.length === 120);
    expect(new Set([...da.values, ...db.values]).size).toBe(120);
    // a gave up exactly b's partitions, once, and kept consuming the rest throughout.
    expect(revokedA).toHaveLength(1);
    expect(tps(revokedA[0]!.partitions)).toEqual(tps(b.assignment()));
    expect(revokedA[0]!.lost).toBe(false);
    // The revoked partitions were committed before b started on them: b read only new records,
    // and a read the new records of the partitions it kept.
    expect(db.values.every((v) => Number(v.split('-')[1]) >= 60)).toBe(true);
    expect(db.values).toHaveLength(30);
    expect(da.values).toHaveLength(90);
    checkSingleOwners(broker.groups);
    // Two rebalances: the revocation, then the hand-over (generations 2 and 3).
    expect(b.generation).toBe(3);
    await Promise.all([a.close(), b.close()]);
    await Promise.all([da.done, db.done]);
    for (let p = 0; p < 6; p++) expect(broker.groups.committed('coop', 't', p)).toBe(20);
  });

  it('range (eager): every member gives up everything before a rebalance', async () => {
    broker.createTopic('t', 4);
    const revoked: string[][] = [];
    const options: GroupConsumerOptions = {
      groupId: 'eager',
      ...fast,
      assignor: 'range',
      onRevoked: (e) => {
        revoked.push(tps(e.partitions));
      },
    };
    const a = newClient().consumer(options);
    await a.subscribe({ topics: ['t'] });
    const da = drain(a);
    await until('a owns all', () => a.assignment().length === 4);
    const { onRevoked: _, ...withoutCallback } = options;
    const b = newClient().consumer({ ...withoutCallback, groupId: 'eager' });
    await b.subscribe({ topics: ['t'] });
    const db = drain(b);
    await until('split', () => a.assignment().length === 2 && b.assignment().length === 2);
    expect(revoked[0]).toEqual(['t/0', 't/1', 't/2', 't/3']);
    checkSingleOwners(broker.groups);
    await Promise.all([a.close(), b.close()]);
    await Promise.all([da.done, db.done]);
  });

  it('leaves the group after maxPollIntervalMs without a poll, and rejoins at the next', async () => {
    broker.createTopic('t', 2);
    const client = newClient();
    await produce(client, 't', 2, 4);
    const revoked: RevocationEvent[] = [];
    const consumer = client.consumer({
      groupId: 'slow',
      ...fast,
      maxPollIntervalMs: 300,
      onRevoked: (e) => {
        revoked.push(e);
      },
    });
    await consumer.subscribe({ topics: ['t'] });
    const it = consumer[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    // The application stops asking for records: the member leaves, giving its partitions back.
    await until('left', () => broker.groups.groups.get('slow')?.members.size === 0);
    expect(revoked).toHaveLength(1);
    expect(consumer.assignment()).toEqual([]);
    // The first record was not processed (no next() after it): the commit on revoke is its
    // offset, the next to process, not the one after it.
    expect([0, 1].map((p) => broker.groups.committed('slow', 't', p))).toContain(0);
    expect([0, 1].map((p) => broker.groups.committed('slow', 't', p))).not.toContain(1);
    // Asking again rejoins; the record is handed out again (at-least-once).
    const values: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await it.next();
      values.push(Buffer.from(r.value?.value ?? []).toString());
    }
    expect(values.sort()).toEqual(['t-0', 't-1', 't-2', 't-3']);
    expect(broker.groups.groups.get('slow')?.members.size).toBe(1);
    await it.return?.();
    await consumer.close();
  });

  it('reports lag and commits on demand, awaited or asynchronously (commitAsync)', async () => {
    broker.createTopic('t', 2);
    const client = newClient();
    await produce(client, 't', 2, 10);
    const consumer = client.consumer({ groupId: 'lag', ...fast, autoCommit: false });
    await consumer.subscribe({ topics: ['t'] });
    await expect(consumer.commit([{ topic: 't', partition: 0, offset: 1 }])).rejects.toMatchObject({
      code: ErrorCode.UNKNOWN_MEMBER_ID,
    });
    let n = 0;
    for await (const _ of consumer) {
      if (++n === 4) break;
    }
    const lag = await consumer.lag();
    expect(lag.map((l) => l.logEnd)).toEqual([5, 5]);
    expect(lag.reduce((s, l) => s + (l.lag ?? 0), 0)).toBe(6);
    await consumer.commit();
    const committed = [0, 1].map((p) => broker.groups.committed('lag', 't', p));
    expect(committed.reduce((s, o) => s + Math.max(0, o), 0)).toBe(4);
    // Asynchronous: not awaited, the outcome goes to the callback, a failure never rejects.
    const outcome = (offsets?: { topic: string; partition: number; offset: number }[]) =>
      new Promise<Error | null>((resolve) => consumer.commitAsync(offsets, resolve));
    expect(await outcome([{ topic: 't', partition: 1, offset: 3 }])).toBeNull();
    expect(broker.groups.committed('lag', 't', 1)).toBe(3);
    expect(await outcome([{ topic: 't', partition: 0, offset: -1 }])).toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
    consumer.commitAsync(); // no callback: fine either way
    await consumer.close();
    expect(await outcome()).toMatchObject({ code: ErrorCode.CLIENT_CLOSED });
  });

  it('follows the coordinator when it moves (NOT_COORDINATOR, then FindCoordinator again)', async () => {
    const cluster = await FakeCluster.start(2);
    try {
      cluster.createTopic('t', 2);
      const client = newClient(cluster.bootstrap);
      await produce(client, 't', 2, 10);
      const consumer = client.consumer({ groupId: 'moving', ...fast });
      await consumer.subscribe({ topics: ['t'] });
      const d = drain(consumer);
      await until('10', () => d.values.length === 10);
      cluster.moveCoordinator(2);
      await produce(client, 't', 2, 10);
      await until('20', () => d.values.length === 20);
      // Heartbeats and commits reach broker 2 now.
      const heartbeats = cluster.groups.count(ApiKey.HEARTBEAT);
      await until('heartbeats', () => cluster.groups.count(ApiKey.HEARTBEAT) > heartbeats + 2);
      await consumer.close();
      await d.done;
      expect(cluster.groups.committed('moving', 't', 0)).toBe(10);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await cluster.close();
    }
  });

  it('subscribes by pattern; a matching topic created later joins at the next check', async () => {
    broker.createTopic('logs-a', 1);
    broker.createTopic('other', 1);
    const consumer = newClient().consumer({ groupId: 'pat', ...fast, metadataRefreshMs: 100 });
    await consumer.subscribe({ pattern: /^logs-/g });
    const d = drain(consumer);
    await until('logs-a', () => consumer.assignment().length === 1);
    broker.createTopic('logs-b', 2);
    await until('logs-b', () => consumer.assignment().length === 3);
    expect(tps(consumer.assignment())).toEqual(['logs-a/0', 'logs-b/0', 'logs-b/1']);
    await consumer.close();
    await d.done;
  });

  it('seek: the next record handed out and the next commit follow it; a stranger is refused', async () => {
    broker.createTopic('s', 1);
    const client = newClient();
    await produce(client, 's', 1, 10);
    const consumer = client.consumer({ groupId: 'seek', ...fast, autoCommit: false });
    await consumer.subscribe({ topics: ['s'] });
    const it = consumer[Symbol.asyncIterator]();
    const offsets: number[] = [];
    const next = async () => {
      const r = await it.next();
      offsets.push(r.value!.offset);
      return r.value!;
    };
    await next();
    await next();
    // Forward past records already polled (the whole partition is in hand by now).
    consumer.seek({ topic: 's', partition: 0, offset: 7 });
    // The commit follows the position before any record of it is handed out.
    await consumer.commit();
    expect(broker.groups.committed('seek', 's', 0)).toBe(7);
    expect((await next()).value?.toString()).toBe('s-7');
    await next();
    // Backward: records are handed out again from there.
    consumer.seek({ topic: 's', partition: 0, offset: 1 });
    await next();
    // Record 1 is in hand, not processed yet (at-least-once): the commit is its offset.
    await consumer.commit();
    expect(broker.groups.committed('seek', 's', 0)).toBe(1);
    await next();
    await consumer.commit();
    expect(broker.groups.committed('seek', 's', 0)).toBe(2);
    expect(offsets).toEqual([0, 1, 7, 8, 1, 2]);
    expect(() => consumer.seek({ topic: 's', partition: 1, offset: 0 })).toThrow(
      expect.objectContaining({ code: ErrorCode.PARTITION_NOT_OWNED }),
    );
    expect(() => consumer.seek({ topic: 'other', partition: 0, offset: 0 })).toThrow(
      /other\/0 is not assigned to this member of group 'seek'/,
    );
    expect(() => consumer.seek({ topic: 's', partition: 0, offset: -1 })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
    expect(() => consumer.seek({ topic: 's', partition: 0, ofset: 1 } as never)).toThrow(
      /did you mean 'offset'/,
    );
    await it.return?.();
    await consumer.close();
  });

  it("seek to 'earliest', 'latest' and { timestamp }: resolved as assign's from", async () => {
    broker.createTopic('st', 1);
    const client = newClient();
    await produce(client, 'st', 1, 5);
    await new Promise((r) => setTimeout(r, 30));
    const t = Date.now();
    await new Promise((r) => setTimeout(r, 30));
    await produce(client, 'st', 1, 5, 5);
    const consumer = client.consumer({ groupId: 'seek-by', ...fast, autoCommit: false });
    await consumer.subscribe({ topics: ['st'] });
    const it = consumer[Symbol.asyncIterator]();
    const next = async () => (await it.next()).value!;
    expect((await next()).offset).toBe(0);
    await next();
    const tp = { topic: 'st', partition: 0 } as const;
    // 'latest': only what comes after; a commit before any record of it leaves the partition.
    consumer.seek({ ...tp, offset: 'latest' });
    await consumer.commit();
    expect(broker.groups.committed('seek-by', 'st', 0)).toBe(-1);
    const later = next();
    await new Promise((r) => setTimeout(r, 100));
    await produce(client, 'st', 1, 1, 10);
    expect((await later).value?.toString()).toBe('st-10');
    await consumer.commit();
    expect(broker.groups.committed('seek-by', 'st', 0)).toBe(10);
    // { timestamp }: the first record at or after it (the second batch).
    consumer.seek({ ...tp, offset: { timestamp: t } });
    expect((await next()).value?.toString()).toBe('st-5');
    // 'earliest': from the log start again.
    consumer.seek({ ...tp, offset: 'earliest' });
    expect((await next()).value?.toString()).toBe('st-0');
    await consumer.commit();
    expect(broker.groups.committed('seek-by', 'st', 0)).toBe(0);
    // Bad positions are typed errors; the partition keeps its position.
    for (const bad of ['middle', { timestamp: -1 }, { at: 1 }]) {
      expect(() => consumer.seek({ ...tp, offset: bad as never })).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
      );
    }
    expect((await next()).value?.toString()).toBe('st-1');
    await it.return?.();
    await consumer.close();
  });

  it('pause stops fetching while the membership goes on (no max-poll leave); resume goes on from there', async () => {
    broker.createTopic('p', 2);
    const client = newClient();
    await produce(client, 'p', 2, 10);
    const consumer = client.consumer({ groupId: 'pause', ...fast, maxPollIntervalMs: 300 });
    await consumer.subscribe({ topics: ['p'] });
    await until('assigned', () => consumer.assignment().length === 2);
    const both = [
      { topic: 'p', partition: 0 },
      { topic: 'p', partition: 1 },
    ];
    // All or nothing: a stranger in the list pauses nothing.
    expect(() => consumer.pause([...both, { topic: 'p', partition: 2 }])).toThrow(
      expect.objectContaining({ code: ErrorCode.PARTITION_NOT_OWNED }),
    );
    expect(consumer.paused()).toEqual([]);
    consumer.pause(both);
    expect(consumer.paused()).toEqual(both);
    const d = drain(consumer);
    const heartbeats = broker.groups.count(ApiKey.HEARTBEAT);
    // Well past maxPollIntervalMs with nothing to hand out: still a member, heartbeating.
    await new Promise((r) => setTimeout(r, 900));
    expect(d.values).toEqual([]);
    expect(broker.groups.count(ApiKey.LEAVE_GROUP)).toBe(0);
    expect(broker.groups.groups.get('pause')?.members.size).toBe(1);
    expect(broker.groups.count(ApiKey.HEARTBEAT)).toBeGreaterThan(heartbeats + 3);
    expect(consumer.generation).toBe(1);
    consumer.resume([{ topic: 'p', partition: 0 }]);
    await until('partition 0', () => d.values.length === 5);
    expect(d.values.sort()).toEqual(['p-0', 'p-2', 'p-4', 'p-6', 'p-8']);
    expect(consumer.paused()).toEqual([{ topic: 'p', partition: 1 }]);
    consumer.resume([{ topic: 'p', partition: 1 }]);
    await until('all 10', () => d.values.length === 10);
    expect(new Set(d.values).size).toBe(10);
    await consumer.close();
    await d.done;
    for (let p = 0; p < 2; p++) expect(broker.groups.committed('pause', 'p', p)).toBe(5);
  });

  it('unsubscribe commits, gives everything up and leaves; subscribe joins again from the commits', async () => {
    broker.createTopic('u', 2);
    const client = newClient();
    await produce(client, 'u', 2, 10);
    const revoked: RevocationEvent[] = [];
    const consumer = client.consumer({
      groupId: 'unsub',
      ...fast,
      autoCommitIntervalMs: 60_000,
      onRevoked: (e) => {
        revoked.push(e);
      },
    });
    // Not subscribed: nothing to do.
    await consumer.unsubscribe();
    await consumer.subscribe({ topics: ['u'] });
    const d = drain(consumer);
    await until('10', () => d.values.length === 10);
    // The last record counts as processed once the iterator asks for the next one.
    await new Promise((r) => setTimeout(r, 50));
    await consumer.unsubscribe();
    expect(consumer.assignment()).toEqual([]);
    expect(consumer.generation).toBe(-1);
    expect(revoked.map((e) => [tps(e.partitions), e.lost])).toEqual([[['u/0', 'u/1'], false]]);
    for (let p = 0; p < 2; p++) expect(broker.groups.committed('unsub', 'u', p)).toBe(5);
    expect(broker.groups.groups.get('unsub')?.members.size).toBe(0);
    // Nothing more is consumed while unsubscribed.
    await produce(client, 'u', 2, 4, 10);
    await new Promise((r) => setTimeout(r, 200));
    expect(d.values).toHaveLength(10);
    await consumer.subscribe({ topics: ['u'] });
    await until('14', () => d.values.length === 14);
    expect(d.values.slice(10).sort()).toEqual(['u-10', 'u-11', 'u-12', 'u-13']);
    expect(broker.groups.groups.get('unsub')?.members.size).toBe(1);
    // A subscribe while an unsubscribe runs waits for it, then joins with its own subscription.
    broker.createTopic('u2', 1);
    await produce(client, 'u2', 1, 3);
    const leaving = consumer.unsubscribe();
    await consumer.subscribe({ topics: ['u2'] });
    await leaving;
    await until('u2', () => d.values.length === 17);
    expect(d.values.slice(14)).toEqual(['u2-0', 'u2-1', 'u2-2']);
    expect(consumer.assignment()).toEqual([{ topic: 'u2', partition: 0 }]);
    await consumer.close();
    await d.done;
  });

  it('keeps no reaction per poll or heartbeat behind while waiting for close', async () => {
    broker.createTopic('idle', 1);
    const consumer = newClient().consumer({ groupId: 'idle', ...fast, maxWaitMs: 5 });
    await consumer.subscribe({ topics: ['idle'] });
    const d = drain(consumer);
    await until('assigned', () => consumer.assignment().length === 1);
    // maxWaitMs 5: about a hundred empty polls, and heartbeats every 50 ms.
    const heartbeats = broker.groups.count(ApiKey.HEARTBEAT);
    await new Promise((r) => setTimeout(r, 500));
    expect(broker.groups.count(ApiKey.HEARTBEAT)).toBeGreaterThan(heartbeats + 3);
    const races = consumer as unknown as {
      closeRaces: { size: number };
      stopRaces: { size: number };
    };
    // At most the iterator's one poll and the loop's one request wait, however many went before.
    expect(races.closeRaces.size).toBeLessThanOrEqual(1);
    expect(races.stopRaces.size).toBeLessThanOrEqual(1);
    await consumer.close();
    await d.done;
    expect(races.closeRaces.size).toBe(0);
  });

  it('refuses unknown and bad options with the nearest name', async () => {
    const client = newClient();
    const bad = (o: object) => () => client.consumer(o as GroupConsumerOptions);
    expect(bad({ groupId: 'g', sessionTimeout: 10 })).toThrow(/did you mean 'sessionTimeoutMs'/);
    expect(bad({ groupId: 'g', autocommit: true })).toThrow(/did you mean 'autoCommit'/);
    expect(bad({ groupId: 'g', 'enable.auto.commit': true })).toThrow(/'autoCommit'/);
    expect(bad({ groupId: 'g', assignor: 'sticky' })).toThrow(/assignor: expected one of/);
    expect(bad({ groupId: '' })).toThrow(/groupId/);
    const c = client.consumer({ groupId: 'g' });
    await expect(c.subscribe({ topic: 'x' } as never)).rejects.toThrow(/did you mean 'topics'/);
  });
});
