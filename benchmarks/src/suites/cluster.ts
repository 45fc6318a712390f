// Suite `cluster` (issue 9): three broker processes on this machine (test/src/cluster-harness.ts,
// 127.0.0.1, `broker start --node-id I --peers ...`), topics with replication factor 3, 100 B
// records, our Producer and Consumer from this process.
//
// Rows (every row's settings state durability, acks, record size, records, partitions, runs):
//   cluster producer acks=all   records/s of sendBatch (10,000-record chunks, 8 outstanding,
//                      idempotent) into a 4-partition RF 3 topic, durability always. Reference:
//                      the same load into a cluster of ONE broker started the same way, runs
//                      alternating; ratio = 3 brokers / 1 broker.
//   cluster producer acks=1     the same with acks=1 (durability none), same single-node reference.
//   cluster consume 100 B       records/s of one Consumer reading a filled 1-partition RF 3 topic
//                      from the earliest offset to its end (its leader serves).
//   cluster latency acks=all p50 / p99   send() per record at a paced 10,000 records/s, lingerMs 0,
//                      1 partition RF 3, durability always; medians of the runs' quantiles; the
//                      broker suite's paced reference (same disk) alternating with the runs.
//   cluster failover           ms from kill -9 of a partition's leader until the first produce
//                      acknowledged after it (by the new leader), median of 5; the broker is
//                      restarted and the cluster ready again before the next run.
//   cluster idle cpu / rss, 1,000 replicas   with 1,000 partitions of RF 3 (every broker holds a
//                      replica of each) and no traffic: the highest per-broker CPU share of one
//                      core over an idle window (/proc/<pid>/stat) and VmRSS.
//   cluster reassignment MB/s (unthrottled, throttled), cluster rolling restart p50/p99 before,
//                      during and after, and its failed sends: issue 12 (cluster-ops.ts).
// Before measuring, the suite checks that the cluster replicates (every partition of an RF 3
// topic lists 3 replicas with a leader); without a working cluster it fails and says why.
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { type Producer, StreamBusClient, StreamBusError } from '@streambus/client';
import { TestCluster } from '../../../test/dist/cluster-harness.js';
import {
  median,
  medianOfRuns,
  type ResultRow,
  row,
  type Suite,
  type SuiteOptions,
} from '../harness.js';
import { pacedSendLatencies } from '../paced-send.js';
import {
  alternatePaced,
  endOffsetSum,
  PACED_DROP_MS,
  PACED_REFERENCE,
  procStatusKiB,
  sendChunks,
} from './broker.js';
import { reassignmentRows, rollingRestartRows } from './cluster-ops.js';

const RF = 3;
const PARTITIONS = 4;
const CHUNK_RECORDS = 10_000;
const LATENCY_RATE = 10_000;
const IDLE_REPLICAS = 1000;
const CLK_TCK = 100;

interface Ctx {
  readonly options: SuiteOptions;
  readonly cluster: TestCluster;
  readonly client: StreamBusClient;
  readonly runs: number;
  topicSeq: number;
}

function values100(): Buffer[] {
  return Array.from({ length: 1000 }, (_, i) => Buffer.from(`value ${i} `.padEnd(100, '.')));
}

/** DescribeTopic, or null on a retriable error ("not yet"). */
function describeOrNull(client: StreamBusClient, name: string) {
  return client
    .admin()
    .describeTopic(name)
    .catch((err: unknown) => {
      if (err instanceof StreamBusError && err.retriable) return null;
      throw err;
    });
}

/**
 * Creates a topic and waits until every partition has a leader and `rf` replicas; throws
 * (naming what the cluster answered) when the cluster does not replicate.
 */
export async function createReplicated(
  client: StreamBusClient,
  name: string,
  partitions: number,
  rf: number,
  durability: 'none' | 'always',
  timeoutMs = 30_000,
): Promise<void> {
  await client.admin().createTopic({ name, partitions, configs: { durability } });
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    // Right after creation a replica may not be open yet: a retriable error means "not yet".
    const d = await describeOrNull(client, name);
    if (d === null) {
      if (Date.now() > deadline) throw new Error(`topic ${name}: not served in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const bad = d.partitions.filter(
      (p) => p.errorCode !== 0 || p.leaderId < 1 || p.replicas.length !== rf,
    );
    if (d.partitions.length === partitions && bad.length === 0) return;
    last = bad
      .slice(0, 3)
      .map((p) => `partition ${p.partition}: leader ${p.leaderId}, replicas [${p.replicas}]`)
      .join('; ');
    if (Date.now() > deadline) {
      throw new Error(
        `topic ${name} did not get ${rf} replicas and a leader per partition in ${timeoutMs} ms ` +
          `(${last}): the cluster does not replicate`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** sendBatch() throughput of `total` 100 B records into a fresh topic; checks all stored. */
async function producerRun(
  client: StreamBusClient,
  topic: string,
  acks: 1 | 'all',
  total: number,
): Promise<number> {
  const values = values100();
  const chunk = Array.from({ length: CHUNK_RECORDS }, (_, i) => ({
    topic,
    value: values[i % values.length]!,
  }));
  const producer = client.producer({ acks });
  try {
    await producer.send({ topic, value: 'warm-up' });
    const start = process.hrtime.bigint();
    await sendChunks(producer, chunk, total);
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    // A leader elected during the run learns the commit point only once an entry of its own
    // term commits, so its high watermark (the ListOffsets answer) can trail the last
    // acknowledgement for a moment: wait for it, boundedly, before checking.
    let stored = await endOffsetSum(client, topic);
    for (const until = Date.now() + 5000; stored < total + 1 && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 100));
      stored = await endOffsetSum(client, topic);
    }
    // End offsets count records plus one control batch (the no-op) per partition leader term.
    const controlMax = 8 * PARTITIONS;
    if (stored < total + 1 || stored > total + 1 + controlMax) {
      throw new Error(
        `cluster end offsets sum to ${stored} for ${total + 1} records (at most ${controlMax} control batches expected)`,
      );
    }
    return total / secs;
  } finally {
    await producer.close();
  }
}

export function withCluster<T>(
  nodes: number,
  body: (c: TestCluster, client: StreamBusClient) => Promise<T>,
): Promise<T> {
  return withClusterEnv(nodes, {}, body);
}

/** `withCluster` with extra environment (and node flags, e.g. --cpu-prof) for the brokers. */
export async function withClusterEnv<T>(
  nodes: number,
  env: Readonly<Record<string, string>>,
  body: (c: TestCluster, client: StreamBusClient) => Promise<T>,
  nodeFlags: readonly string[] = [],
): Promise<T> {
  let cluster: TestCluster | null = null;
  let client: StreamBusClient | null = null;
  try {
    try {
      cluster = await TestCluster.start({ nodes, network: 'direct', env, nodeFlags });
    } catch (err) {
      throw new Error(
        `cluster bench: a cluster of ${nodes} broker(s) did not start, so nothing was measured: ${(err as Error).message}`,
        { cause: err },
      );
    }
    client = new StreamBusClient({ bootstrap: cluster.bootstrap });
    return await body(cluster, client);
  } finally {
    await client?.close().catch(() => undefined);
    await cluster?.close();
  }
}

async function producerRows(ctx: Ctx, single: { cluster: TestCluster; client: StreamBusClient }) {
  const rows: ResultRow[] = [];
  const total = ctx.options.quick ? 200_000 : 2_000_000;
  for (const acks of ['all', 1] as const) {
    const durability = acks === 'all' ? 'always' : 'none';
    const m = await medianOfRuns(
      ctx.runs,
      async () => {
        const topic = `prod-${acks}-${++ctx.topicSeq}`;
        await createReplicated(ctx.client, topic, PARTITIONS, RF, durability);
        const r = await producerRun(ctx.client, topic, acks, total);
        await ctx.client.admin().deleteTopic(topic);
        return r;
      },
      async () => {
        const topic = `single-${acks}-${++ctx.topicSeq}`;
        await createReplicated(single.client, topic, PARTITIONS, 1, durability);
        const r = await producerRun(single.client, topic, acks, total);
        await single.client.admin().deleteTopic(topic);
        return r;
      },
    );
    rows.push(
      row(
        `cluster producer acks=${acks}`,
        m.value,
        'records/s',
        {
          brokers: 3,
          replicationFactor: RF,
          durability,
          acks,
          recordValueBytes: 100,
          records: total,
          partitions: PARTITIONS,
          runs: ctx.runs,
          inflight: `8 sendBatch chunks of ${CHUNK_RECORDS}; client default in-flight requests`,
          idempotent: true,
          values: m.values.map(Math.round),
          references: m.references.map(Math.round),
          reference: `the same load into a cluster of one broker (replication factor 1), alternating runs; ratio = 3 brokers / 1`,
          target: acks === 'all' ? '>= 500,000 records/s' : '>= 1,000,000 records/s',
        },
        m.reference,
      ),
    );
  }
  return rows;
}

async function consumeRow(ctx: Ctx): Promise<ResultRow> {
  const records = (ctx.options.quick ? 300_000 : 2_000_000) + 1;
  const topic = `cons-${++ctx.topicSeq}`;
  await createReplicated(ctx.client, topic, 1, RF, 'none');
  // The producer's warm-up record, then whole chunks.
  await producerRun(ctx.client, topic, 'all', records - 1);
  const m = await medianOfRuns(ctx.runs, async () => {
    const consumer = ctx.client.consumer({ maxWaitMs: 100 });
    try {
      await consumer.assign({ topic, from: 'earliest' });
      const start = process.hrtime.bigint();
      let got = 0;
      while (got < records) for (const b of await consumer.poll()) got += b.records.length;
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      if (got !== records) throw new Error(`consumed ${got} of ${records}`);
      return records / secs;
    } finally {
      await consumer.close();
    }
  });
  await ctx.client.admin().deleteTopic(topic);
  return row('cluster consume 100 B', m.value, 'records/s', {
    brokers: 3,
    replicationFactor: RF,
    durability: 'none (filled with acks=all)',
    acks: 'n/a (read path)',
    recordValueBytes: 100,
    records,
    partitions: 1,
    runs: ctx.runs,
    inflight: '1 fetch per broker (client Consumer), from the leader',
    values: m.values.map(Math.round),
    reference: 'none (the broker suite has the single-node consume rows)',
    target: '>= 2,000,000 records/s',
  });
}

async function latencyRows(ctx: Ctx): Promise<ResultRow[]> {
  const seconds = ctx.options.quick ? 2 : 4;
  const runs = ctx.options.quick ? 1 : 5;
  // The reference runs on the same disk, where the three brokers' fsyncs stall at the same
  // instants as its own.
  const { p50s, p99s, refP50s, refP99s, measured } = await alternatePaced(
    tmpdir(),
    runs,
    seconds,
    'always',
    async () => {
      const topic = `lat-${++ctx.topicSeq}`;
      await createReplicated(ctx.client, topic, 1, RF, 'always');
      const producer = ctx.client.producer({ acks: 'all', lingerMs: 0 });
      try {
        await producer.send({ topic, value: 'warm-up' });
        return await pacedSendLatencies(producer, topic, Buffer.alloc(100, 108), {
          rate: LATENCY_RATE,
          total: seconds * LATENCY_RATE,
          dropMs: PACED_DROP_MS,
        });
      } finally {
        await producer.close();
        await ctx.client.admin().deleteTopic(topic);
      }
    },
  );
  const settings = {
    brokers: 3,
    replicationFactor: RF,
    durability: 'always',
    acks: 'all',
    recordValueBytes: 100,
    records: seconds * LATENCY_RATE * runs,
    measured,
    partitions: 1,
    runs,
    secondsPerRun: seconds,
    droppedMs: PACED_DROP_MS,
    rateRecordsPerSec: LATENCY_RATE,
    inflight: 'client default (producer send() per record, lingerMs 0)',
    reference: PACED_REFERENCE,
  };
  return [
    row(
      'cluster latency acks=all p50',
      median(p50s),
      'ms',
      { ...settings, values: p50s, references: refP50s },
      median(refP50s),
    ),
    row(
      'cluster latency acks=all p99',
      median(p99s),
      'ms',
      { ...settings, values: p99s, references: refP99s, target: '<= 5 ms' },
      median(refP99s),
    ),
  ];
}

/**
 * One failover: a producer sends one record at a time (acks=all) to a 1-partition topic; the
 * leader is killed with SIGKILL; the time is until the first send made after the kill is
 * acknowledged, which the new leader did (checked: Metadata names another leader).
 */
async function failoverRun(ctx: Ctx): Promise<number> {
  const topic = `fail-${++ctx.topicSeq}`;
  await createReplicated(ctx.client, topic, 1, RF, 'always');
  const leader = await ctx.cluster.leaderOf(topic, 0);
  const producer: Producer = ctx.client.producer({ acks: 'all', lingerMs: 0 });
  try {
    for (let i = 0; i < 100; i++) await producer.send({ topic, value: `before ${i}` });
    const killed = ctx.cluster.kill9(leader);
    const t0 = performance.now();
    await killed;
    await producer.send({ topic, value: 'after the kill' });
    const ms = performance.now() - t0;
    const next = await ctx.cluster.leaderOf(topic, 0, { exclude: [leader] });
    if (next === leader) throw new Error(`failover: ${leader} still leads after its kill`);
    return ms;
  } finally {
    await producer.close();
    await ctx.cluster.restart(leader);
    await ctx.cluster.waitReady();
    await ctx.client.admin().deleteTopic(topic);
  }
}

async function failoverRow(ctx: Ctx): Promise<ResultRow> {
  const runs = ctx.options.quick ? 3 : 5;
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await failoverRun(ctx));
  return row('cluster failover', median(values), 'ms', {
    brokers: 3,
    replicationFactor: RF,
    durability: 'always',
    acks: 'all',
    recordValueBytes: 'about 15',
    records: '100 before the kill, then one',
    partitions: 1,
    runs,
    inflight: 1,
    measured:
      'kill -9 of the leader (process gone) until the first send() after it is acknowledged, SDK retries and metadata refresh included',
    values: values.map((v) => Math.round(v)),
    reference: 'none',
    target: '<= 2,000 ms (median of 5)',
  });
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state (field 3).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Partitions of `topics` led by their preferred replica (replicas[0]); a retriable error: 0. */
async function preferredLed(client: StreamBusClient, topics: readonly string[]): Promise<number> {
  let n = 0;
  for (const name of topics) {
    const d = await describeOrNull(client, name);
    for (const p of d?.partitions ?? []) if (p.leaderId === p.replicas[0]) n++;
  }
  return n;
}

async function idleRows(ctx: Ctx): Promise<ResultRow[]> {
  const topics = IDLE_REPLICAS / 100;
  for (let t = 0; t < topics; t++) {
    await createReplicated(ctx.client, `idle-${t}`, 100, RF, 'none', 120_000);
  }
  // Idle means no leadership still moving: wait (bounded) until preferred-leader balancing has
  // nothing left to do, so its transfers (each a new Raft term: files written and fsynced)
  // cannot land in the window; the row says how many partitions were led by their preferred
  // replica. Then let the first heartbeats settle, and measure a quiet window.
  const names = Array.from({ length: topics }, (_, t) => `idle-${t}`);
  let preferred = await preferredLed(ctx.client, names);
  for (const until = Date.now() + 90_000; preferred < IDLE_REPLICAS && Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 1000));
    preferred = await preferredLed(ctx.client, names);
  }
  await new Promise((r) => setTimeout(r, ctx.options.quick ? 3000 : 10_000));
  const windowMs = ctx.options.quick ? 5000 : 20_000;
  const pids = ctx.cluster.running().map((id) => ctx.cluster.broker(id).process!.pid!);
  const before = pids.map(cpuSeconds);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  const secs = (performance.now() - t0) / 1000;
  const shares = pids.map((pid, i) => ((cpuSeconds(pid) - before[i]!) / secs) * 100);
  const rssMiB = pids.map((pid) => procStatusKiB(pid, 'VmRSS') / 1024);
  const settings = {
    brokers: 3,
    replicationFactor: RF,
    durability: 'none',
    acks: 'n/a (idle)',
    recordValueBytes: 0,
    records: 0,
    partitions: IDLE_REPLICAS,
    replicasPerBroker: IDLE_REPLICAS,
    runs: 1,
    inflight: 0,
    windowSeconds: secs,
    preferredLeaders: preferred,
  };
  return [
    row('cluster idle cpu, 1,000 replicas per broker', Math.max(...shares), '% of a core', {
      ...settings,
      values: shares.map((s) => Number(s.toFixed(2))),
      source: '/proc/<pid>/stat utime+stime over the window; the busiest broker',
      target: '< 5 % of a core',
    }),
    row('cluster idle rss, 1,000 replicas per broker', Math.max(...rssMiB), 'MiB', {
      ...settings,
      values: rssMiB.map((v) => Math.round(v)),
      source: '/proc/<pid>/status VmRSS; the largest broker',
    }),
  ];
}

export const suite: Suite = {
  name: 'cluster',
  description:
    'Three broker processes on this machine, replication factor 3, 100 B records, our producer: ' +
    'acks=all (durability always) and acks=1 vs a same-run cluster of one (read first: those ' +
    'ratios), consume from a replicated topic, p99 produce->ack at a paced 10,000 records/s, ' +
    'failover after kill -9 of a leader (median of 5), reassignment MB/s with and without the ' +
    'throttle, produce latency and failed sends around a rolling restart, idle CPU and RSS with ' +
    '1,000 replicas.',
  async run(options: SuiteOptions): Promise<ResultRow[]> {
    return withCluster(1, (singleCluster, singleClient) =>
      withCluster(3, async (cluster, client) => {
        const ctx: Ctx = { options, cluster, client, runs: options.quick ? 1 : 3, topicSeq: 0 };
        // Fail here, clearly, when the brokers do not form a replicating cluster.
        await createReplicated(client, 'check', 1, RF, 'always');
        await client.admin().deleteTopic('check');
        const rows: ResultRow[] = [];
        rows.push(...(await producerRows(ctx, { cluster: singleCluster, client: singleClient })));
        rows.push(await consumeRow(ctx));
        rows.push(...(await latencyRows(ctx)));
        rows.push(await failoverRow(ctx));
        rows.push(...(await reassignmentRows(cluster, client, options.quick)));
        rows.push(...(await rollingRestartRows(cluster, client, options.quick)));
        rows.push(...(await idleRows(ctx)));
        return rows;
      }),
    );
  },
};
