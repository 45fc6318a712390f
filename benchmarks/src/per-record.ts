// A driver for the broker suite's per-record send() row (issue 13), to take it apart: one broker
// child (this build's packages/broker), one topic per run, and the row's publish loop
// (Producer.send() per record, `--window` promises outstanding, await the oldest when full) with
// the client library given by `--client` (default: this build's), so two client builds can be
// compared against the same broker build. Per run it prints one JSON line: records/s, the client
// process's CPU per record (process.cpuUsage over the loop: the loop and the SDK), the broker's
// CPU per record (/proc/<pid>/stat, 10 ms ticks), and the request shape from the broker's
// /metrics (PRODUCE requests during the loop, records per request, requests per window).
//
//   node benchmarks/dist/per-record.js [--durability none|always] [--acks 1|all] [--window N]
//     [--records N] [--runs N] [--partitions N] [--linger MS] [--client PATH/index.js]
//     [--clients A.js,B.js (alternate them run by run)] [--mode batch (sendBatch() of 10,000-record
//     chunks, 8 outstanding: the suite's reference)] [--paced RATE --seconds S (the latency rows'
//     paced loop instead: p50/p99 of send() to acknowledgement, first 0.5 s dropped)]
//     [--node-flag F (repeatable: node flags for the broker, e.g. --heap-growing-percent=0 for
//     V8's own heap growth instead of the broker's, v8-heap.ts)]
//
// Run it under `node --cpu-prof` to profile the client side of the loop.
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Producer, ProducerOptions, StreamBusClient } from '@streambus/client';
import { procCpuMs } from './broker-cpu.js';
import { median, quantile } from './harness.js';
import { pacedSendLatencies } from './paced-send.js';
import { type ChildHandle, REPO_ROOT, recordsStored, spawnBroker } from './suites/broker.js';

export interface PerRecordArgs {
  durability: 'none' | 'always';
  acks: 1 | 'all';
  window: number;
  records: number;
  runs: number;
  partitions: number;
  lingerMs: number | undefined;
  clients: string[];
  /** 'send': the window loop; 'batch': sendBatch() of 10,000-record chunks, 8 outstanding. */
  mode: 'send' | 'batch';
  /** With --paced RATE: Producer.send() at RATE records/s for --seconds instead (latency). */
  pacedRate: number;
  seconds: number;
  /** --node-flag F (repeatable): node flags for the broker child (e.g. --heap-growing-percent=0). */
  nodeFlags: string[];
}

export function parseArgs(argv: readonly string[]): PerRecordArgs {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, dflt: number): number => {
    const v = get(name);
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected an integer, got ${v}`);
    return n;
  };
  const durability = get('durability') ?? 'always';
  if (durability !== 'none' && durability !== 'always') throw new Error('--durability none|always');
  const acks = get('acks') ?? 'all';
  if (acks !== '1' && acks !== 'all') throw new Error('--acks 1|all');
  const own = join(REPO_ROOT, 'packages', 'client', 'dist', 'index.js');
  const list = get('clients') ?? get('client') ?? own;
  return {
    durability,
    acks: acks === '1' ? 1 : 'all',
    window: num('window', 1000),
    records: num('records', 1_000_000),
    runs: num('runs', 3),
    partitions: num('partitions', 4),
    lingerMs: get('linger') === undefined ? undefined : num('linger', 0),
    clients: list.split(',').map((p) => resolve(p)),
    mode: get('mode') === 'batch' ? 'batch' : 'send',
    pacedRate: num('paced', 0),
    seconds: num('seconds', 4),
    nodeFlags: argv.flatMap((v, i) => (argv[i - 1] === '--node-flag' ? [v] : [])),
  };
}

async function metric(broker: ChildHandle, name: string, label: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(label)) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return n;
}

export type ClientCtor = new (options: { bootstrap: string[] }) => StreamBusClient;

/** One run (a fresh topic, deleted after): the window loop, sendBatch() or the paced loop. */
export async function perRecordRun(
  Client: ClientCtor,
  broker: ChildHandle,
  a: PerRecordArgs,
  topic: string,
): Promise<Record<string, number>> {
  const client = new Client({ bootstrap: [`127.0.0.1:${broker.port}`] });
  try {
    await client.admin().createTopic({
      name: topic,
      partitions: a.partitions,
      configs: { durability: a.durability },
    });
    const values = Array.from({ length: 1000 }, (_, i) =>
      Buffer.from(`value ${i} `.padEnd(100, '.')),
    );
    const options: ProducerOptions =
      a.lingerMs === undefined ? { acks: a.acks } : { acks: a.acks, lingerMs: a.lingerMs };
    const producer = client.producer(options);
    await producer.send({ topic, value: 'warm-up' });
    if (a.pacedRate > 0) return await pacedRun(producer, broker, a, topic, client);
    const total = a.records;
    const requestsBefore = await metric(broker, 'streambus_requests_total', 'api="produce"');
    const secondsBefore = await metric(
      broker,
      'streambus_request_duration_seconds_sum',
      'api="produce"',
    );
    const brokerMs = procCpuMs(broker.pid);
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    if (a.mode === 'batch') {
      const chunk = Array.from({ length: 10_000 }, (_, i) => ({ topic, value: values[i % 1000]! }));
      const outstanding: Promise<unknown>[] = [];
      for (let sent = 0; sent < total; sent += chunk.length) {
        outstanding.push(producer.sendBatch(chunk));
        if (outstanding.length >= 8) await outstanding.shift();
      }
      await Promise.all(outstanding);
    } else {
      const window: Array<Promise<unknown>> = new Array(a.window);
      let head = 0;
      let size = 0;
      for (let i = 0; i < total; i++) {
        if (size === a.window) {
          await window[head];
          head = (head + 1) % a.window;
          size--;
        }
        window[(head + size) % a.window] = producer.send({ topic, value: values[i % 1000]! });
        size++;
      }
      for (; size > 0; size--, head = (head + 1) % a.window) await window[head];
    }
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    const used = process.cpuUsage(cpu);
    const brokerUsed = procCpuMs(broker.pid) - brokerMs;
    const requests =
      (await metric(broker, 'streambus_requests_total', 'api="produce"')) - requestsBefore;
    const brokerSeconds =
      (await metric(broker, 'streambus_request_duration_seconds_sum', 'api="produce"')) -
      secondsBefore;
    await producer.close();
    const stored = await recordsStored(client, topic);
    if (stored !== total + 1) throw new Error(`broker stored ${stored} of ${total + 1}`);
    await client.admin().deleteTopic(topic);
    return {
      recordsPerSec: Math.round(total / secs),
      clientCpuUsPerRecord: Number(((used.user + used.system) / total).toFixed(3)),
      clientSystemCpuUsPerRecord: Number((used.system / total).toFixed(3)),
      brokerCpuUsPerRecord: Number(((brokerUsed * 1000) / total).toFixed(3)),
      produceRequests: requests,
      recordsPerRequest: Number((total / requests).toFixed(1)),
      requestsPerWindow: Number(((requests * a.window) / total).toFixed(2)),
      // The broker's mean time from a PRODUCE frame read to its response written (the fsync
      // wait included), against the loop's time per window: how much of a round is the broker's.
      brokerMsPerRequest: Number(((brokerSeconds * 1000) / requests).toFixed(3)),
      msPerWindow: Number(((secs * 1000 * a.window) / total).toFixed(3)),
    };
  } finally {
    await client.close();
  }
}

/** The paced latency loop of the broker suite's latency rows (paced-send.ts), first 0.5 s dropped. */
async function pacedRun(
  producer: Producer,
  broker: ChildHandle,
  a: PerRecordArgs,
  topic: string,
  client: StreamBusClient,
): Promise<Record<string, number>> {
  const total = Math.round(a.seconds * a.pacedRate);
  const requestsBefore = await metric(broker, 'streambus_requests_total', 'api="produce"');
  const cpu = process.cpuUsage();
  const latencies = await pacedSendLatencies(producer, topic, Buffer.alloc(100, 'l'), {
    rate: a.pacedRate,
    total,
    dropMs: 500,
  });
  const used = process.cpuUsage(cpu);
  const requests =
    (await metric(broker, 'streambus_requests_total', 'api="produce"')) - requestsBefore;
  await producer.close();
  await client.admin().deleteTopic(topic);
  const ms = (q: number): number => Number(quantile(latencies, q).toFixed(3));
  return {
    p50Ms: ms(0.5),
    p99Ms: ms(0.99),
    p999Ms: ms(0.999),
    maxMs: ms(1),
    clientCpuUsPerRecord: Number(((used.user + used.system) / total).toFixed(3)),
    produceRequests: requests,
    recordsPerRequest: Number((total / requests).toFixed(1)),
  };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const ctors: ClientCtor[] = [];
  for (const path of a.clients) {
    const mod = (await import(pathToFileURL(path).href)) as { StreamBusClient: ClientCtor };
    ctors.push(mod.StreamBusClient);
  }
  const dir = await fsp.mkdtemp(join(tmpdir(), 'sb-per-record-'));
  const broker = await spawnBroker(dir, a.nodeFlags);
  const byClient: Array<Array<Record<string, number>>> = a.clients.map(() => []);
  try {
    let seq = 0;
    for (let r = 0; r < a.runs; r++) {
      for (let c = 0; c < ctors.length; c++) {
        const out = await perRecordRun(ctors[c]!, broker, a, `per-record-${++seq}`);
        byClient[c]!.push(out);
        console.log(
          JSON.stringify({
            run: r + 1,
            client: a.clients[c],
            durability: a.durability,
            acks: a.acks,
            window: a.window,
            partitions: a.partitions,
            lingerMs: a.lingerMs ?? 'default',
            mode: a.mode,
            ...out,
          }),
        );
      }
    }
  } finally {
    await broker.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  }
  for (let c = 0; c < ctors.length; c++) {
    const rs = byClient[c]!;
    const summary: Record<string, unknown> = { summary: a.clients[c] };
    for (const k of Object.keys(rs[0] ?? {})) summary[k] = median(rs.map((x) => x[k]!));
    console.log(JSON.stringify(summary));
  }
}

// Run as a script only (the test imports the functions).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
