// Rows of the `cluster` suite for issue 12's operations (cluster.ts runs them on its 3 brokers):
//   cluster rolling restart p50 / p99 before, during, after   send() per record (acks=all,
//                      lingerMs 0) at a paced 10,000 records/s into a 3-partition RF 3 topic:
//                      `before` the restarts, `during` them (each broker in turn stopped with
//                      SIGTERM, restarted, the cluster ready again), `after` them; by send time.
//   cluster rolling restart failed sends   sends the application saw fail (target 0).
//   cluster reassignment MB/s, unthrottled / throttled   one filled partition moved from
//                      replicas [a, b] to [a, c] (RF 2: the 3-broker cluster has a free broker);
//                      its log bytes over the time from the request until the move completes;
//                      throttled: reassignmentBytesPerSecond = 4 MiB/s set by AlterBrokerConfig.
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { StreamBusClient } from '@streambus/client';
import type { TestCluster } from '../../../test/dist/cluster-harness.js';
import { quantile, type ResultRow, row } from '../harness.js';
import { sendChunks } from './broker.js';

const RATE = 10_000;
const THROTTLE_BYTES_PER_SECOND = 4 * 1024 * 1024;

export interface Sample {
  /** When send() was called (performance.now()). */
  readonly at: number;
  readonly ms: number;
  readonly partition: number;
}

/** Paced send() until `stop()`; each acknowledged send's start time and latency, and failures. */
async function pacedUntil(
  client: StreamBusClient,
  topic: string,
  stop: () => boolean,
): Promise<{ samples: Sample[]; failed: number; sent: number }> {
  const producer = client.producer({ acks: 'all', lingerMs: 0 });
  const value = Buffer.alloc(100, 108);
  const samples: Sample[] = [];
  const pending = new Set<Promise<void>>();
  let failed = 0;
  let sent = 0;
  try {
    await producer.send({ topic, value: 'warm-up' });
    const t0 = performance.now();
    await new Promise<void>((done) => {
      const tick = (): void => {
        const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
        while (sent < due && pending.size < 50_000) {
          const at = performance.now();
          const p = producer.send({ topic, value }).then(
            (m) => void samples.push({ at, ms: performance.now() - at, partition: m.partition }),
            () => void failed++,
          );
          pending.add(p);
          void p.finally(() => pending.delete(p));
          sent++;
        }
        if (stop()) done();
        else setTimeout(tick, 1);
      };
      tick();
    });
    await Promise.all(pending);
  } finally {
    await producer.close();
  }
  return { samples, failed, sent };
}

/** One rolling restart under paced load: every sample, and when each step happened. */
export interface RollingRestartRun {
  readonly samples: Sample[];
  readonly failed: number;
  readonly sent: number;
  /** performance.now() at the start of `during` and of `after`. */
  readonly bounds: { readonly during: number; readonly after: number };
  /** Each restart's steps (performance.now()): SIGTERM sent, exited, started, cluster ready. */
  readonly steps: Array<{
    id: number;
    term: number;
    exited: number;
    started: number;
    ready: number;
  }>;
}

/**
 * The rolling restart of the rows below: paced load into a fresh 3-partition topic, `steadyMs`
 * before, each broker in turn stopped (SIGTERM) and started again, `steadyMs` after. The rows
 * use durability `always`; the diagnostic driver (rolling-restart.ts) may pass `none` to
 * measure the hand-over itself without the disk's fsync stalls.
 */
export async function rollingRestartRun(
  cluster: TestCluster,
  client: StreamBusClient,
  steadyMs: number,
  topic = 'ops-rolling',
  durability: 'none' | 'always' = 'always',
): Promise<RollingRestartRun> {
  await client.admin().createTopic({ name: topic, partitions: 3, configs: { durability } });
  let phase: 'before' | 'during' | 'after' | 'done' = 'before';
  const load = pacedUntil(client, topic, () => phase === 'done');
  await new Promise((r) => setTimeout(r, steadyMs));
  const during = performance.now();
  phase = 'during';
  const steps: RollingRestartRun['steps'] = [];
  for (const id of [1, 2, 3]) {
    const term = performance.now();
    const code = await cluster.stop(id, 30_000);
    if (code !== 0) throw new Error(`rolling restart: broker ${id} exited ${code}`);
    const exited = performance.now();
    await cluster.restart(id);
    const started = performance.now();
    await cluster.waitReady();
    steps.push({ id, term, exited, started, ready: performance.now() });
  }
  const after = performance.now();
  phase = 'after';
  await new Promise((r) => setTimeout(r, steadyMs));
  phase = 'done';
  const { samples, failed, sent } = await load;
  await client.admin().deleteTopic(topic);
  return { samples, failed, sent, bounds: { during, after }, steps };
}

/** The latencies (ms) of the samples sent in `phase`. */
export function phaseLatencies(
  run: RollingRestartRun,
  phase: 'before' | 'during' | 'after',
): number[] {
  const { during, after } = run.bounds;
  return run.samples
    .filter((s) =>
      phase === 'before'
        ? s.at < during
        : phase === 'during'
          ? s.at >= during && s.at < after
          : s.at >= after,
    )
    .map((s) => s.ms);
}

export async function rollingRestartRows(
  cluster: TestCluster,
  client: StreamBusClient,
  quick: boolean,
): Promise<ResultRow[]> {
  const run = await rollingRestartRun(cluster, client, quick ? 2000 : 5000);
  const settings = {
    brokers: 3,
    replicationFactor: 3,
    durability: 'always',
    acks: 'all',
    recordValueBytes: 100,
    records: run.sent,
    partitions: 3,
    runs: 1,
    rateRecordsPerSec: RATE,
    inflight: 'client default (producer send() per record, lingerMs 0)',
    restart: 'each broker in turn: SIGTERM (controlled shutdown), start again, cluster ready',
    reference: 'none',
  };
  const rows: ResultRow[] = [];
  for (const p of ['before', 'during', 'after'] as const) {
    const l = phaseLatencies(run, p);
    const extra = { ...settings, phase: p, measured: l.length };
    rows.push(row(`cluster rolling restart p50 ${p}`, quantile(l, 0.5), 'ms', extra));
    rows.push(
      row(`cluster rolling restart p99 ${p}`, quantile(l, 0.99), 'ms', {
        ...extra,
        ...(p === 'during' ? { target: 'at most 2x the steady-state p99' } : {}),
      }),
    );
  }
  rows.push(
    row('cluster rolling restart failed sends', run.failed, 'sends', { ...settings, target: '0' }),
  );
  return rows;
}

/** Bytes of the segment files of `dir` (a replica's directory). */
function logBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) if (f.endsWith('.log')) n += statSync(join(dir, f)).size;
  return n;
}

async function reassignOnce(
  cluster: TestCluster,
  client: StreamBusClient,
  topic: string,
  megabytes: number,
): Promise<{ mbPerSec: number; bytes: number; seconds: number; from: number[]; to: number[] }> {
  const admin = client.admin();
  await admin.createTopic({
    name: topic,
    partitions: 1,
    replicationFactor: 2,
    configs: { durability: 'none' },
  });
  // Random bytes: the log holds what was sent even if the producer compresses.
  const records = megabytes * 1000;
  // sendChunks sends chunks of 10,000 records.
  const values = Array.from({ length: 1000 }, () => randomBytes(1000));
  const chunk = Array.from({ length: 10_000 }, (_, i) => ({ topic, value: values[i % 1000]! }));
  const producer = client.producer({ acks: 'all' });
  try {
    await sendChunks(producer, chunk, records);
  } finally {
    await producer.close();
  }
  const from = (await admin.describePartition(topic, 0)).replicas.map((r) => r.nodeId);
  const free = [1, 2, 3].find((id) => !from.includes(id))!;
  const to = [from[0]!, free];
  const t0 = performance.now();
  await admin.reassignPartition(topic, 0, to);
  for (;;) {
    const d = await admin.describePartition(topic, 0);
    if (d.reassignmentTarget === null) break;
    if (performance.now() - t0 > 300_000)
      throw new Error(`reassignment of ${topic} did not finish`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - t0) / 1000;
  // The newest topic directory on the broker that took the replica is this topic's.
  const topicId = Math.max(
    ...readdirSync(join(cluster.broker(free).dataDir, 'topics')).map(Number),
  );
  const bytes = logBytes(join(cluster.broker(free).dataDir, 'topics', String(topicId), '0'));
  await admin.deleteTopic(topic);
  return { mbPerSec: bytes / 1e6 / seconds, bytes, seconds, from, to };
}

export async function reassignmentRows(
  cluster: TestCluster,
  client: StreamBusClient,
  quick: boolean,
): Promise<ResultRow[]> {
  const megabytes = quick ? 20 : 100;
  const free = await reassignOnce(cluster, client, 'ops-move-free', megabytes);
  await client.admin().alterBrokerConfig(-1, {
    reassignmentBytesPerSecond: String(THROTTLE_BYTES_PER_SECOND),
  });
  let throttled: Awaited<ReturnType<typeof reassignOnce>>;
  try {
    throttled = await reassignOnce(cluster, client, 'ops-move-throttled', megabytes);
  } finally {
    await client.admin().alterBrokerConfig(-1, { reassignmentBytesPerSecond: null });
  }
  const settings = (r: typeof free, budget: string) => ({
    brokers: 3,
    replicationFactor: 2,
    durability: 'none',
    acks: 'all (filling)',
    recordValueBytes: 1000,
    records: megabytes * 1000,
    partitions: 1,
    runs: 1,
    inflight: 'n/a (one reassignment)',
    moved: `[${r.from}] -> [${r.to}]`,
    logBytes: r.bytes,
    seconds: Number(r.seconds.toFixed(2)),
    throttle: budget,
    measured: 'from the ReassignPartition request until describePartition shows no reassignment',
    reference: 'none',
  });
  return [
    row('cluster reassignment MB/s, unthrottled', free.mbPerSec, 'MB/s', settings(free, 'none')),
    row(
      'cluster reassignment MB/s, throttled',
      throttled.mbPerSec,
      'MB/s',
      settings(throttled, `reassignmentBytesPerSecond ${THROTTLE_BYTES_PER_SECOND} (4 MiB/s)`),
    ),
  ];
}
