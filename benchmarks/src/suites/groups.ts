// Suite `groups` (issue 10): consumer groups on broker processes on this machine
// (test/src/cluster-harness.ts, 127.0.0.1): three brokers, or one with --quick. Every member is a
// GroupConsumer of its own StreamBusClient in this process; the coordinator, `__consumer_offsets`
// (broker defaults: 50 partitions, RF min(3, brokers)) and the group state are the brokers'.
//
// Rows:
//   groups rebalance, join, <assignor>   ms from the moment a new member subscribes to a group of
//                      10 members over 100 partitions (quick: 3 over 12) until every member is
//                      consuming again: every partition owned by exactly one member, all members on
//                      one generation, each owning at least floor(partitions / members), and each
//                      having received a record after its own last assignment change (and after
//                      the join). A producer in this process keeps sending one record to every
//                      partition every 20 ms throughout. Median of the runs (a new group each);
//                      cooperative-sticky and range (eager) side by side, alternating runs; the
//                      cooperative row's reference is the eager one (ratio = eager / cooperative,
//                      higher is better for cooperative).
//   groups consume, 3 members     records/s of a 3-member group (cooperative-sticky) reading a
//                      filled 6-partition RF 3 topic from the start to the end with `for await`,
//                      from the first record to the last (the initial join is not timed).
//                      Reference: one assign-mode Consumer reading the same topic with `for await`;
//                      ratio = group / single.
//   groups commits/s, sequential   commit([...12 partitions...]) calls per second by one member,
//                      each waiting for the coordinator's acks=all answer.
//   groups commits/s, 16 in flight   the same with 16 commit() calls outstanding.
// Heartbeats every 100 ms (sessionTimeoutMs 10 s): the rows measure the group protocol, not the
// 3 s default heartbeat after which Kafka's members too learn of a rebalance.
import {
  type AssignorName,
  type GroupConsumer,
  type Producer,
  StreamBusClient,
} from '@streambus/client';
import type { TestCluster } from '../../../test/dist/cluster-harness.js';
import {
  median,
  medianOfRuns,
  type ResultRow,
  row,
  type Suite,
  type SuiteOptions,
} from '../harness.js';
import { createReplicated, withCluster } from './cluster.js';

const HEARTBEAT_MS = 100;
const SESSION_MS = 10_000;
const TRICKLE_MS = 20;
const REBALANCE_TIMEOUT_MS = 60_000;

interface Ctx {
  readonly options: SuiteOptions;
  readonly brokers: number;
  readonly rf: number;
  readonly cluster: TestCluster;
  readonly client: StreamBusClient;
  seq: number;
}

/** One member with what the rebalance row watches: assignment changes and records. */
interface Member {
  readonly client: StreamBusClient;
  readonly consumer: GroupConsumer;
  lastChangeMs: number;
  lastRecordMs: number;
  records: number;
  readonly loop: Promise<void>;
}

async function startMember(
  bootstrap: TestCluster['bootstrap'],
  groupId: string,
  topic: string,
  assignor: AssignorName,
): Promise<Member> {
  const client = new StreamBusClient({ bootstrap });
  const m = {
    client,
    lastChangeMs: 0,
    lastRecordMs: 0,
    records: 0,
  } as Partial<Member> & { lastChangeMs: number; lastRecordMs: number; records: number };
  const consumer = client.consumer({
    groupId,
    assignor,
    heartbeatIntervalMs: HEARTBEAT_MS,
    sessionTimeoutMs: SESSION_MS,
    autoOffsetReset: 'latest',
    maxWaitMs: 100,
    onAssigned: () => {
      m.lastChangeMs = performance.now();
    },
    onRevoked: () => {
      m.lastChangeMs = performance.now();
    },
  });
  await consumer.subscribe({ topics: [topic] });
  const loop = (async () => {
    for await (const _ of consumer) {
      m.lastRecordMs = performance.now();
      m.records++;
    }
  })();
  loop.catch(() => undefined);
  return Object.assign(m, { client, consumer, loop }) as Member;
}

async function stopMembers(members: readonly Member[]): Promise<void> {
  await Promise.all(
    members.map(async (m) => {
      await m.consumer.close().catch(() => undefined);
      await m.loop.catch(() => undefined);
      await m.client.close().catch(() => undefined);
    }),
  );
}

/** Every partition owned once, one generation, balanced, and everyone consuming since `sinceMs`. */
function settled(members: readonly Member[], partitions: number, sinceMs: number): boolean {
  const generation = members[0]!.consumer.generation;
  if (generation < 0) return false;
  const owners = new Set<number>();
  let owned = 0;
  const floor = Math.floor(partitions / members.length);
  for (const m of members) {
    if (m.consumer.generation !== generation) return false;
    const a = m.consumer.assignment();
    if (a.length < floor) return false;
    for (const tp of a) owners.add(tp.partition);
    owned += a.length;
    if (m.lastRecordMs <= Math.max(m.lastChangeMs, sinceMs)) return false;
  }
  return owned === partitions && owners.size === partitions;
}

async function waitSettled(
  members: readonly Member[],
  partitions: number,
  sinceMs: number,
  what: string,
): Promise<number> {
  const deadline = performance.now() + REBALANCE_TIMEOUT_MS;
  while (!settled(members, partitions, sinceMs)) {
    if (performance.now() > deadline) {
      const state = members
        .map((m) => `gen ${m.consumer.generation}: ${m.consumer.assignment().length}`)
        .join(', ');
      throw new Error(
        `groups bench: ${what} did not settle in ${REBALANCE_TIMEOUT_MS} ms (${state})`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now();
}

/** One record to every partition every TRICKLE_MS until stopped. */
function trickle(producer: Producer, topic: string, partitions: number) {
  let stop = false;
  let failure: unknown = null;
  const done = (async () => {
    while (!stop) {
      await producer
        .sendBatch(
          Array.from({ length: partitions }, (_, partition) => ({ topic, partition, value: 'x' })),
        )
        .catch((err: unknown) => {
          failure = err;
          stop = true;
        });
      await new Promise((r) => setTimeout(r, TRICKLE_MS));
    }
  })();
  return {
    async stop(): Promise<void> {
      stop = true;
      await done;
      if (failure !== null) throw failure;
    },
  };
}

/** One timed join: `size` members settle (not timed), then one more joins (timed, ms). */
async function rebalanceRun(
  ctx: Ctx,
  topic: string,
  partitions: number,
  size: number,
  assignor: AssignorName,
): Promise<number> {
  const groupId = `rebalance-${assignor}-${++ctx.seq}`;
  const members: Member[] = [];
  try {
    members.push(
      ...(await Promise.all(
        Array.from({ length: size }, () =>
          startMember(ctx.cluster.bootstrap, groupId, topic, assignor),
        ),
      )),
    );
    await waitSettled(members, partitions, performance.now(), `a group of ${size}`);
    const joinedAt = performance.now();
    members.push(await startMember(ctx.cluster.bootstrap, groupId, topic, assignor));
    const end = await waitSettled(members, partitions, joinedAt, `the join of member ${size + 1}`);
    return end - joinedAt;
  } finally {
    await stopMembers(members);
  }
}

async function rebalanceRows(ctx: Ctx): Promise<ResultRow[]> {
  const partitions = ctx.options.quick ? 12 : 100;
  const size = ctx.options.quick ? 3 : 10;
  const runs = ctx.options.quick ? 1 : 5;
  const topic = `rebalance-${++ctx.seq}`;
  await createReplicated(ctx.client, topic, partitions, ctx.rf, 'none');
  const producer = ctx.client.producer({ acks: 1, lingerMs: 0 });
  const load = trickle(producer, topic, partitions);
  const m = await medianOfRuns(
    runs,
    () => rebalanceRun(ctx, topic, partitions, size, 'cooperative-sticky'),
    () => rebalanceRun(ctx, topic, partitions, size, 'range'),
  ).finally(() => load.stop().finally(() => producer.close()));
  await ctx.client.admin().deleteTopic(topic);
  const settings = {
    brokers: ctx.brokers,
    replicationFactor: ctx.rf,
    members: `${size} + 1 joining`,
    partitions,
    runs,
    heartbeatIntervalMs: HEARTBEAT_MS,
    sessionTimeoutMs: SESSION_MS,
    load: `one record to every partition every ${TRICKLE_MS} ms (acks=1)`,
    until:
      'every partition owned once, one generation, each member >= floor(partitions/members) and consuming since its last change',
  };
  const cooperative = m.value;
  const eager = m.reference!;
  return [
    {
      ...row(
        'groups rebalance, join, cooperative-sticky',
        cooperative,
        'ms',
        {
          ...settings,
          assignor: 'cooperative-sticky',
          values: m.values.map(Math.round),
          reference:
            'the same join with range (eager), alternating runs; ratio = eager / cooperative',
        },
        eager,
      ),
      ratio: cooperative === 0 ? 0 : eager / cooperative,
    },
    row('groups rebalance, join, range (eager)', eager, 'ms', {
      ...settings,
      assignor: 'range',
      values: m.references.map(Math.round),
    }),
  ];
}

async function fill(ctx: Ctx, topic: string, records: number): Promise<void> {
  const producer = ctx.client.producer({ acks: 'all' });
  try {
    const value = Buffer.from(''.padEnd(100, '.'));
    const chunk = Array.from({ length: 10_000 }, () => ({ topic, value }));
    for (let sent = 0; sent < records; sent += chunk.length) {
      await producer.sendBatch(chunk.slice(0, Math.min(chunk.length, records - sent)));
    }
  } finally {
    await producer.close();
  }
}

/** records/s of `members` group members reading the whole topic (first record to last). */
async function groupConsume(ctx: Ctx, topic: string, records: number, size: number) {
  const groupId = `consume-${++ctx.seq}`;
  const clients = Array.from(
    { length: size },
    () => new StreamBusClient({ bootstrap: ctx.cluster.bootstrap }),
  );
  let got = 0;
  let first = 0;
  let last = 0;
  const consumers = clients.map((c) =>
    c.consumer({
      groupId,
      heartbeatIntervalMs: HEARTBEAT_MS,
      sessionTimeoutMs: SESSION_MS,
      autoOffsetReset: 'earliest',
      maxWaitMs: 100,
    }),
  );
  let finished: () => void = () => undefined;
  const allRead = new Promise<void>((resolve) => {
    finished = resolve;
  });
  try {
    const loops = consumers.map(async (consumer) => {
      await consumer.subscribe({ topics: [topic] });
      for await (const _ of consumer) {
        const now = performance.now();
        if (got === 0) first = now;
        last = now;
        if (++got >= records) finished();
      }
    });
    for (const l of loops) l.catch(() => undefined);
    const deadline = setTimeout(finished, 300_000);
    await allRead;
    clearTimeout(deadline);
    if (got < records) throw new Error(`groups bench: the group read ${got} of ${records}`);
    return records / ((last - first) / 1000);
  } finally {
    await Promise.all(consumers.map((c) => c.close().catch(() => undefined)));
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }
}

/** records/s of one assign-mode Consumer reading the whole topic with `for await`. */
async function singleConsume(ctx: Ctx, topic: string, records: number): Promise<number> {
  const client = new StreamBusClient({ bootstrap: ctx.cluster.bootstrap });
  const consumer = client.consumer({ maxWaitMs: 100 });
  try {
    await consumer.assign({ topic, from: 'earliest' });
    let got = 0;
    let first = 0;
    let last = 0;
    for await (const _ of consumer) {
      const now = performance.now();
      if (got === 0) first = now;
      last = now;
      if (++got >= records) break;
    }
    return records / ((last - first) / 1000);
  } finally {
    await consumer.close();
    await client.close();
  }
}

async function consumeRow(ctx: Ctx): Promise<ResultRow> {
  const records = ctx.options.quick ? 30_000 : 600_000;
  const partitions = 6;
  const size = 3;
  const runs = ctx.options.quick ? 1 : 3;
  const topic = `consume-${++ctx.seq}`;
  await createReplicated(ctx.client, topic, partitions, ctx.rf, 'none');
  await fill(ctx, topic, records);
  const m = await medianOfRuns(
    runs,
    () => groupConsume(ctx, topic, records, size),
    () => singleConsume(ctx, topic, records),
  );
  await ctx.client.admin().deleteTopic(topic);
  return row(
    `groups consume, ${size} members`,
    m.value,
    'records/s',
    {
      brokers: ctx.brokers,
      replicationFactor: ctx.rf,
      members: size,
      assignor: 'cooperative-sticky',
      partitions,
      records,
      recordValueBytes: 100,
      runs,
      timed: 'first record to last (the initial join is not timed)',
      values: m.values.map(Math.round),
      references: m.references.map(Math.round),
      reference:
        'one assign-mode Consumer reading the same topic with for await; ratio = group / single',
    },
    m.reference,
  );
}

async function commitRows(ctx: Ctx): Promise<ResultRow[]> {
  const partitions = 12;
  const seconds = ctx.options.quick ? 1 : 5;
  const topic = `commits-${++ctx.seq}`;
  await createReplicated(ctx.client, topic, partitions, ctx.rf, 'none');
  const client = new StreamBusClient({ bootstrap: ctx.cluster.bootstrap });
  const consumer = client.consumer({
    groupId: `commits-${ctx.seq}`,
    heartbeatIntervalMs: HEARTBEAT_MS,
    sessionTimeoutMs: SESSION_MS,
    autoCommit: false,
    maxWaitMs: 100,
  });
  const rows: ResultRow[] = [];
  try {
    await consumer.subscribe({ topics: [topic] });
    const deadline = performance.now() + REBALANCE_TIMEOUT_MS;
    while (consumer.assignment().length < partitions) {
      if (performance.now() > deadline)
        throw new Error('groups bench: the committer got no assignment');
      await new Promise((r) => setTimeout(r, 10));
    }
    let offset = 0;
    const commitAll = () => {
      offset++;
      return consumer.commit(
        Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset })),
      );
    };
    for (const inflight of [1, 16]) {
      const perRun: number[] = [];
      const runs = ctx.options.quick ? 1 : 3;
      for (let run = 0; run < runs; run++) {
        const start = performance.now();
        const end = start + seconds * 1000;
        let done = 0;
        await Promise.all(
          Array.from({ length: inflight }, async () => {
            while (performance.now() < end) {
              await commitAll();
              done++;
            }
          }),
        );
        perRun.push(done / ((performance.now() - start) / 1000));
      }
      rows.push(
        row(
          `groups commits/s, ${inflight === 1 ? 'sequential' : `${inflight} in flight`}`,
          median(perRun),
          'commits/s',
          {
            brokers: ctx.brokers,
            replicationFactor: ctx.rf,
            offsetsPerCommit: partitions,
            inflight,
            secondsPerRun: seconds,
            runs,
            values: perRun.map(Math.round),
            durability:
              "__consumer_offsets' default, acks=all (the coordinator answers after commit)",
          },
        ),
      );
    }
  } finally {
    await consumer.close().catch(() => undefined);
    await client.close();
  }
  await ctx.client.admin().deleteTopic(topic);
  return rows;
}

export const suite: Suite = {
  name: 'groups',
  description:
    'Consumer groups on three broker processes (one with --quick): time from a new member joining ' +
    'a 10-member group over 100 partitions until every member consumes again, cooperative-sticky ' +
    'vs eager range (read first: that ratio), the consume throughput of a 3-member group vs one ' +
    'consumer, and commits per second (sequential and 16 in flight).',
  async run(options: SuiteOptions): Promise<ResultRow[]> {
    const brokers = options.quick ? 1 : 3;
    return withCluster(brokers, async (cluster, client) => {
      const ctx: Ctx = { options, brokers, rf: Math.min(3, brokers), cluster, client, seq: 0 };
      const rows: ResultRow[] = [];
      rows.push(...(await rebalanceRows(ctx)));
      rows.push(await consumeRow(ctx));
      rows.push(...(await commitRows(ctx)));
      return rows;
    });
  },
};
