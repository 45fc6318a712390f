// Diagnostic driver (issue 9): the cluster bench's paced latency row, alone, with the brokers'
// per-stage timings of the replicated write path (SBDIAG_REPLICA_STAGES,
// packages/broker/src/replication/stage-trace.ts). Not a bench row: its figures explain the
// row's p99, they are not results.
//
//   node benchmarks/dist/cluster-latency.js [--seconds 4] [--rate 10000] [--durability always]
//        [--acks all|1] [--partitions 1] [--runs 1] [--threadpool N]
//        [--throughput RECORDS] [--cpu-prof DIR] [--no-stages] [--node-flag F] [--warmup N]
//        [--frames N [--frame-records R] [--inflight K]] [--heap-sample DIR]
//
// Prints the client's produce-to-ack quantiles per run and what the run cost (below), then every
// broker's stage quantiles (ms).
//
// Cost of a paced run (issue 9: the paced p99 on a loaded 2-core machine is CPU queueing, so the
// lever is CPU per record): user + system CPU of each broker (/proc/<pid>/stat, 10 ms ticks) and
// of this client process (process.cpuUsage) over the run, per record and per produce request
// (the leader's `streambus_requests_total{api="produce"}`: with lingerMs 0 a request carries what
// accumulated while the previous one was in flight), and per produce request on each broker:
// data fsyncs of the run's topic, Raft messages and peer frames sent and received. Counts, unlike
// latency, barely move with the machine's load: compare them before and after a change.
// `--no-stages`: the stage trace off (it times every entry; leave it off when measuring CPU).
// `--node-flag F` (repeatable): a node flag for the brokers (e.g. --perf-basic-prof for perf).
// `--frames N`: instead of the paced loop, N prebuilt PRODUCE frames (acks as --acks, one batch
// of `--frame-records` (10) records of 100 B each, no idempotence) straight to the partition's
// leader with at most `--inflight` (1) unanswered, then the same cost lines: a fixed request
// shape, so CPU per request compares across runs and machine loads (the paced loop's requests
// grow with the load: with lingerMs 0 a request carries what accumulated meanwhile).
// `--warmup N` (default 200,000; 0: none): before the runs, N records (sendBatch, acks=all)
// into a topic of their own and then 2 s of the paced loop, so the brokers' code is optimized
// as in the bench, whose latency row runs after its producer rows (fresh brokers spend the
// first seconds interpreting and compiling: more CPU per request than warm ones).
// `--throughput N`: instead of the paced loop, sendBatch() of N records in 10,000-record chunks
// (the bench's producer rows) and records/s. `--cpu-prof DIR`: the brokers run with --cpu-prof
// and write their profiles to DIR when the cluster stops.
// `--heap-sample DIR`: the brokers preload benchmarks/tools/heap-sampler.cjs, which samples
// every allocation (V8's sampling heap profiler, objects later collected included) between two
// SIGUSR2s; the driver sends them around each measured run and prints per broker the JavaScript
// heap bytes allocated per produce request and the allocation sites that took most (profiles
// stay in DIR).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { StreamBusClient } from '@streambus/client';
import type { TestCluster } from '../../test/dist/cluster-harness.js';
import { driveFrames, openSocket } from './frame-driver.js';
import { quantile } from './harness.js';
import { pacedSendLatencies } from './paced-send.js';
import { makeBatches, produceFrames, sendChunks } from './suites/broker.js';
import { cpuSeconds, createReplicated, withClusterEnv } from './suites/cluster.js';

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
    'no-stages': { type: 'boolean', default: false },
    'node-flag': { type: 'string', multiple: true },
    warmup: { type: 'string', default: '200000' },
    frames: { type: 'string' },
    'frame-records': { type: 'string', default: '10' },
    inflight: { type: 'string', default: '1' },
    'heap-sample': { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const durability = values.durability === 'none' ? 'none' : 'always';
const acks = values.acks === '1' ? 1 : 'all';
const partitions = Number(values.partitions);
const dir = mkdtempSync(join(tmpdir(), 'sb-stages-'));
const env: Record<string, string> = values['no-stages']
  ? {}
  : { SBDIAG_REPLICA_STAGES: join(dir, 'stages') };
if (values.threadpool) env.UV_THREADPOOL_SIZE = values.threadpool;
const cpuProf = values['cpu-prof'];
const heapDir = values['heap-sample'] === undefined ? undefined : resolve(values['heap-sample']);
if (heapDir !== undefined) env.HEAP_SAMPLE_DIR = heapDir;
const sampler = join(dirname(fileURLToPath(import.meta.url)), '..', 'tools', 'heap-sampler.cjs');
const nodeFlags = [
  ...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : []),
  ...(heapDir !== undefined ? ['--require', sampler] : []),
  ...(values['node-flag'] ?? []),
];

try {
  await withClusterEnv(
    3,
    env,
    async (cluster, client: StreamBusClient) => {
      const warmup = Number(values.warmup);
      if (warmup > 0) {
        await createReplicated(client, 'lat-warmup', partitions, 3, durability);
        const producer = client.producer({ acks, lingerMs: 0 });
        try {
          const value = Buffer.alloc(100, 108);
          const chunk = Array.from({ length: 10_000 }, () => ({ topic: 'lat-warmup', value }));
          await sendChunks(producer, chunk, warmup);
          await pacedSendLatencies(producer, 'lat-warmup', value, {
            rate,
            total: 2 * rate,
            dropMs: 0,
          });
        } finally {
          await producer.close();
        }
      }
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
          if (values.frames) {
            const count = Number(values.frames);
            const perBatch = Number(values['frame-records']);
            const leader = (await client.admin().describeTopic(topic)).partitions[0]!.leaderId;
            const frames = produceFrames(
              topic,
              makeBatches(50, perBatch, 100),
              1,
              acks === 'all' ? -1 : 1,
            );
            const socket = await openSocket(cluster.broker(leader).port);
            try {
              await driveFrames(socket, frames, Math.ceil(count / 5), Number(values.inflight));
              const before = await costSnapshot(cluster, topic);
              heapSignal(cluster);
              const r = await driveFrames(socket, frames, count, Number(values.inflight), {
                recordLatency: true,
              });
              heapSignal(cluster);
              const f = (q: number): string => quantile(r.latenciesMs, q).toFixed(2);
              console.log(
                `run ${run}: ${count} frames of ${perBatch} records, inflight ${values.inflight}: ${Math.round(count / r.seconds)} requests/s p50 ${f(0.5)} p99 ${f(0.99)} ms`,
              );
              const after = await costSnapshot(cluster, topic);
              printCost(before, after, count * perBatch);
              await printHeap(cluster, before, after, run);
            } finally {
              socket.destroy();
            }
            continue;
          }
          const before = await costSnapshot(cluster, topic);
          heapSignal(cluster);
          const lat = await pacedSendLatencies(producer, topic, Buffer.alloc(100, 108), {
            rate,
            total: seconds * rate,
            dropMs: 500,
          });
          const f = (q: number): string => quantile(lat, q).toFixed(2);
          console.log(
            `run ${run}: n ${lat.length} p50 ${f(0.5)} p90 ${f(0.9)} p99 ${f(0.99)} max ${f(1)} ms`,
          );
          heapSignal(cluster);
          const after = await costSnapshot(cluster, topic);
          printCost(before, after, seconds * rate);
          await printHeap(cluster, before, after, run);
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

/** One broker's counters at one moment (a paced run's cost is the difference of two). */
interface BrokerCounters {
  readonly id: number;
  readonly cpuMs: number;
  readonly leader: boolean;
  readonly produceRequests: number;
  readonly fsyncs: number;
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly framesSent: number;
  readonly framesReceived: number;
}

interface CostSnapshot {
  readonly clientCpuMs: number;
  readonly brokers: BrokerCounters[];
}

/** Sum of the samples of `name` whose labels include every one of `labels`. */
function metricSum(text: string, name: string, labels: readonly string[] = []): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!labels.every((l) => line.includes(l))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function costSnapshot(cluster: TestCluster, topic: string): Promise<CostSnapshot> {
  const brokers: BrokerCounters[] = [];
  for (let id = 1; id <= cluster.size; id++) {
    const b = cluster.broker(id);
    const pid = b.process?.pid;
    const text = await fetch(`http://127.0.0.1:${b.httpPort}/metrics`).then((r) => r.text());
    const t = `topic="${topic}"`;
    brokers.push({
      id,
      cpuMs: pid === undefined ? 0 : cpuSeconds(pid) * 1000,
      leader: metricSum(text, 'streambus_replica_role', [t, 'role="leader"']) > 0,
      produceRequests: metricSum(text, 'streambus_requests_total', ['api="produce"']),
      fsyncs: metricSum(text, 'streambus_replica_fsyncs_total', [t]),
      messagesSent: metricSum(text, 'streambus_peer_messages_sent_total'),
      messagesReceived: metricSum(text, 'streambus_peer_messages_received_total'),
      framesSent: metricSum(text, 'streambus_peer_frames_sent_total'),
      framesReceived: metricSum(text, 'streambus_peer_frames_received_total'),
    });
  }
  const u = process.cpuUsage();
  return { clientCpuMs: (u.user + u.system) / 1000, brokers };
}

/** What the run cost: CPU per record and per produce request, and counts per request. */
function printCost(a: CostSnapshot, b: CostSnapshot, records: number): void {
  const requests = b.brokers.reduce(
    (s, x, i) => s + x.produceRequests - a.brokers[i]!.produceRequests,
    0,
  );
  const perReq = (n: number): string => (requests > 0 ? (n / requests).toFixed(2) : '-');
  let brokerMs = 0;
  const parts: string[] = [];
  for (let i = 0; i < b.brokers.length; i++) {
    const x = b.brokers[i]!;
    const y = a.brokers[i]!;
    const cpu = x.cpuMs - y.cpuMs;
    brokerMs += cpu;
    parts.push(
      `  broker ${x.id}${x.leader ? ' (leader)' : ''}: cpu ${cpu.toFixed(0)} ms, ${((cpu * 1000) / Math.max(1, requests)).toFixed(0)} us/request;` +
        ` per request: fsyncs ${perReq(x.fsyncs - y.fsyncs)}, raft msgs sent ${perReq(x.messagesSent - y.messagesSent)} recv ${perReq(x.messagesReceived - y.messagesReceived)},` +
        ` frames sent ${perReq(x.framesSent - y.framesSent)} recv ${perReq(x.framesReceived - y.framesReceived)}`,
    );
  }
  const clientMs = b.clientCpuMs - a.clientCpuMs;
  const total = brokerMs + clientMs;
  console.log(
    `  cost: ${requests} produce requests (${(records / Math.max(1, requests)).toFixed(2)} records/request);` +
      ` cpu brokers ${brokerMs.toFixed(0)} ms + client ${clientMs.toFixed(0)} ms;` +
      ` per record ${((total * 1000) / records).toFixed(1)} us (brokers ${((brokerMs * 1000) / records).toFixed(1)});` +
      ` per request ${((total * 1000) / Math.max(1, requests)).toFixed(0)} us (brokers ${((brokerMs * 1000) / Math.max(1, requests)).toFixed(0)})`,
  );
  for (const p of parts) console.log(p);
}

/** `--heap-sample`: starts (first call) or stops (second) every broker's allocation sampling. */
function heapSignal(cluster: TestCluster): void {
  if (heapDir === undefined) return;
  for (let id = 1; id <= cluster.size; id++) cluster.broker(id).process?.kill('SIGUSR2');
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: HeapNode[];
}

/** `--heap-sample`: per broker, bytes allocated per produce request and the top sites. */
async function printHeap(
  cluster: TestCluster,
  a: CostSnapshot,
  b: CostSnapshot,
  run: number,
): Promise<void> {
  if (heapDir === undefined) return;
  const requests = b.brokers.reduce(
    (s, x, i) => s + x.produceRequests - a.brokers[i]!.produceRequests,
    0,
  );
  for (let id = 1; id <= cluster.size; id++) {
    const pid = cluster.broker(id).process?.pid;
    const file = join(heapDir, `heap.${pid}.${run}.heapprofile`);
    let text: string | null = null;
    for (let k = 0; k < 50 && text === null; k++) {
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (text === null) {
      console.log(`  broker ${id}: no heap profile (${file})`);
      continue;
    }
    const head = (JSON.parse(text) as { head: HeapNode }).head;
    const sites = new Map<string, number>();
    let total = 0;
    const walk = (n: HeapNode): void => {
      if (n.selfSize > 0) {
        const f = n.callFrame;
        const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
        sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
        total += n.selfSize;
      }
      for (const c of n.children ?? []) walk(c);
    };
    walk(head);
    const leader = b.brokers[id - 1]!.leader ? ' (leader)' : '';
    console.log(
      `  broker ${id}${leader}: heap allocated ${(total / 1024 / 1024).toFixed(1)} MiB, ${(total / Math.max(1, requests) / 1024).toFixed(1)} KiB/request; top sites (KiB/request):`,
    );
    for (const [key, bytes] of [...sites].sort((x, y) => y[1] - x[1]).slice(0, 12)) {
      console.log(`    ${(bytes / Math.max(1, requests) / 1024).toFixed(2).padStart(7)}  ${key}`);
    }
  }
}
