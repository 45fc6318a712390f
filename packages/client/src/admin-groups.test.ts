// The admin's group calls against the fake broker's coordinator: list, describe (members,
// assignments, committed offsets, log ends, lag), reset (each target, dry run, refused while the
// group has members), delete offsets, delete the group.
import { ErrorCode } from '@streambus/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import { FakeBroker } from './testing/fake-broker.js';

let broker: FakeBroker;
let client: StreamBusClient;

beforeEach(async () => {
  broker = await FakeBroker.start();
  client = new StreamBusClient({
    bootstrap: broker.bootstrap,
    retry: { retriesMax: 2, backoffInitialMs: 5, backoffMaxMs: 20, totalTimeoutMs: 2_000 },
  });
  broker.createTopic('t', 2);
  await client.producer({ lingerMs: 0 }).sendBatch(
    Array.from({ length: 10 }, (_, i) => ({
      topic: 't',
      partition: i % 2,
      value: `v${i}`,
      timestamp: 1_000 + i,
    })),
  );
});

afterEach(async () => {
  await client.close();
  await broker.close();
});

/** A member of `groupId` that has consumed `n` records and committed them, still in the group. */
async function member(groupId: string, n: number) {
  const consumer = client.consumer({
    groupId,
    sessionTimeoutMs: 2_000,
    heartbeatIntervalMs: 50,
    maxWaitMs: 50,
    autoCommit: false,
  });
  await consumer.subscribe({ topics: ['t'] });
  let seen = 0;
  const it = consumer[Symbol.asyncIterator]();
  while (seen < n) {
    await it.next();
    seen++;
  }
  // The n-th record is processed once the next is asked for; commit what is processed.
  await consumer.commit();
  return { consumer, it };
}

describe('admin group calls', () => {
  it('lists and describes a group with a member, then resets, deletes offsets and the group', async () => {
    const admin = client.admin();
    const { consumer } = await member('g', 3);
    expect(await admin.listGroups()).toEqual([
      { groupId: 'g', state: 'Stable', protocolType: 'consumer', coordinatorId: 0 },
    ]);
    const d = await admin.describeGroup('g');
    expect(d).toMatchObject({
      groupId: 'g',
      state: 'Stable',
      protocol: 'cooperative-sticky',
      generation: 1,
    });
    expect(d.members).toHaveLength(1);
    expect(d.members[0]!.assignment).toEqual([
      { topic: 't', partition: 0 },
      { topic: 't', partition: 1 },
    ]);
    // Two of the three records processed (the third is in hand): committed on partition 0;
    // partition 1's position is its start (its batch came in the same poll).
    expect(d.offsets).toEqual([
      {
        topic: 't',
        partition: 0,
        committedOffset: 2,
        logEnd: 5,
        lag: 3,
        memberId: d.members[0]!.memberId,
      },
      {
        topic: 't',
        partition: 1,
        committedOffset: 0,
        logEnd: 5,
        lag: 5,
        memberId: d.members[0]!.memberId,
      },
    ]);
    // A group with members is not reset (its consumers would overwrite it), but a dry run is fine.
    await expect(admin.resetOffsets('g', { topic: 't', to: 'latest' })).rejects.toMatchObject({
      code: ErrorCode.NON_EMPTY_GROUP,
    });
    expect(await admin.resetOffsets('g', { topic: 't', to: 'latest', dryRun: true })).toEqual([
      { topic: 't', partition: 0, previousOffset: 2, newOffset: 5 },
      { topic: 't', partition: 1, previousOffset: 0, newOffset: 5 },
    ]);
    expect(broker.groups.committed('g', 't', 0)).toBe(2);
    await expect(admin.deleteGroup('g')).rejects.toMatchObject({ code: ErrorCode.NON_EMPTY_GROUP });
    await consumer.close();

    const reset = (to: Parameters<typeof admin.resetOffsets>[1]['to'], partitions?: number[]) =>
      admin.resetOffsets('g', { topic: 't', to, ...(partitions ? { partitions } : {}) });
    expect((await reset('earliest')).map((o) => o.newOffset)).toEqual([0, 0]);
    expect((await reset('latest')).map((o) => o.newOffset)).toEqual([5, 5]);
    // Clamped to the log's range.
    expect((await reset({ offset: 3 })).map((o) => o.newOffset)).toEqual([3, 3]);
    expect((await reset({ offset: 99 }, [1])).map((o) => o.newOffset)).toEqual([5]);
    expect([0, 1].map((p) => broker.groups.committed('g', 't', p))).toEqual([3, 5]);
    // The first offset at or after a timestamp (the fake answers per batch), the log end if none.
    await client
      .producer({ lingerMs: 0 })
      .send({ topic: 't', partition: 0, value: 'late', timestamp: 5_000 });
    expect((await reset({ timestamp: 1_000 })).map((o) => o.newOffset)).toEqual([0, 0]);
    expect((await reset({ timestamp: 5_000 })).map((o) => o.newOffset)).toEqual([5, 5]);
    expect((await reset({ timestamp: 9_999 })).map((o) => o.newOffset)).toEqual([6, 5]);
    await expect(reset({ offset: -1 })).rejects.toThrow(/to.offset/);
    await expect(
      admin.resetOffsets('g', { topic: 't', to: 'earliest', dry: true } as never),
    ).rejects.toThrow(/did you mean 'dryRun'/);

    await admin.deleteOffsets('g', 't', [0]);
    expect([0, 1].map((p) => broker.groups.committed('g', 't', p))).toEqual([-1, 5]);
    await admin.deleteGroup('g');
    expect(await admin.listGroups()).toEqual([]);
    expect((await admin.describeGroup('g')).state).toBe('Dead');
    await expect(admin.deleteGroup('g')).rejects.toMatchObject({
      code: ErrorCode.GROUP_ID_NOT_FOUND,
    });
    await expect(admin.describeGroup('')).rejects.toThrow(/group id/);
  });
});
