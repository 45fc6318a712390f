// The SDK's group consumer, admin group calls and CLI group commands against a real broker (a
// cluster of one on the cluster path, in process, with the coordinator on `__consumer_offsets`):
// two cooperative members sharing a topic while records are produced (each record processed,
// no partition with two owners in one generation, only moving partitions revoked), committed
// offsets equal to the log ends after close, the admin's describe/reset/delete, the CLI, and
// committed offsets surviving a broker restart, pause/seek/resume/unsubscribe, and a topic
// grown by admin.createPartitions reaching a producer and a subscribed group.
import { Broker, type BrokerConfig, defaultConfig } from '@streambus/broker';
import {
  type AssignmentEvent,
  ErrorCode,
  type GroupConsumer,
  type RevocationEvent,
  StreamBusClient,
} from '@streambus/client';
import { afterEach, describe, expect, it } from 'vitest';
import { removeDir, runCli, tempDir } from './harness.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(dataDir: string, port = 0): BrokerConfig {
  const base = defaultConfig();
  return {
    ...base,
    dataDir,
    listen: { host: '127.0.0.1', port },
    http: null,
    logLevel: 'silent',
    autoCreateTopics: false,
    groups: { ...base.groups, offsetsTopicPartitions: 3, initialRebalanceDelayMs: 0 },
  };
}

async function start(dataDir: string, port = 0): Promise<Broker> {
  const broker = await Broker.start(config(dataDir, port));
  return broker;
}

const retry = { retriesMax: 20, backoffInitialMs: 20, backoffMaxMs: 300, totalTimeoutMs: 20_000 };
/** The coordinator's session bounds start at 6 s (groups.sessionTimeoutMsMin). */
const memberOptions = {
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 200,
  maxPollIntervalMs: 20_000,
  autoCommitIntervalMs: 500,
  maxWaitMs: 100,
} as const;

function client(bootstrap: string): StreamBusClient {
  const c = new StreamBusClient({ bootstrap, retry });
  cleanups.push(() => c.close());
  return c;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Creates a topic once the cluster of one has registered its broker (a second or so). */
async function createTopic(
  admin: ReturnType<StreamBusClient['admin']>,
  name: string,
  partitions: number,
): Promise<void> {
  await until(`topic ${name}`, async () => {
    try {
      await admin.createTopic({ name, partitions });
      return true;
    } catch (err) {
      if (err instanceof Error && /no live brokers/.test(err.message)) return false;
      throw err;
    }
  });
}

/** A cluster of one in a temp dir (both removed after the test), its address and an admin. */
async function oneBroker() {
  const dir = tempDir();
  cleanups.push(() => removeDir(dir));
  const broker = await start(dir);
  cleanups.push(() => broker.close());
  const bootstrap = `127.0.0.1:${broker.address.port}`;
  return { bootstrap, admin: client(bootstrap).admin() };
}

interface Member {
  readonly consumer: GroupConsumer;
  readonly values: string[];
  readonly assigned: AssignmentEvent[];
  readonly revoked: RevocationEvent[];
  readonly done: Promise<void>;
}

function member(
  c: StreamBusClient,
  groupId: string,
  topic: string,
  extra: { metadataRefreshMs?: number } = {},
): Member {
  const assigned: AssignmentEvent[] = [];
  const revoked: RevocationEvent[] = [];
  const consumer = c.consumer({
    groupId,
    ...memberOptions,
    ...extra,
    onAssigned: (e) => {
      assigned.push(e);
    },
    onRevoked: (e) => {
      revoked.push(e);
    },
  });
  const values: string[] = [];
  const done = (async () => {
    await consumer.subscribe({ topics: [topic] });
    for await (const r of consumer) values.push(Buffer.from(r.value ?? []).toString());
  })();
  done.catch(() => undefined);
  return { consumer, values, assigned, revoked, done };
}

/** No partition owned by two members in one generation, from their assignment events. */
function checkSingleOwners(members: readonly Member[]): void {
  const owners = new Map<string, string>();
  for (const m of members) {
    for (const e of m.assigned) {
      for (const tp of e.assignment) {
        const k = `${e.generation}/${tp.topic}/${tp.partition}`;
        const other = owners.get(k);
        expect(
          other === undefined || other === e.memberId,
          `${k}: ${other} and ${e.memberId}`,
        ).toBe(true);
        owners.set(k, e.memberId);
      }
    }
  }
}

describe('consumer groups against a real broker (cluster of one)', () => {
  it('two cooperative members share a topic while it is produced; committed == log end', async () => {
    const { bootstrap, admin } = await oneBroker();
    await createTopic(admin, 'orders', 6);
    const producer = client(bootstrap).producer();
    let sent = 0;
    const send = async (n: number) => {
      const batch = Array.from({ length: n }, () => ({
        topic: 'orders',
        partition: sent % 6,
        value: `r${sent++}`,
      }));
      await producer.sendBatch(batch);
    };
    await send(300);
    const a = member(client(bootstrap), 'billing', 'orders');
    await until('a consumes', () => a.values.length >= 300);
    const b = member(client(bootstrap), 'billing', 'orders');
    // Produce while b joins and the group rebalances twice.
    for (let i = 0; i < 10; i++) {
      await send(30);
      await new Promise((r) => setTimeout(r, 50));
    }
    await until(
      'three partitions each',
      () => a.consumer.assignment().length === 3 && b.consumer.assignment().length === 3,
    );
    await send(100);
    await until('every record processed', () => new Set([...a.values, ...b.values]).size === sent);
    // a gave up only what b took, once; it was never told it lost its partitions.
    expect(a.revoked).toHaveLength(1);
    expect(a.revoked[0]!.partitions).toEqual(b.consumer.assignment());
    expect(a.revoked.every((e) => !e.lost)).toBe(true);
    checkSingleOwners([a, b]);
    const described = await admin.describeGroup('billing');
    expect(described.state).toBe('Stable');
    expect(described.protocol).toBe('cooperative-sticky');
    expect(described.members.map((m) => m.assignment.length).sort()).toEqual([3, 3]);
    expect((await admin.listGroups()).map((g) => g.groupId)).toEqual(['billing']);
    await Promise.all([a.consumer.close(), b.consumer.close()]);
    await Promise.all([a.done, b.done]);
    const after = await admin.describeGroup('billing');
    expect(after.state).toBe('Empty');
    expect(after.offsets).toHaveLength(6);
    for (const o of after.offsets) expect(o.committedOffset).toBe(o.logEnd);
  }, 90_000);

  it('pause, seek, resume and unsubscribe on a real coordinator', async () => {
    const { bootstrap, admin } = await oneBroker();
    await createTopic(admin, 'sp', 2);
    const c = client(bootstrap);
    const producer = c.producer();
    await producer.sendBatch(
      Array.from({ length: 20 }, (_, i) => ({ topic: 'sp', partition: i % 2, value: `v${i}` })),
    );
    const consumer = c.consumer({ groupId: 'controls', ...memberOptions });
    await consumer.subscribe({ topics: ['sp'] });
    await until('assigned', () => consumer.assignment().length === 2);
    consumer.pause([{ topic: 'sp', partition: 1 }]);
    const got: Array<{ partition: number; offset: number }> = [];
    const done = (async () => {
      for await (const r of consumer) got.push({ partition: r.partition, offset: r.offset });
    })();
    done.catch(() => undefined);
    await until('partition 0', () => got.length === 10);
    await new Promise((r) => setTimeout(r, 300));
    expect(got.every((r) => r.partition === 0)).toBe(true);
    // Back to partition 0's first record: its ten again.
    const first = got[0]!.offset;
    consumer.seek({ topic: 'sp', partition: 0, offset: first });
    await until('partition 0 again', () => got.length === 20);
    expect(got.slice(10).map((r) => r.offset)).toEqual(got.slice(0, 10).map((r) => r.offset));
    consumer.resume([{ topic: 'sp', partition: 1 }]);
    await until('partition 1', () => got.length === 30);
    expect(got.slice(20).every((r) => r.partition === 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    await consumer.unsubscribe();
    expect(consumer.assignment()).toEqual([]);
    const left = await admin.describeGroup('controls');
    expect(left.state).toBe('Empty');
    for (const o of left.offsets) expect(o.committedOffset).toBe(o.logEnd);
    // Subscribing again starts at the commits: only new records.
    await consumer.subscribe({ topics: ['sp'] });
    await producer.sendBatch([
      { topic: 'sp', partition: 0, value: 'new0' },
      { topic: 'sp', partition: 1, value: 'new1' },
    ]);
    await until('the new records', () => got.length === 32);
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toHaveLength(32);
    await consumer.close();
    await done;
  }, 60_000);

  it('partitions added with admin.createPartitions reach a producer and a subscribed group', async () => {
    const { bootstrap, admin } = await oneBroker();
    await createTopic(admin, 'grows', 2);
    // Another client's producer and member: they see the change on their next metadata refresh.
    const other = new StreamBusClient({ bootstrap, retry, metadataMaxAgeMs: 200 });
    cleanups.push(() => other.close());
    const producer = other.producer();
    await producer.sendBatch([
      { topic: 'grows', partition: 0, value: 'a0' },
      { topic: 'grows', partition: 1, value: 'a1' },
    ]);
    const m = member(other, 'growers', 'grows', { metadataRefreshMs: 300 });
    await until('two partitions', () => m.consumer.assignment().length === 2);
    await expect(admin.createPartitions({ topic: 'grows', count: 1 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_PARTITIONS,
    });
    await admin.createPartitions({ topic: 'grows', count: 4, validateOnly: true });
    expect((await admin.describeTopic('grows')).partitions).toHaveLength(2);
    await admin.createPartitions({ topic: 'grows', count: 4 });
    const d = await admin.describeTopic('grows');
    expect(d.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
    expect(d.partitions.every((p) => p.leaderId === 1)).toBe(true);
    // The producer: a send to partition 3 works once its metadata refreshed (any send does it).
    await until('the producer sees partition 3', async () => {
      try {
        await producer.send({ topic: 'grows', partition: 3, value: 'b3' });
        return true;
      } catch (err) {
        if ((err as { code?: number }).code !== ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) throw err;
        await producer.send({ topic: 'grows', partition: 0, value: 'tick' });
        return false;
      }
    });
    await producer.send({ topic: 'grows', partition: 2, value: 'b2' });
    // The group rebalances onto the new partitions at its next subscription check.
    await until('four partitions', () => m.consumer.assignment().length === 4, 45_000);
    await until('the new partitions consumed', () =>
      ['b2', 'b3'].every((v) => m.values.includes(v)),
    );
    await m.consumer.close();
    await m.done;
    // The CLI: a dry run changes nothing, then the topic grows to 5; a shrink is refused.
    const b = ['--bootstrap', bootstrap];
    const dry = await runCli([
      'topic',
      'add-partitions',
      'grows',
      '--count',
      '5',
      '--dry-run',
      ...b,
    ]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/can grow to 5 partitions \(dry run/);
    const cli = await runCli([
      'topic',
      'add-partitions',
      'grows',
      '--count',
      '5',
      '--replica-assignment',
      '1',
      '--output',
      'json',
      ...b,
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual({ topic: 'grows', partitions: 5, dryRun: false });
    expect((await admin.describeTopic('grows')).partitions).toHaveLength(5);
    const shrink = await runCli(['topic', 'add-partitions', 'grows', '--count', '3', ...b]);
    expect(shrink.code).not.toBe(0);
    expect(shrink.stderr).toMatch(/the count can only grow/);
  }, 90_000);

  it('a static member that restarts within its session gets its partitions back, no rebalance', async () => {
    const { bootstrap, admin } = await oneBroker();
    await createTopic(admin, 'static', 4);
    const staticMember = (instance: string, sink: AssignmentEvent[]) =>
      client(bootstrap).consumer({
        groupId: 'static-group',
        groupInstanceId: instance,
        ...memberOptions,
        onAssigned: (e) => {
          sink.push(e);
        },
      });
    const aEvents: AssignmentEvent[] = [];
    const bEvents: AssignmentEvent[] = [];
    const a = staticMember('a', aEvents);
    const b = staticMember('b', bEvents);
    await a.subscribe({ topics: ['static'] });
    await b.subscribe({ topics: ['static'] });
    const iterate = (m: GroupConsumer) =>
      (async () => {
        for await (const _ of m) {
          // Nothing is produced; the loop keeps the member polling.
        }
      })();
    const da = iterate(a);
    const db = iterate(b);
    await until(
      'two members with two partitions each',
      () => a.assignment().length === 2 && b.assignment().length === 2,
    );
    const generation = a.generation;
    const before = b.assignment();
    // b's process "restarts": a static member's close does not leave the group.
    await b.close();
    await db;
    const restartedEvents: AssignmentEvent[] = [];
    const b2 = staticMember('b', restartedEvents);
    await b2.subscribe({ topics: ['static'] });
    const db2 = iterate(b2);
    await until('b back', () => restartedEvents.length > 0);
    expect(b2.assignment()).toEqual(before);
    expect(b2.generation).toBe(generation);
    // a saw no rebalance: one assignment, its partitions never revoked.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(aEvents).toHaveLength(1);
    expect(a.generation).toBe(generation);
    await Promise.all([a.close(), b2.close()]);
    await Promise.all([da, db2]);
  }, 90_000);

  it('admin and CLI: describe, reset, consume --group, delete; offsets survive a restart', async () => {
    const dir = tempDir();
    cleanups.push(() => removeDir(dir));
    let broker = await start(dir);
    const port = broker.address.port;
    cleanups.push(() => broker.close());
    const bootstrap = `127.0.0.1:${port}`;
    const c = client(bootstrap);
    const admin = c.admin();
    await createTopic(admin, 'events', 2);
    await c.producer().sendBatch(
      Array.from({ length: 20 }, (_, i) => ({
        topic: 'events',
        partition: i % 2,
        value: `e${i}`,
      })),
    );
    const b = ['--bootstrap', bootstrap];
    const consumed = await runCli([
      'consume',
      'events',
      '--group',
      'cli',
      '--timeout-ms',
      '1500',
      ...b,
    ]);
    expect(consumed.code, consumed.stderr).toBe(0);
    expect(consumed.stdout.trim().split('\n').sort()).toHaveLength(20);
    const d = JSON.parse(
      (await runCli(['group', 'describe', 'cli', '--output', 'json', ...b])).stdout,
    );
    expect(d.state).toBe('Empty');
    // Committed at the log ends (a partition's log on the cluster path starts with the leader's
    // first entry at offset 0, so its 10 records are offsets 1..10).
    const ends = d.offsets.map((o: { committedOffset: number; logEnd: number }) => [
      o.committedOffset,
      o.logEnd,
    ]);
    expect(ends).toEqual([
      [11, 11],
      [11, 11],
    ]);
    const reset = await runCli([
      'group',
      'reset-offsets',
      'cli',
      '--topic',
      'events',
      '--to-offset',
      '4',
      '--output',
      'json',
      ...b,
    ]);
    expect(reset.code, reset.stderr).toBe(0);
    expect(JSON.parse(reset.stdout).offsets.map((o: { newOffset: number }) => o.newOffset)).toEqual(
      [4, 4],
    );

    // The committed offsets survive a restart of the broker (same data directory and port).
    await broker.close();
    broker = await start(dir, port);
    const resumed = await runCli([
      'consume',
      'events',
      '--group',
      'cli',
      '--max-messages',
      '14',
      '--output',
      'json',
      ...b,
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const offsets = resumed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).offset as number);
    expect(offsets.sort((x, y) => x - y)).toEqual([4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]);

    const list = await runCli(['group', 'list', '--output', 'json', ...b]);
    expect(
      list.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).groupId),
    ).toEqual(['cli']);
    await expect(admin.deleteGroup('nobody')).rejects.toMatchObject({
      code: ErrorCode.GROUP_ID_NOT_FOUND,
    });
    const del = await runCli(['group', 'delete', 'cli', ...b]);
    expect(del.code, del.stderr).toBe(0);
    expect((await admin.describeGroup('cli')).state).toBe('Dead');
  }, 90_000);
});
