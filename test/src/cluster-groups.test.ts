// The group coordinator in a 3-broker cluster of processes (issue 10): a group with committed
// offsets on `__consumer_offsets` (RF 3); kill -9 of the coordinator's broker, and the group and
// its offsets come back on the partition's new leader (FindCoordinator names it; the member's
// heartbeat is accepted there, its generation kept); then a restart of every broker keeps them
// again. Requests go over the native wire to the broker FindCoordinator names.
import { ApiKey, ErrorCode, type RequestOf, type ResponseOf } from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { requestOnce, TestCluster, waitUntil } from './cluster-harness.js';

const RETRIABLE: ReadonlySet<number> = new Set([
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
  ErrorCode.NOT_COORDINATOR,
]);

describe('the group coordinator in a 3-broker cluster', () => {
  let cluster: TestCluster | null = null;
  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  it('keeps a group and its offsets over kill -9 of its coordinator and a restart of every broker', async () => {
    const c = await TestCluster.start({
      nodes: 3,
      env: {
        STREAMBUS_GROUPS_OFFSETS_TOPIC_PARTITIONS: '3',
        STREAMBUS_GROUPS_INITIAL_REBALANCE_DELAY_MS: '0',
      },
    });
    cluster = c;
    const ask = <K extends (typeof ApiKey)[keyof typeof ApiKey]>(
      id: number,
      key: K,
      body: RequestOf<K>,
    ): Promise<ResponseOf<K>> => {
      const b = c.broker(id);
      return requestOnce(b.host, b.port, key, body, 5000);
    };
    // Every broker registered, so the topics get three replicas.
    await waitUntil('three live brokers', 20_000, async () => {
      const d = await ask(1, ApiKey.DESCRIBE_CLUSTER, {});
      return d.brokers.filter((b) => b.live).length === 3 ? true : undefined;
    });
    const created = await ask(1, ApiKey.CREATE_TOPICS, {
      topics: [{ name: 't', partitions: 2, replicationFactor: 3, configs: {} }],
      timeoutMs: 5000,
    });
    expect(created.topics[0]!.errorCode).toBe(0);

    /** The coordinator FindCoordinator names (asking running brokers, other than `not`). */
    const coordinator = (not: number[] = []) =>
      waitUntil('a coordinator for g', 30_000, async () => {
        for (const id of c.running()) {
          const r = (await ask(id, ApiKey.FIND_COORDINATOR, { groupIds: ['g'] })).coordinators[0]!;
          if (r.errorCode !== 0 || not.includes(r.nodeId) || !c.running().includes(r.nodeId)) {
            continue;
          }
          expect(r.port).toBe(c.broker(r.nodeId).port);
          return r.nodeId;
        }
        return undefined;
      });
    /** Runs a group request at the current coordinator, following retriable answers. */
    const atCoordinator = <T extends { errorCode: number }>(
      what: string,
      run: (id: number) => Promise<T>,
      not: number[] = [],
    ) =>
      waitUntil(what, 30_000, async () => {
        const id = await coordinator(not);
        const r = await run(id);
        return RETRIABLE.has(r.errorCode) ? undefined : { id, r };
      });

    const first = await atCoordinator('a member id', (id) =>
      ask(id, ApiKey.JOIN_GROUP, {
        groupId: 'g',
        memberId: '',
        groupInstanceId: null,
        protocolType: 'consumer',
        protocols: [{ name: 'range', metadata: Buffer.from('sub') }],
        sessionTimeoutMs: 30_000,
        rebalanceTimeoutMs: 10_000,
      }),
    );
    expect(first.r.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    const memberId = first.r.memberId;
    const joined = await ask(first.id, ApiKey.JOIN_GROUP, {
      groupId: 'g',
      memberId,
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata: Buffer.from('sub') }],
      sessionTimeoutMs: 30_000,
      rebalanceTimeoutMs: 10_000,
    });
    expect(joined.errorCode).toBe(0);
    const generation = joined.generation;
    const synced = await ask(first.id, ApiKey.SYNC_GROUP, {
      groupId: 'g',
      generation,
      memberId,
      groupInstanceId: null,
      assignments: [{ memberId, assignment: Buffer.from('t-0,t-1') }],
    });
    expect(synced.errorCode).toBe(0);
    const commitAt = (id: number, o0: number, o1: number) =>
      ask(id, ApiKey.OFFSET_COMMIT, {
        groupId: 'g',
        generation,
        memberId,
        groupInstanceId: null,
        topics: [
          {
            name: 't',
            partitions: [
              { partition: 0, offset: o0, metadata: `at ${o0}` },
              { partition: 1, offset: o1, metadata: null },
            ],
          },
        ],
      });
    for (let i = 1; i <= 10; i++) {
      const r = await commitAt(first.id, i * 10, i);
      expect(r.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([0, 0]);
    }
    const offsetsAt = (id: number) =>
      ask(id, ApiKey.OFFSET_FETCH, { groupId: 'g', topics: null }).then((r) => ({
        errorCode: r.errorCode,
        offsets: r.topics.flatMap((t) =>
          t.partitions.map((p) => [t.name, p.partition, p.offset, p.metadata]),
        ),
      }));
    const expected = [
      ['t', 0, 100, 'at 100'],
      ['t', 1, 10, ''],
    ];
    expect((await offsetsAt(first.id)).offsets).toEqual(expected);

    // kill -9 of the coordinator's broker: the partition's new leader loads the group.
    await c.kill9(first.id);
    const after = await atCoordinator('the offsets on the new coordinator', offsetsAt, [first.id]);
    expect(after.id).not.toBe(first.id);
    expect(after.r.offsets).toEqual(expected);
    const hb = await ask(after.id, ApiKey.HEARTBEAT, {
      groupId: 'g',
      generation,
      memberId,
      groupInstanceId: null,
    });
    expect(hb.errorCode).toBe(0);
    const described = await ask(after.id, ApiKey.DESCRIBE_GROUPS, { groupIds: ['g'] });
    expect(described.groups[0]).toMatchObject({ state: 'Stable', generation, leaderId: memberId });
    const moved = await commitAt(after.id, 111, 11);
    expect(moved.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([0, 0]);

    // A restart of every broker (the killed one included) keeps the newest commits.
    await c.restart(first.id);
    for (const id of [1, 2, 3]) await c.kill9(id);
    for (const id of [1, 2, 3]) await c.restart(id);
    await c.waitReady();
    const restarted = await atCoordinator('the offsets after a full restart', offsetsAt);
    expect(restarted.r.offsets).toEqual([
      ['t', 0, 111, 'at 111'],
      ['t', 1, 11, ''],
    ]);
    const again = await ask(restarted.id, ApiKey.DESCRIBE_GROUPS, { groupIds: ['g'] });
    expect(again.groups[0]).toMatchObject({ state: 'Stable', generation, leaderId: memberId });
  }, 150_000);
});
