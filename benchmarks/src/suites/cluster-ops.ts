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

interface Sample {
  readonly at: number;
  readonly ms: number;
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
            () => void samples.push({ at, ms: performance.now() - at }),
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

export async function rollingRestartRows(
  cluster: TestCluster,
  client: StreamBusClient,
  quick: boolean,
): Promise<ResultRow[]> {
  const topic = 'ops-rolling';
  await client
    .admin()
    .createTopic({ name: topic, partitions: 3, configs: { durability: 'always' } });
  const steadyMs = quick ? 2000 : 5000;
  let phase: 'before' | 'during' | 'after' | 'done' = 'before';
  const bounds: Record<string, number> = {};
  const load = pacedUntil(client, topic, () => phase === 'done');
  await new Promise((r) => setTimeout(r, steadyMs));
  bounds.during = performance.now();
  phase = 'during';
  for (const id of [1, 2, 3]) {
    const code = await cluster.stop(id, 30_000);
    if (code !== 0) throw new Error(`rolling restart: broker ${id} exited ${code}`);
    await cluster.restart(id);
    await cluster.waitReady();
  }
  bounds.after = performance.now();
  phase = 'after';
  await new Promise((r) => setTimeout(r, steadyMs));
  phase = 'done';
  const { samples, failed, sent } = await load;
  await client.admin().deleteTopic(topic);
  const of = (p: string) =>
    samples
      .filter((s) =>
        p === 'before'
          ? s.at < bounds.during!
          : p === 'during'
            ? s.at >= bounds.during! && s.at < bounds.after!
            : s.at >= bounds.after!,
      )
      .map((s) => s.ms);
  const settings = {
    brokers: 3,
    replicationFactor: 3,
    durability: 'always',
    acks: 'all',
    recordValueBytes: 100,
    records: sent,
    partitions: 3,
    runs: 1,
    rateRecordsPerSec: RATE,
    inflight: 'client default (producer send() per record, lingerMs 0)',
    restart: 'each broker in turn: SIGTERM (controlled shutdown), start again, cluster ready',
    reference: 'none',
  };
  const rows: ResultRow[] = [];
  for (const p of ['before', 'during', 'after']) {
    const l = of(p);
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
    row('cluster rolling restart failed sends', failed, 'sends', { ...settings, target: '0' }),
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
