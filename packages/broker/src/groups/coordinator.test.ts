// The group coordinator's shell on a cluster of one, through the wire (native keys 13-23):
// `__consumer_offsets` created on first use and kept internal, join / sync / heartbeat / commit /
// fetch / describe / list / leave / delete, typed errors for bad input, and committed state
// surviving a restart, both from the LSM store and (with the store removed) from the log alone.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  splitBatches,
} from '@streambus/protocol';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../broker.js';
import { type BrokerConfig, defaultConfig } from '../config.js';
import { RawClient } from '../testing/raw-client.js';
import { testResources } from '../testing/test-resources.js';
import { GROUP_STATE_DIR } from './coordinator.js';
import { groupPartition, OFFSETS_TOPIC } from './offsets-topic.js';

const silent = pino({ level: process.env.SB_TEST_LOG ?? 'silent' });
const res = testResources({ afterEach, afterAll });

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sb-groups-'));
  res.dirs.push(d);
  return d;
}

export function groupsTestConfig(dataDir: string): BrokerConfig {
  const base = defaultConfig();
  return {
    ...base,
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: 'silent',
    groups: {
      ...base.groups,
      offsetsTopicPartitions: 3,
      initialRebalanceDelayMs: 0,
      sessionTimeoutMsMin: 500,
    },
  };
}

async function start(
  dataDir: string,
  tune: (c: BrokerConfig) => BrokerConfig = (c) => c,
): Promise<{ broker: Broker; c: RawClient }> {
  const broker = await Broker.start(tune(groupsTestConfig(dataDir)), {
    logger: silent,
  });
  const c = await RawClient.connect(broker.address.port);
  res.open.push(broker, c);
  return { broker, c };
}

const RETRIABLE: ReadonlySet<number> = new Set([
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
  ErrorCode.NOT_COORDINATOR,
]);

/** Repeats `run` while it answers a retriable coordinator error (bounded). */
async function retrying<T extends { errorCode: number }>(
  run: () => Promise<T>,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await run();
    if (!RETRIABLE.has(r.errorCode) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

const meta = (s: string) => Buffer.from(s);

function join1(c: RawClient, groupId: string, memberId: string, metadata = meta('sub')) {
  return retrying(() =>
    c.request(ApiKey.JOIN_GROUP, {
      groupId,
      memberId,
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata }],
      sessionTimeoutMs: 10_000,
      rebalanceTimeoutMs: 5_000,
      clientId: 'test',
    }),
  );
}

/** SyncGroup of a member: the leader passes the assignments, a follower none. */
function sync1(
  c: RawClient,
  groupId: string,
  generation: number,
  memberId: string,
  assignments: Array<{ memberId: string; assignment: Buffer }> = [],
) {
  return c.request(ApiKey.SYNC_GROUP, {
    groupId,
    generation,
    memberId,
    groupInstanceId: null,
    assignments,
  });
}

/** FindCoordinator until it names one (the first call creates __consumer_offsets). */
async function findCoordinator(c: RawClient, groupId: string) {
  const found = await retrying(
    async () =>
      (await c.request(ApiKey.FIND_COORDINATOR, { groupIds: [groupId] })).coordinators[0]!,
  );
  expect(found.errorCode).toBe(0);
  return found;
}

/** Joins a one-member group and syncs it: the member id and generation. */
async function joinAndSync(c: RawClient, groupId: string) {
  await findCoordinator(c, groupId);
  const first = await join1(c, groupId, '');
  expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
  expect(first.memberId).toMatch(/^test-/);
  const joined = await join1(c, groupId, first.memberId);
  expect(joined.errorCode).toBe(0);
  expect(joined.leaderId).toBe(first.memberId);
  expect(joined.members.map((m) => m.memberId)).toEqual([first.memberId]);
  expect(Buffer.from(joined.members[0]!.metadata).toString()).toBe('sub');
  const synced = await c.request(ApiKey.SYNC_GROUP, {
    groupId,
    generation: joined.generation,
    memberId: first.memberId,
    groupInstanceId: null,
    assignments: [{ memberId: first.memberId, assignment: meta('all of t') }],
  });
  expect(synced.errorCode).toBe(0);
  expect(Buffer.from(synced.assignment).toString()).toBe('all of t');
  return { memberId: first.memberId, generation: joined.generation };
}

function commit(
  c: RawClient,
  groupId: string,
  generation: number,
  memberId: string,
  partitions: { partition: number; offset: number; metadata: string | null }[],
  topic = 't',
) {
  return retrying(async () => {
    const r = await c.request(ApiKey.OFFSET_COMMIT, {
      groupId,
      generation,
      memberId,
      groupInstanceId: null,
      topics: [{ name: topic, partitions }],
    });
    return { errorCode: r.topics[0]!.partitions[0]!.errorCode, r };
  }).then((x) => x.r);
}

async function fetchOffsets(c: RawClient, groupId: string) {
  const r = await retrying(() => c.request(ApiKey.OFFSET_FETCH, { groupId, topics: null }));
  expect(r.errorCode).toBe(0);
  return r.topics.flatMap((t) =>
    t.partitions.map((p) => ({ topic: t.name, ...p, errorMessage: undefined })),
  );
}

/** Creates a topic (retried while the broker is not registered yet: no live broker to hold it). */
async function createTopic(c: RawClient, name: string, partitions: number) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name, partitions, replicationFactor: -1, configs: {} }],
      timeoutMs: 5000,
    });
    const code = r.topics[0]!.errorCode;
    if (code !== ErrorCode.INVALID_REPLICATION_FACTOR || Date.now() > deadline) {
      expect(code).toBe(0);
      return;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('the group coordinator on a cluster of one', () => {
  it('places groups as Kafka does (abs(String.hashCode) mod partitions)', () => {
    // Values printed by Java 'String.hashCode' and Kafka's partitionFor arithmetic, mod 50.
    expect(groupPartition('my-group', 50)).toBe(12); // hashCode -1906497762
    expect(groupPartition('test-group', 50)).toBe(12); // 627841412
    expect(groupPartition('', 50)).toBe(0);
    // hashCode Integer.MIN_VALUE: Kafka's Utils.abs maps it to 0.
    expect(groupPartition('polygenelubricants', 50)).toBe(0);
    // UTF-16 code units, a surrogate pair included: 347391577.
    expect(groupPartition('grüße-😀', 50)).toBe(27);
  });

  it('serves join, sync, heartbeat, commit, fetch, describe, list, leave and delete', async () => {
    const { broker, c } = await start(tempDir());
    await createTopic(c, 't', 4);

    // FindCoordinator creates __consumer_offsets on first use and names this broker.
    const found = await findCoordinator(c, 'g1');
    expect(found).toMatchObject({ errorCode: 0, nodeId: 1, port: broker.address.port });

    const { memberId, generation } = await joinAndSync(c, 'g1');
    const hb = (gen: number, member: string) =>
      c.request(ApiKey.HEARTBEAT, {
        groupId: 'g1',
        generation: gen,
        memberId: member,
        groupInstanceId: null,
      });
    expect((await hb(generation, memberId)).errorCode).toBe(0);
    expect((await hb(generation + 1, memberId)).errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect((await hb(generation, 'nobody')).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);

    const committed = await commit(c, 'g1', generation, memberId, [
      { partition: 0, offset: 42, metadata: 'm0' },
      { partition: 3, offset: 7, metadata: null },
    ]);
    expect(committed.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([0, 0]);
    expect(await fetchOffsets(c, 'g1')).toEqual([
      {
        topic: 't',
        partition: 0,
        errorCode: 0,
        offset: 42,
        metadata: 'm0',
        errorMessage: undefined,
      },
      { topic: 't', partition: 3, errorCode: 0, offset: 7, metadata: '', errorMessage: undefined },
    ]);
    // A group with nothing committed, or a partition without a commit: offset -1.
    const none = await c.request(ApiKey.OFFSET_FETCH, {
      groupId: 'nobody-here',
      topics: [{ name: 't', partitions: [{ partition: 1 }] }],
    });
    expect(none.topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      offset: -1,
      metadata: null,
    });

    const described = await c.request(ApiKey.DESCRIBE_GROUPS, { groupIds: ['g1', 'unknown'] });
    expect(described.groups[0]).toMatchObject({
      errorCode: 0,
      groupId: 'g1',
      state: 'Stable',
      protocolType: 'consumer',
      protocolName: 'range',
      generation,
      leaderId: memberId,
    });
    expect(described.groups[0]!.members.map((m) => [m.memberId, m.clientId])).toEqual([
      [memberId, 'test'],
    ]);
    expect(Buffer.from(described.groups[0]!.members[0]!.assignment).toString()).toBe('all of t');
    expect(described.groups[1]).toMatchObject({ groupId: 'unknown', state: 'Dead' });

    const listed = await c.request(ApiKey.LIST_GROUPS, {});
    expect(listed.groups).toEqual([{ groupId: 'g1', state: 'Stable', protocolType: 'consumer' }]);
    const filtered = await c.request(ApiKey.LIST_GROUPS, { statesFilter: ['Empty'] });
    expect(filtered.groups).toEqual([]);

    // A group with members cannot be deleted; once its member left it can.
    const busy = await c.request(ApiKey.DELETE_GROUPS, { groupIds: ['g1'] });
    expect(busy.groups[0]!.errorCode).toBe(ErrorCode.NON_EMPTY_GROUP);
    const left = await c.request(ApiKey.LEAVE_GROUP, {
      groupId: 'g1',
      members: [{ memberId, groupInstanceId: null }],
    });
    expect(left).toMatchObject({ errorCode: 0, members: [{ errorCode: 0, memberId }] });
    const empty = await c.request(ApiKey.DESCRIBE_GROUPS, { groupIds: ['g1'] });
    expect(empty.groups[0]!.state).toBe('Empty');
    const dropped = await c.request(ApiKey.OFFSET_DELETE, {
      groupId: 'g1',
      topics: [{ name: 't', partitions: [{ partition: 3 }] }],
    });
    expect(dropped).toMatchObject({
      errorCode: 0,
      topics: [{ name: 't', partitions: [{ errorCode: 0 }] }],
    });
    expect((await fetchOffsets(c, 'g1')).map((p) => p.partition)).toEqual([0]);
    const deleted = await c.request(ApiKey.DELETE_GROUPS, { groupIds: ['g1', 'never'] });
    expect(deleted.groups.map((g) => g.errorCode)).toEqual([0, ErrorCode.GROUP_ID_NOT_FOUND]);
    expect(await fetchOffsets(c, 'g1')).toEqual([]);
  });

  it('parks a join until the rebalance completes: two members, one generation', async () => {
    const { broker, c } = await start(tempDir());
    // Responses leave a connection in request order: each member has its own, as clients do.
    const b = await RawClient.connect(broker.address.port);
    res.open.push(b);
    await createTopic(c, 't', 2);
    const a = await joinAndSync(c, 'g6');
    // A second member joins: its join is parked until the first member rejoins (it learns of
    // the rebalance from its heartbeat).
    const bId = (await join1(b, 'g6', '')).memberId;
    const bJoin = join1(b, 'g6', bId);
    const hb = await retrying(async () => {
      const r = await c.request(ApiKey.HEARTBEAT, {
        groupId: 'g6',
        generation: a.generation,
        memberId: a.memberId,
        groupInstanceId: null,
      });
      return { errorCode: r.errorCode === 0 ? ErrorCode.COORDINATOR_NOT_AVAILABLE : r.errorCode };
    });
    expect(hb.errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const [aJoined, bJoined] = await Promise.all([join1(c, 'g6', a.memberId), bJoin]);
    expect([aJoined.errorCode, bJoined.errorCode]).toEqual([0, 0]);
    expect(aJoined.generation).toBe(a.generation + 1);
    expect(bJoined.generation).toBe(a.generation + 1);
    expect(aJoined.leaderId).toBe(a.memberId);
    expect(aJoined.members.map((m) => m.memberId).sort()).toEqual([a.memberId, bId].sort());
    expect(bJoined.members).toEqual([]);
    // The follower's sync waits for the leader's assignments.
    const bSync = sync1(b, 'g6', bJoined.generation, bId);
    const aSync = await sync1(c, 'g6', aJoined.generation, a.memberId, [
      { memberId: a.memberId, assignment: meta('t-0') },
      { memberId: bId, assignment: meta('t-1') },
    ]);
    expect(Buffer.from(aSync.assignment).toString()).toBe('t-0');
    expect(Buffer.from((await bSync).assignment).toString()).toBe('t-1');
    // The old generation is fenced.
    const zombie = await commit(c, 'g6', a.generation, a.memberId, [
      { partition: 0, offset: 1, metadata: null },
    ]);
    expect(zombie.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
  });

  it('answers a join and a sync parked longer than requestTimeoutMs (the rebalance bounds them)', async () => {
    // Long enough for start-up (a cluster of one registers within requestTimeoutMs) and the
    // setup requests on a loaded machine.
    const requestTimeoutMs = 2500;
    const { broker, c } = await start(tempDir(), (cfg) => ({
      ...cfg,
      limits: { ...cfg.limits, requestTimeoutMs },
    }));
    const b = await RawClient.connect(broker.address.port);
    res.open.push(b);
    await createTopic(c, 't', 2);
    const a = await joinAndSync(c, 'g7');
    const bId = (await join1(b, 'g7', '')).memberId;
    // b's join waits for a to rejoin (rebalance timeout 5 s), longer than a request timeout.
    const started = Date.now();
    const bJoin = join1(b, 'g7', bId);
    await new Promise((r) => setTimeout(r, requestTimeoutMs + 700));
    const [aJoined, bJoined] = await Promise.all([join1(c, 'g7', a.memberId), bJoin]);
    expect(Date.now() - started).toBeGreaterThan(requestTimeoutMs + 700);
    expect([aJoined.errorCode, bJoined.errorCode]).toEqual([0, 0]);
    expect(bJoined.generation).toBe(a.generation + 1);
    // b's sync waits for the leader's assignments, as long again.
    const bSync = sync1(b, 'g7', bJoined.generation, bId);
    await new Promise((r) => setTimeout(r, requestTimeoutMs + 700));
    const aSync = await sync1(c, 'g7', aJoined.generation, a.memberId, [
      { memberId: a.memberId, assignment: meta('t-0') },
      { memberId: bId, assignment: meta('t-1') },
    ]);
    expect(aSync.errorCode).toBe(0);
    const synced = await bSync;
    expect(synced.errorCode).toBe(0);
    expect(Buffer.from(synced.assignment).toString()).toBe('t-1');
  });

  it('answers bad input with typed errors', async () => {
    const { c } = await start(tempDir());
    await createTopic(c, 't', 2);
    const { memberId, generation } = await joinAndSync(c, 'g2');

    const bad = await commit(c, 'g2', generation, memberId, [
      { partition: 0, offset: 1, metadata: 'é'.repeat(2100) }, // 4,200 bytes of UTF-8
      { partition: 9, offset: 1, metadata: null },
      { partition: 1, offset: 5, metadata: null },
    ]);
    expect(bad.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([
      ErrorCode.OFFSET_METADATA_TOO_LARGE,
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      0,
    ]);
    const unknownTopic = await commit(
      c,
      'g2',
      generation,
      memberId,
      [{ partition: 0, offset: 1, metadata: null }],
      'no-such-topic',
    );
    expect(unknownTopic.topics[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
    const stale = await commit(c, 'g2', generation + 5, memberId, [
      { partition: 0, offset: 1, metadata: null },
    ]);
    expect(stale.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    const unknownGroup = await commit(c, 'no-group', 3, 'm', [
      { partition: 0, offset: 1, metadata: null },
    ]);
    expect(unknownGroup.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    const unknownMember = await c.request(ApiKey.SYNC_GROUP, {
      groupId: 'no-group',
      generation: 1,
      memberId: 'm',
      groupInstanceId: null,
      assignments: [],
    });
    expect(unknownMember.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);

    // Protocol metadata over the coordinator's bound (64 KiB per member).
    const big = await join1(c, 'g3', '', Buffer.alloc(70 * 1024, 1));
    expect(big.errorCode).toBe(ErrorCode.GROUP_METADATA_TOO_LARGE);
    const emptyId = await c.request(ApiKey.FIND_COORDINATOR, { groupIds: [''] });
    expect(emptyId.coordinators[0]!.errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
    const emptyJoin = await join1(c, '', '');
    expect(emptyJoin.errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
    const badSession = await c.request(ApiKey.JOIN_GROUP, {
      groupId: 'g4',
      memberId: '',
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata: meta('') }],
      sessionTimeoutMs: 10,
      rebalanceTimeoutMs: 1000,
    });
    expect(badSession.errorCode).toBe(ErrorCode.INVALID_SESSION_TIMEOUT);
    // The committed offset of the good partition is there; the broker still serves.
    expect((await fetchOffsets(c, 'g2')).map((p) => [p.partition, p.offset])).toEqual([[1, 5]]);
  });

  it('keeps __consumer_offsets internal', async () => {
    const { c } = await start(tempDir());
    await findCoordinator(c, 'g');
    const all = await c.request(ApiKey.METADATA, { topics: null });
    expect(all.topics.map((t) => t.name)).not.toContain(OFFSETS_TOPIC);
    const named = await c.request(ApiKey.METADATA, { topics: [OFFSETS_TOPIC] });
    expect(named.topics[0]).toMatchObject({ name: OFFSETS_TOPIC, errorCode: 0 });
    expect(named.topics[0]!.partitions).toHaveLength(3);

    const produced = await c.request(ApiKey.PRODUCE, {
      acks: -1,
      timeoutMs: 5000,
      topics: [
        {
          name: OFFSETS_TOPIC,
          partitions: [{ partition: 0, records: encodeRecordBatch([{ value: meta('x') }]) }],
        },
      ],
    });
    expect(produced.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    const deleted = await c.request(ApiKey.DELETE_TOPICS, {
      topics: [OFFSETS_TOPIC],
      timeoutMs: 5000,
    });
    expect(deleted.topics[0]!.errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    const created = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: OFFSETS_TOPIC, partitions: 1, replicationFactor: -1, configs: {} }],
      timeoutMs: 5000,
    });
    expect(created.topics[0]!.errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    const trimmed = await c.request(ApiKey.DELETE_RECORDS, {
      topics: [{ name: OFFSETS_TOPIC, partitions: [{ partition: 0, offset: -1 }] }],
      timeoutMs: 5000,
    });
    expect(trimmed.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    const altered = await c.request(ApiKey.ALTER_CONFIGS, {
      topics: [{ name: OFFSETS_TOPIC, configs: { 'retention.ms': '1000' } }],
    });
    expect(altered.topics[0]!.errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    const configs = await c.request(ApiKey.DESCRIBE_CONFIGS, { topics: [OFFSETS_TOPIC] });
    expect(configs.topics[0]!.configs).toContainEqual(
      expect.objectContaining({ name: 'cleanup.policy', value: 'compact' }),
    );
  });

  it('keeps offsets and groups over a restart, from the LSM store and from the log alone', async () => {
    const dir = tempDir();
    const first = await start(dir);
    await createTopic(first.c, 't', 2);
    const { memberId, generation } = await joinAndSync(first.c, 'g5');
    for (let i = 1; i <= 20; i++) {
      const r = await commit(first.c, 'g5', generation, memberId, [
        { partition: 0, offset: i, metadata: `m${i}` },
        { partition: 1, offset: 100 + i, metadata: null },
      ]);
      expect(r.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([0, 0]);
    }
    const before = await fetchOffsets(first.c, 'g5');
    await first.broker.close();
    expect(existsSync(join(dir, GROUP_STATE_DIR))).toBe(true);

    const second = await start(dir);
    expect(await fetchOffsets(second.c, 'g5')).toEqual(before);
    // The member is back (a group with members loads Stable): its heartbeat is accepted.
    const hb = await retrying(() =>
      second.c.request(ApiKey.HEARTBEAT, {
        groupId: 'g5',
        generation,
        memberId,
        groupInstanceId: null,
      }),
    );
    expect(hb.errorCode).toBe(0);
    await second.broker.close();

    // Without the store, the log alone rebuilds the same state.
    rmSync(join(dir, GROUP_STATE_DIR), { recursive: true, force: true });
    const third = await start(dir);
    expect(await fetchOffsets(third.c, 'g5')).toEqual(before);
    const d = await third.c.request(ApiKey.DESCRIBE_GROUPS, { groupIds: ['g5'] });
    expect(d.groups[0]).toMatchObject({ state: 'Stable', generation, leaderId: memberId });
  });

  it('loads the right state from a log the cleaner compacted', async () => {
    const dir = tempDir();
    // Small segments so that the cleaner (run often) has closed segments to compact.
    const tune = (c: BrokerConfig): BrokerConfig => ({
      ...c,
      defaults: { ...c.defaults, segmentBytes: 1024, maxMessageBytes: 1024 },
      logCleanerIntervalMs: 50,
    });
    const first = await start(dir, tune);
    await createTopic(first.c, 't', 1);
    await findCoordinator(first.c, 'gc');
    for (let i = 1; i <= 60; i++) {
      const r = await commit(first.c, 'gc', -1, '', [{ partition: 0, offset: i, metadata: null }]);
      expect(r.topics[0]!.partitions[0]!.errorCode).toBe(0);
    }
    const partition = groupPartition('gc', 3);
    const recordsInLog = async () => {
      const f = await first.c.request(ApiKey.FETCH, {
        maxWaitMs: 0,
        minBytes: 0,
        maxBytes: 1 << 20,
        topics: [
          {
            name: OFFSETS_TOPIC,
            partitions: [{ partition, fetchOffset: 0, partitionMaxBytes: 1 << 20 }],
          },
        ],
      });
      const data = f.topics[0]!.partitions[0]!.records;
      let n = 0;
      for (const { position } of splitBatches(data)) {
        n += decodeRecordBatch(data, position).records.length;
      }
      return n;
    };
    const deadline = Date.now() + 20_000;
    while ((await recordsInLog()) >= 30 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await recordsInLog()).toBeLessThan(30);
    await first.broker.close();
    rmSync(join(dir, GROUP_STATE_DIR), { recursive: true, force: true });
    const second = await start(dir, tune);
    expect(
      (await fetchOffsets(second.c, 'gc')).map((p) => [p.topic, p.partition, p.offset]),
    ).toEqual([['t', 0, 60]]);
  });
});
