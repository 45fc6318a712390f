// Diagnostic driver (issue 9): the cluster bench's paced latency row, alone, with the brokers'
// per-stage timings of the replicated write path (SBDIAG_REPLICA_STAGES,
// packages/broker/src/replication/stage-trace.ts). Not a bench row: its figures explain the
// row's p99, they are not results.
//
//   node benchmarks/dist/cluster-latency.js [--seconds 4] [--rate 10000] [--durability always]
//        [--acks all|1] [--partitions 1] [--runs 1] [--threadpool N]
//        [--throughput RECORDS] [--cpu-prof DIR]
//
// Prints the client's produce-to-ack quantiles per run, then every broker's stage quantiles (ms).
// `--throughput N`: instead of the paced loop, sendBatch() of N records in 10,000-record chunks
// (the bench's producer rows) and records/s. `--cpu-prof DIR`: the brokers run with --cpu-prof
// and write their profiles to DIR when the cluster stops.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { StreamBusClient } from '@streambus/client';
import { quantile } from './harness.js';
import { pacedSendLatencies } from './paced-send.js';
import { sendChunks } from './suites/broker.js';
import { createReplicated, withClusterEnv } from './suites/cluster.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rate: { type: 'string', default: '10000' },
    durability: { type: 'string', default: 'always' },
    acks: { type: 'string', default: 'all' },
    partitions: { type: 'string', default: '1' },
    runs: { type: 'string', default: '1' },
    threadpool: { type: 'string' },
    throughput: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const durability = values.durability === 'none' ? 'none' : 'always';
const acks = values.acks === '1' ? 1 : 'all';
const partitions = Number(values.partitions);
const dir = mkdtempSync(join(tmpdir(), 'sb-stages-'));
const env: Record<string, string> = { SBDIAG_REPLICA_STAGES: join(dir, 'stages') };
if (values.threadpool) env.UV_THREADPOOL_SIZE = values.threadpool;
const cpuProf = values['cpu-prof'];
const nodeFlags = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : [];

try {
  await withClusterEnv(
    3,
    env,
    async (cluster, client: StreamBusClient) => {
      for (let run = 0; run < Number(values.runs); run++) {
        const topic = `lat-${run}`;
        await createReplicated(client, topic, partitions, 3, durability);
        const producer = client.producer({ acks, lingerMs: 0 });
        try {
          await producer.send({ topic, value: 'warm-up' });
          if (values.throughput) {
            const total = Number(values.throughput);
            const value = Buffer.alloc(100, 108);
            const chunk = Array.from({ length: 10_000 }, () => ({ topic, value }));
            const start = performance.now();
            await sendChunks(producer, chunk, total);
            const secs = (performance.now() - start) / 1000;
            console.log(`run ${run}: ${Math.round(total / secs)} records/s (${total} records)`);
            continue;
          }
          const lat = await pacedSendLatencies(producer, topic, Buffer.alloc(100, 108), {
            rate,
            total: seconds * rate,
            dropMs: 500,
          });
          const f = (q: number): string => quantile(lat, q).toFixed(2);
          console.log(
            `run ${run}: n ${lat.length} p50 ${f(0.5)} p90 ${f(0.9)} p99 ${f(0.99)} max ${f(1)} ms`,
          );
        } finally {
          await producer.close();
        }
      }
      await new Promise((r) => setTimeout(r, 2500));
      // The brokers' own view of a produce: frame read to response written (cumulative buckets).
      for (let id = 1; id <= cluster.size; id++) {
        const port = cluster.broker(id).httpPort;
        const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
        const buckets = text
          .split('\n')
          .filter(
            (l) =>
              l.startsWith('streambus_request_duration_seconds_bucket{') &&
              l.includes('api="produce"'),
          )
          .map((l) => `${/le="([^"]+)"/.exec(l)?.[1]}:${l.split(' ').pop()}`);
        if (buckets.length > 0)
          console.log(`broker ${id} produce seconds <= le: ${buckets.join(' ')}`);
      }
      // A graceful stop, so --cpu-prof writes its profiles (the harness's close is a kill -9).
      if (cpuProf) for (let id = 1; id <= cluster.size; id++) await cluster.stop(id);
    },
    nodeFlags,
  );
  for (const name of readdirSync(dir).sort()) {
    const stages = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Record<
      string,
      { n: number; p50: number; p90: number; p99: number; max: number }
    >;
    console.log(`broker ${name}`);
    for (const [stage, s] of Object.entries(stages).sort()) {
      console.log(
        `  ${stage.padEnd(12)} n ${String(s.n).padStart(6)}  p50 ${s.p50.toFixed(2)}  p90 ${s.p90.toFixed(2)}  p99 ${s.p99.toFixed(2)}  max ${s.max.toFixed(2)}`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
