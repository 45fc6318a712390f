// Suite `broker`: one StreamBus broker process (packages/broker/dist/main.js, single node, temp
// data dir) driven over loopback from this process, each row next to a same-run reference.
//
// Measures (every row's settings state durability, acks, record size, records, partitions, runs
// and requests in flight):
//   produce prebuilt acks=1 / acks=all   records/s for prebuilt PRODUCE frames (RecordBatch v2,
//                     100 B values, 1000 records per batch) sent over one connection with a fixed
//                     number in flight (frame-driver.ts): the broker's cost, no client library.
//                     Reference: reference-server.ts (a Node TCP server appending the same frames
//                     to a file; 'none' = no fsync for acks=1, 'always' = fsync group commit for
//                     acks=all/durability always), fed the same frames the same way.
//   producer acks=1 / acks=all   records/s through @streambus/client's Producer doing its real
//                     encoding (sendBatch of 10,000-record chunks, several chunks outstanding);
//                     reference: the prebuilt-frame reference of the same fsync cadence.
//   consume 100 B / 1 KiB   records/s and MB/s (value bytes) of one Consumer reading a
//                     pre-filled topic from the earliest offset to its end. Reference: a plain
//                     Node TCP server (reference-server.ts `serve`) writing the same batch bytes
//                     from a file to a socket that this process just counts.
//   producer send() per record acks=all   records/s of per-record send() with 1,000 promises
//                     outstanding, default options (adaptive batching); reference: sendBatch() of
//                     the same records, alternating runs; then its latency at a paced 10,000/s.
//   latency acks=1 / acks=all   median over runs of p50 and p99 ms from Producer.send() to its acknowledgement at a
//                     paced 10,000 records/s (lingerMs 0); reference: the same pacing into
//                     reference-server.ts's inline modes, runs alternating (paced-reference.ts).
//   validate walk <codec> / produce prebuilt <codec> acks=1   cost of walking every record before
//                     appending (none, lz4, gzip): the walk alone in this process vs the broker's
//                     rate on the same batches (validation-cost.ts says how to read the ratios).
//   broker cpu per produce request, 1 record / 1,000 records   µs of the broker process's CPU
//                     (user + system) per prebuilt acks=1 request, one in flight; no reference:
//                     compare it before and after a change (broker-cpu.ts).
//   fresh ...         the producer, latency and consume 1 KiB rows again with a fresh broker
//                     and a fresh client process per run, medians of 3, each next to its warmed
//                     row of this run as the reference (fresh-process.ts).
//   rss idle 100 partitions / rss peak   the broker child's VmRSS after creating a 100-partition
//                     topic and idling, and its VmHWM (peak resident set) after every load above.
// Leaves out: replication, compression, keys and headers, many clients. Read first: the ratios
// of the prebuilt rows (broker vs the floor), then the producer rows (client + broker).
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withThreadPoolSize } from '@streambus/broker';
import {
  type Producer,
  type ProducerOptions,
  type ProducerRecord,
  StreamBusClient,
} from '@streambus/client';
import { ApiKey, encodeRecordBatch, encodeRequest } from '@streambus/protocol';
import { brokerCpuRows, procCpuMs } from '../broker-cpu.js';
import { driveFrames, openSocket } from '../frame-driver.js';
import { freshProcessRows } from '../fresh-process.js';
import {
  median,
  medianOfRuns,
  quantile,
  type ResultRow,
  row,
  type Suite,
  type SuiteOptions,
} from '../harness.js';
import { pacedReferenceLatencies } from '../paced-reference.js';
import { pacedSendLatencies } from '../paced-send.js';
import { validationRows } from '../validation-cost.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from benchmarks/src/suites or benchmarks/dist/suites alike. */
export const REPO_ROOT = resolve(here, '..', '..', '..');
export const BROKER_MAIN = join(REPO_ROOT, 'packages', 'broker', 'dist', 'main.js');
export const REFERENCE_MAIN = join(REPO_ROOT, 'benchmarks', 'dist', 'reference-server.js');

const RECORDS_PER_BATCH = 1000;
const DISTINCT_BATCHES = 64;
const PARTITIONS = 4;
const FRAME_INFLIGHT = 16;
const CHUNK_RECORDS = 10_000;
const CHUNKS_OUTSTANDING = 8;
const LATENCY_RATE = 10_000;
const START_TIMEOUT_MS = 15_000;

export type RefMode = 'none' | 'always' | 'none-inline' | 'always-inline' | 'serve';

export interface ChildHandle {
  readonly pid: number;
  readonly port: number;
  /** The broker's HTTP port (/metrics), when the child is a broker with one. */
  readonly httpPort?: number;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A safety net: a crashed benchmark must not leave brokers behind.
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
}

/** Spawns a child and resolves once `matcher` finds its port in a stdout line. */
function spawnChild(
  args: string[],
  matcher: (line: string) => number | null,
  what: string,
  env: Readonly<Record<string, string>> = {},
): Promise<ChildHandle> {
  const child = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  track(child);
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolvePort, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${what} did not start within ${START_TIMEOUT_MS} ms: ${out} ${err}`));
    }, START_TIMEOUT_MS);
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 10_000) err += d.toString();
    });
    const onData = (d: Buffer): void => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const line of lines) {
        const port = matcher(line);
        if (port === null) continue;
        clearTimeout(timer);
        // Keep draining stdout (logs) so the child never blocks on a full pipe.
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolvePort({ pid: child.pid!, port, stop });
        return;
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before listening: ${err}`));
    });
  });
}

/**
 * The broker as a child process on an ephemeral port. `nodeFlags` go before the script (e.g.
 * `--cpu-prof --cpu-prof-dir=DIR` to profile it: the profile is written on its graceful exit).
 */
export async function spawnBroker(
  dataDir: string,
  nodeFlags: readonly string[] = [],
  /** STREAMBUS_* variables for the child (its limits, for the fuzz suite). */
  env: Readonly<Record<string, string>> = {},
): Promise<ChildHandle> {
  let httpPort: number | undefined;
  const child = await spawnChild(
    [
      ...nodeFlags,
      BROKER_MAIN,
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
    ],
    (line) => {
      if (!line.includes('"broker started"')) return null;
      const started = JSON.parse(line) as { port: number; httpPort?: number | null };
      httpPort = started.httpPort ?? undefined;
      return started.port;
    },
    'broker',
    // The pool size every launcher gives a broker (thread-pool.ts), unless the caller set one.
    withThreadPoolSize(env),
  );
  return httpPort === undefined ? child : { ...child, httpPort };
}

/**
 * Data fsyncs of `topic`'s replicas so far (`streambus_replica_fsyncs_total` on the broker's
 * /metrics, summed over its partitions), or -1 without an HTTP port.
 */
export async function topicFsyncs(broker: ChildHandle, topic: string): Promise<number> {
  if (broker.httpPort === undefined) return -1;
  const text = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('streambus_replica_fsyncs_total{') && line.includes(`topic="${topic}"`)) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return n;
}

/** reference-server.ts as a child process. */
export function spawnReference(file: string, mode: RefMode): Promise<ChildHandle> {
  return spawnChild(
    [REFERENCE_MAIN, file, mode],
    (line) => {
      if (!line.startsWith('{"port"')) return null;
      return (JSON.parse(line) as { port: number }).port;
    },
    'reference server',
  );
}

/** A /proc/<pid>/status field in KiB (VmRSS, VmHWM), or -1 where /proc is missing. */
export function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

/** `count` distinct RecordBatch v2 of `perBatch` records with `valueBytes`-byte values. */
export function makeBatches(count: number, perBatch: number, valueBytes: number): Buffer[] {
  const out: Buffer[] = [];
  let x = 11;
  for (let b = 0; b < count; b++) {
    const records = [];
    for (let i = 0; i < perBatch; i++) {
      const v = Buffer.alloc(valueBytes, 46);
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      v.write(`event ${x} b${b} r${i} `.slice(0, valueBytes));
      records.push({ value: v, timestamp: Date.now() });
    }
    out.push(encodeRecordBatch(records, { timestamp: Date.now() }));
  }
  return out;
}

/** PRODUCE request frames carrying each batch, round-robin over the topic's partitions. */
export function produceFrames(
  topic: string,
  batches: readonly Buffer[],
  partitions: number,
  acks: -1 | 1,
): Buffer[] {
  return batches.map((records, i) =>
    encodeRequest(
      ApiKey.PRODUCE,
      i + 1,
      {
        acks,
        timeoutMs: 30_000,
        topics: [{ name: topic, partitions: [{ partition: i % partitions, records }] }],
      },
      { apiVersion: 0 },
    ),
  );
}

/** Sums the latest offsets of a topic's partitions (how many records it holds from 0). */
export async function endOffsetSum(client: StreamBusClient, topic: string): Promise<number> {
  const offs = await client.admin().listOffsets(topic, 'latest');
  return offs.reduce((s, o) => s + o.offset, 0);
}

/**
 * The records a fresh topic of the single broker (a cluster of one) holds: its end offsets less
 * each partition's first Raft term's no-op (one control batch at offset 0, no record).
 */
export async function recordsStored(client: StreamBusClient, topic: string): Promise<number> {
  const offs = await client.admin().listOffsets(topic, 'latest');
  return offs.reduce((s, o) => s + o.offset - 1, 0);
}

interface Ctx {
  readonly options: SuiteOptions;
  readonly broker: ChildHandle;
  readonly client: StreamBusClient;
  readonly tmp: string;
  readonly batches100: Buffer[];
  readonly runs: number;
  topicSeq: number;
}

function durabilityFor(acks: -1 | 1): 'none' | 'always' {
  return acks === 1 ? 'none' : 'always';
}

async function freshTopic(ctx: Ctx, tag: string, acks: -1 | 1, partitions = PARTITIONS) {
  const name = `${tag}-${++ctx.topicSeq}`;
  await ctx.client
    .admin()
    .createTopic({ name, partitions, configs: { durability: durabilityFor(acks) } });
  return name;
}

/** One reference run: the same frames through reference-server.ts; returns records/s. */
async function referenceRun(
  ctx: Ctx,
  mode: 'none' | 'always',
  frames: readonly Buffer[],
  count: number,
): Promise<number> {
  const file = join(ctx.tmp, `ref-${mode}-${++ctx.topicSeq}.log`);
  const ref = await spawnReference(file, mode);
  try {
    const socket = await openSocket(ref.port);
    const r = await driveFrames(socket, frames, count, FRAME_INFLIGHT);
    socket.destroy();
    if (r.answered !== count) throw new Error(`reference answered ${r.answered}/${count}`);
    return (count * RECORDS_PER_BATCH) / r.seconds;
  } finally {
    await ref.stop();
    await fsp.rm(file, { force: true });
  }
}

function frameCount(options: SuiteOptions): number {
  return options.quick ? 300 : 3000;
}

async function prebuiltRows(ctx: Ctx): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const count = frameCount(ctx.options);
  const refFrames = produceFrames('ref', ctx.batches100, PARTITIONS, 1);
  for (const acks of [1, -1] as const) {
    const durability = durabilityFor(acks);
    const fsyncsPerRequest: number[] = [];
    const m = await medianOfRuns(
      ctx.runs,
      async () => {
        const topic = await freshTopic(ctx, `pre${acks === 1 ? '1' : 'all'}`, acks);
        const frames = produceFrames(topic, ctx.batches100, PARTITIONS, acks);
        const socket = await openSocket(ctx.broker.port);
        const fsyncsBefore = await topicFsyncs(ctx.broker, topic);
        const r = await driveFrames(socket, frames, count, FRAME_INFLIGHT);
        const fsyncs = (await topicFsyncs(ctx.broker, topic)) - fsyncsBefore;
        if (fsyncsBefore >= 0) fsyncsPerRequest.push(Math.round((fsyncs / count) * 1000) / 1000);
        socket.destroy();
        const stored = await recordsStored(ctx.client, topic);
        if (stored !== count * RECORDS_PER_BATCH) {
          throw new Error(`broker stored ${stored} of ${count * RECORDS_PER_BATCH} records`);
        }
        await ctx.client.admin().deleteTopic(topic);
        return (count * RECORDS_PER_BATCH) / r.seconds;
      },
      () => referenceRun(ctx, durability, refFrames, count),
    );
    rows.push(
      row(
        `produce prebuilt acks=${acks === 1 ? '1' : 'all'}`,
        m.value,
        'records/s',
        {
          durability,
          acks: acks === 1 ? 1 : 'all',
          recordValueBytes: 100,
          records: count * RECORDS_PER_BATCH,
          recordsPerBatch: RECORDS_PER_BATCH,
          partitions: PARTITIONS,
          runs: ctx.runs,
          inflight: FRAME_INFLIGHT,
          connections: 1,
          values: m.values.map(Math.round),
          references: m.references.map(Math.round),
          // Group commit: the reference fsyncs one file, the broker one per partition.
          fsyncsPerRequest,
          reference: `reference-server ${durability} (same frames, same in-flight bound)`,
          target: acks === 1 ? 'ratio >= 0.5' : 'ratio >= 0.6',
        },
        m.reference,
      ),
    );
  }
  return rows;
}

async function producerRows(ctx: Ctx): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const total = ctx.options.quick ? 300_000 : 3_000_000;
  const refFrames = produceFrames('ref', ctx.batches100, PARTITIONS, 1);
  const values = Array.from({ length: 1000 }, (_, i) =>
    Buffer.from(`value ${i} `.padEnd(100, '.')),
  );
  for (const acks of [1, -1] as const) {
    const durability = durabilityFor(acks);
    const m = await medianOfRuns(
      ctx.runs,
      async () => {
        const topic = await freshTopic(ctx, `prod${acks === 1 ? '1' : 'all'}`, acks);
        // The application's records exist before timing starts; the producer's encoding,
        // batching, framing and acknowledgement handling are timed.
        const chunk = Array.from({ length: CHUNK_RECORDS }, (_, i) => ({
          topic,
          value: values[i % values.length]!,
        }));
        const producer = ctx.client.producer({ acks: acks === 1 ? 1 : 'all' });
        await producer.send({ topic, value: 'warm-up' });
        const start = process.hrtime.bigint();
        await sendChunks(producer, chunk, total);
        const secs = Number(process.hrtime.bigint() - start) / 1e9;
        await closeAndCheck(ctx, producer, topic, total + 1);
        return total / secs;
      },
      () => referenceRun(ctx, durability, refFrames, Math.round(total / RECORDS_PER_BATCH)),
    );
    rows.push(
      row(
        `producer acks=${acks === 1 ? '1' : 'all'}`,
        m.value,
        'records/s',
        {
          durability,
          acks: acks === 1 ? 1 : 'all',
          recordValueBytes: 100,
          records: total,
          partitions: PARTITIONS,
          runs: ctx.runs,
          inflight: `${CHUNKS_OUTSTANDING} sendBatch chunks of ${CHUNK_RECORDS}; client default in-flight requests per connection`,
          idempotent: true,
          lingerMs: 'default',
          values: m.values.map(Math.round),
          references: m.references.map(Math.round),
          reference: `prebuilt frames to reference-server ${durability}`,
          target: acks === 1 ? '>= 2,000,000 records/s' : '>= 1,500,000 records/s',
        },
        m.reference,
      ),
    );
  }
  return rows;
}

async function consumeRows(ctx: Ctx): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const valueBytes of [100, 1024]) {
    const perBatch = valueBytes === 100 ? 1000 : 200;
    const batches = valueBytes === 100 ? ctx.batches100 : makeBatches(32, perBatch, valueBytes);
    const frames = Math.round(
      (ctx.options.quick ? 300_000 : 2_000_000) / perBatch / (valueBytes === 100 ? 1 : 5),
    );
    const records = frames * perBatch;
    // Fill once; every run reads the whole topic from the earliest offset.
    const topic = await freshTopic(ctx, `cons${valueBytes}`, 1, 1);
    const socket = await openSocket(ctx.broker.port);
    await driveFrames(socket, produceFrames(topic, batches, 1, 1), frames, FRAME_INFLIGHT);
    socket.destroy();
    const stored = await recordsStored(ctx.client, topic);
    if (stored !== records) throw new Error(`consume topic holds ${stored} of ${records}`);
    // The reference serves the same batch bytes from a file.
    const file = join(ctx.tmp, `serve-${valueBytes}.log`);
    const fh = await fsp.open(file, 'w');
    let fileBytes = 0;
    for (let i = 0; i < frames; i++) {
      const b = batches[i % batches.length]!;
      await fh.write(b);
      fileBytes += b.length;
    }
    await fh.close();
    const ref = await spawnReference(file, 'serve');
    try {
      const m = await medianOfRuns(
        ctx.runs,
        async () => {
          const consumer = ctx.client.consumer({ maxWaitMs: 100 });
          await consumer.assign({ topic, from: 'earliest' });
          const start = process.hrtime.bigint();
          let got = 0;
          while (got < records) {
            for (const b of await consumer.poll()) got += b.records.length;
          }
          const secs = Number(process.hrtime.bigint() - start) / 1e9;
          await consumer.close();
          if (got !== records) throw new Error(`consumed ${got} of ${records}`);
          return records / secs;
        },
        async () => {
          const s = await openSocket(ref.port);
          const start = process.hrtime.bigint();
          let bytes = 0;
          await new Promise<void>((res, rej) => {
            s.on('data', (d: Buffer) => {
              bytes += d.length;
            });
            s.once('end', () => res());
            s.once('error', rej);
          });
          const secs = Number(process.hrtime.bigint() - start) / 1e9;
          s.destroy();
          if (bytes !== fileBytes) throw new Error(`reference sent ${bytes} of ${fileBytes}`);
          return records / secs;
        },
      );
      const settings = {
        durability: 'none',
        acks: 'n/a (read path)',
        recordValueBytes: valueBytes,
        records,
        recordsPerBatch: perBatch,
        partitions: 1,
        runs: ctx.runs,
        inflight: '1 fetch per broker (client Consumer)',
        values: m.values.map(Math.round),
        references: m.references.map(Math.round),
        reference: 'plain Node TCP server writing the same batch bytes from a file',
      };
      const label = valueBytes === 100 ? '100 B' : '1 KiB';
      rows.push(
        row(
          `consume ${label}`,
          m.value,
          'records/s',
          { ...settings, target: valueBytes === 100 ? '>= 3,000,000 records/s' : undefined },
          m.reference,
        ),
      );
      const mb = (r: number) => (r * valueBytes) / 1e6;
      rows.push(
        row(
          `consume ${label} MB/s`,
          mb(m.value),
          'MB/s',
          {
            ...settings,
            values: m.values.map((v) => Math.round(mb(v))),
            references: m.references.map((v) => Math.round(mb(v))),
            bytes: 'record values',
            target: valueBytes === 1024 ? '>= 600 MB/s' : undefined,
          },
          mb(m.reference!),
        ),
      );
    } finally {
      await ref.stop();
      await fsp.rm(file, { force: true });
      await ctx.client.admin().deleteTopic(topic);
    }
  }
  return rows;
}

/**
 * One paced run: `Producer.send()` per record at LATENCY_RATE for `seconds` into a fresh topic,
 * returning the send-to-acknowledgement time of every record after the warm-up.
 */
async function pacedLatencies(
  ctx: Ctx,
  acks: 1 | -1,
  seconds: number,
  producerOptions: ProducerOptions = { lingerMs: 0 },
): Promise<number[]> {
  const value = Buffer.from(''.padEnd(100, 'l'));
  const topic = await freshTopic(ctx, `lat${acks === 1 ? '1' : 'all'}`, acks, 1);
  const producer = ctx.client.producer({ ...producerOptions, acks: acks === 1 ? 1 : 'all' });
  await producer.send({ topic, value: 'warm-up' });
  const latencies = await pacedSendLatencies(producer, topic, value, {
    rate: LATENCY_RATE,
    total: Math.round(seconds * LATENCY_RATE),
    dropMs: PACED_DROP_MS,
  });
  await producer.close();
  await ctx.client.admin().deleteTopic(topic);
  return latencies;
}

/**
 * The paced latency rows' same-run reference: the same pacing into reference-server.ts (`mode`
 * none answers after the write, always after a group-commit fsync), for `seconds` with the same
 * warm-up dropped (paced-reference.ts). Exported for the cluster suite.
 */
export async function referencePacedLatencies(
  tmp: string,
  mode: 'none' | 'always',
  seconds: number,
  dropMs: number,
): Promise<number[]> {
  const file = join(tmp, `ref-paced-${mode}-${process.hrtime.bigint()}.log`);
  const ref = await spawnReference(file, `${mode}-inline`);
  try {
    return await pacedReferenceLatencies(ref.port, {
      rate: LATENCY_RATE,
      total: Math.round(seconds * LATENCY_RATE),
      dropMs,
    });
  } finally {
    await ref.stop();
    await fsp.rm(file, { force: true });
  }
}

/** Per-run p50/p99 of ours and of the reference, runs alternating (ours first). */
export interface PacedQuantiles {
  readonly p50s: number[];
  readonly p99s: number[];
  readonly refP50s: number[];
  readonly refP99s: number[];
  /** Latencies of ours measured over all runs. */
  measured: number;
}

/**
 * `runs` runs of `ours` (one paced run returning its latencies), each followed by a reference run
 * of `seconds` in `mode` (referencePacedLatencies), so both see the same machine weather.
 */
export async function alternatePaced(
  tmp: string,
  runs: number,
  seconds: number,
  mode: 'none' | 'always',
  ours: () => Promise<number[]>,
): Promise<PacedQuantiles> {
  const q: PacedQuantiles = { p50s: [], p99s: [], refP50s: [], refP99s: [], measured: 0 };
  for (let i = 0; i < runs; i++) {
    const latencies = await ours();
    q.measured += latencies.length;
    q.p50s.push(quantile(latencies, 0.5));
    q.p99s.push(quantile(latencies, 0.99));
    const ref = await referencePacedLatencies(tmp, mode, seconds, PACED_DROP_MS);
    q.refP50s.push(quantile(ref, 0.5));
    q.refP99s.push(quantile(ref, 0.99));
  }
  return q;
}

/** The warm-up every paced run drops. */
export const PACED_DROP_MS = 500;

/** What the latency rows say of their reference (settings.reference). */
export const PACED_REFERENCE =
  'reference-server.ts (inline modes) fed one 180-byte frame per record at the same pacing, ' +
  'answering after its writeSync (acks=1 rows) or after a group-commit fsync (acks=all rows), ' +
  'runs alternating with ' +
  "ours; median of its runs' quantiles; ratio = ours / reference (lower is better)";

/**
 * The p50 and p99 rows of one paced load (`name` p50 / p99): per run the quantiles of our broker
 * and, alternating with it, of the reference (referencePacedLatencies); the rows report the
 * median of the runs' quantiles, ours beside the reference's.
 */
async function pacedRows(
  ctx: Ctx,
  name: string,
  acks: 1 | -1,
  producerOptions: ProducerOptions,
  inflight: string,
  target: string,
): Promise<ResultRow[]> {
  const seconds = ctx.options.quick ? 2 : 4;
  const runs = ctx.options.quick ? 1 : 5;
  const { p50s, p99s, refP50s, refP99s, measured } = await alternatePaced(
    ctx.tmp,
    runs,
    seconds,
    acks === 1 ? 'none' : 'always',
    () => pacedLatencies(ctx, acks, seconds, producerOptions),
  );
  const settings = {
    durability: durabilityFor(acks),
    acks: acks === 1 ? 1 : 'all',
    recordValueBytes: 100,
    records: Math.round(seconds * LATENCY_RATE) * runs,
    measured,
    partitions: 1,
    runs,
    secondsPerRun: seconds,
    droppedMs: PACED_DROP_MS,
    inflight,
    rateRecordsPerSec: LATENCY_RATE,
    pacing: 'records due are sent every ~1 ms timer tick',
    reference: PACED_REFERENCE,
  };
  return [
    row(
      `${name} p50`,
      median(p50s),
      'ms',
      { ...settings, values: p50s, references: refP50s },
      median(refP50s),
    ),
    row(
      `${name} p99`,
      median(p99s),
      'ms',
      { ...settings, values: p99s, references: refP99s, target },
      median(refP99s),
    ),
  ];
}

/** The lingerMs 0 rows: acks=1 on a `none` topic, acks=all on an `always` one. */
async function latencyRows(ctx: Ctx): Promise<ResultRow[]> {
  const inflight = 'client default (producer send() per record, lingerMs 0)';
  return [
    ...(await pacedRows(ctx, 'latency acks=1', 1, { lingerMs: 0 }, inflight, '<= 1 ms')),
    ...(await pacedRows(ctx, 'latency acks=all', -1, { lingerMs: 0 }, inflight, '<= 2 ms')),
  ];
}

const SEND_WINDOW = 1000;

/** CPU per record of the timed runs: this process (the client) and the broker child, in µs. */
interface CpuPerRecord {
  readonly client: number[];
  readonly broker: number[];
}

/**
 * One timed run into a fresh acks=all topic (durability always) with default producer options:
 * `load` sends `total` records of 100 B (1000 distinct values, made before timing); returns
 * records/s after checking the broker stored them all, and adds the run's CPU per record to `cpu`.
 */
async function timedDefaultProducerRun(
  ctx: Ctx,
  tag: string,
  total: number,
  cpu: CpuPerRecord,
  load: (producer: Producer, topic: string, values: readonly Buffer[]) => Promise<void>,
): Promise<number> {
  const values = Array.from({ length: 1000 }, (_, i) =>
    Buffer.from(`value ${i} `.padEnd(100, '.')),
  );
  const topic = await freshTopic(ctx, tag, -1);
  const producer = ctx.client.producer();
  await producer.send({ topic, value: 'warm-up' });
  const brokerMs = procCpuMs(ctx.broker.pid);
  const clientCpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await load(producer, topic, values);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(clientCpu);
  cpu.client.push((used.user + used.system) / total);
  if (brokerMs >= 0) cpu.broker.push(((procCpuMs(ctx.broker.pid) - brokerMs) * 1000) / total);
  await closeAndCheck(ctx, producer, topic, total + 1);
  return total / secs;
}

/** sendBatch() of `chunk` until `total` records, CHUNKS_OUTSTANDING calls outstanding. */
export async function sendChunks(
  producer: Producer,
  chunk: readonly ProducerRecord[],
  total: number,
): Promise<void> {
  const outstanding: Promise<unknown>[] = [];
  for (let sent = 0; sent < total; sent += CHUNK_RECORDS) {
    outstanding.push(producer.sendBatch(chunk));
    if (outstanding.length >= CHUNKS_OUTSTANDING) await outstanding.shift();
  }
  await Promise.all(outstanding);
}

/** Closes the producer, checks the topic holds `expected` records, deletes it. */
async function closeAndCheck(
  ctx: Ctx,
  producer: Producer,
  topic: string,
  expected: number,
): Promise<void> {
  await producer.close();
  const stored = await recordsStored(ctx.client, topic);
  if (stored !== expected) throw new Error(`broker stored ${stored} of ${expected}`);
  await ctx.client.admin().deleteTopic(topic);
}

/**
 * Per-record `send()` as a publish loop does it: a window of SEND_WINDOW outstanding promises,
 * awaiting the oldest when full; default options (adaptive batching, acks=all, idempotent).
 * Reference, alternating run by run: `sendBatch()` of the same records in 10,000-record chunks,
 * CHUNKS_OUTSTANDING outstanding. Then the same default producer's latency at a paced
 * LATENCY_RATE (the latency rows above use lingerMs 0).
 */
async function perRecordSendRows(ctx: Ctx): Promise<ResultRow[]> {
  const total = ctx.options.quick ? 200_000 : 2_000_000;
  const sendCpu: CpuPerRecord = { client: [], broker: [] };
  const batchCpu: CpuPerRecord = { client: [], broker: [] };
  const m = await medianOfRuns(
    ctx.runs,
    () =>
      timedDefaultProducerRun(ctx, 'send1', total, sendCpu, async (producer, topic, values) => {
        const window: Array<Promise<unknown>> = new Array(SEND_WINDOW);
        let head = 0;
        let size = 0;
        for (let i = 0; i < total; i++) {
          if (size === SEND_WINDOW) {
            await window[head];
            head = (head + 1) % SEND_WINDOW;
            size--;
          }
          window[(head + size) % SEND_WINDOW] = producer.send({ topic, value: values[i % 1000]! });
          size++;
        }
        for (; size > 0; size--, head = (head + 1) % SEND_WINDOW) await window[head];
      }),
    () =>
      timedDefaultProducerRun(ctx, 'sendb', total, batchCpu, async (producer, topic, values) => {
        const chunk = Array.from({ length: CHUNK_RECORDS }, (_, i) => ({
          topic,
          value: values[i % 1000]!,
        }));
        await sendChunks(producer, chunk, total);
      }),
  );
  const us = (xs: readonly number[]): number | undefined =>
    xs.length === 0 ? undefined : Number(median(xs).toFixed(3));
  const rows: ResultRow[] = [
    row(
      'producer send() per record acks=all',
      m.value,
      'records/s',
      {
        durability: 'always',
        acks: 'all',
        recordValueBytes: 100,
        records: total,
        partitions: PARTITIONS,
        runs: ctx.runs,
        inflight: `${SEND_WINDOW} send() promises outstanding (await the oldest when full)`,
        idempotent: true,
        lingerMs: 'default (adaptive batching)',
        values: m.values.map(Math.round),
        references: m.references.map(Math.round),
        reference: `sendBatch() of the same records, ${CHUNKS_OUTSTANDING} chunks of ${CHUNK_RECORDS} outstanding, default options (ratio = send / sendBatch)`,
        // CPU per record over the timed loop, medians of the runs: this process (the client:
        // the loop and the SDK) and the broker child (/proc/<pid>/stat, 10 ms ticks).
        clientCpuUsPerRecord: us(sendCpu.client),
        brokerCpuUsPerRecord: us(sendCpu.broker),
        referenceClientCpuUsPerRecord: us(batchCpu.client),
        referenceBrokerCpuUsPerRecord: us(batchCpu.broker),
        target: '>= 800,000 records/s',
      },
      m.reference,
    ),
  ];
  rows.push(
    ...(await pacedRows(
      ctx,
      'latency send() default options acks=all',
      -1,
      {},
      'client default (producer send() per record, default options: adaptive batching)',
      '<= 2 ms',
    )),
  );
  return rows;
}

export const suite: Suite = {
  name: 'broker',
  description:
    'One broker process over loopback: prebuilt PRODUCE frames vs a same-run Node reference server ' +
    'with the same fsync cadence (read first: those ratios, targets >= 0.5 acks=1 and >= 0.6 ' +
    'acks=all/always); the client Producer with real encoding; one Consumer vs a plain TCP file ' +
    'server; produce->ack latency at 10,000 records/s; the broker RSS idle (100 partitions) and peak.',
  async run(options: SuiteOptions): Promise<ResultRow[]> {
    const tmp = await fsp.mkdtemp(join(tmpdir(), 'streambus-bench-broker-'));
    const dataDir = join(tmp, 'data');
    await fsp.mkdir(dataDir);
    let broker: ChildHandle | null = null;
    let client: StreamBusClient | null = null;
    try {
      broker = await spawnBroker(dataDir);
      client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
      const ctx: Ctx = {
        options,
        broker,
        client,
        tmp,
        batches100: makeBatches(DISTINCT_BATCHES, RECORDS_PER_BATCH, 100),
        runs: options.quick ? 3 : 5,
        topicSeq: 0,
      };
      // Idle memory first, before any load has grown the heap.
      await client.admin().createTopic({
        name: 'idle-100',
        partitions: 100,
        configs: { durability: 'none' },
      });
      await new Promise((r) => setTimeout(r, options.quick ? 1000 : 3000));
      const idleKiB = procStatusKiB(broker.pid, 'VmRSS');
      const rows: ResultRow[] = [];
      rows.push(...(await prebuiltRows(ctx)));
      rows.push(
        ...(await validationRows({
          port: broker.port,
          client,
          quick: options.quick,
          runs: ctx.runs,
          batches: ctx.batches100,
          produceFrames,
        })),
      );
      rows.push(
        ...(await brokerCpuRows({
          port: broker.port,
          pid: broker.pid,
          client,
          quick: options.quick,
          runs: ctx.runs,
          makeBatches,
          produceFrames,
        })),
      );
      rows.push(...(await producerRows(ctx)));
      rows.push(...(await perRecordSendRows(ctx)));
      rows.push(...(await consumeRows(ctx)));
      rows.push(...(await latencyRows(ctx)));
      rows.push(
        ...(await freshProcessRows({
          quick: options.quick,
          tmp,
          warmed: rows,
          spawnBroker,
          makeBatches,
          produceFrames,
        })),
      );
      const peakKiB = procStatusKiB(broker.pid, 'VmHWM');
      rows.push(
        row('broker rss idle, 100 partitions', idleKiB / 1024, 'MiB', {
          durability: 'none',
          acks: 'n/a',
          recordValueBytes: 0,
          records: 0,
          partitions: 100,
          runs: 1,
          inflight: 0,
          source:
            '/proc/<pid>/status VmRSS of the broker child, after creating the topic and idling',
          target: '<= 150 MiB',
        }),
      );
      rows.push(
        row('broker rss peak under load', peakKiB / 1024, 'MiB', {
          durability: 'none and always',
          acks: '1 and all',
          recordValueBytes: '100 and 1024',
          records: 'every row above',
          partitions: `${PARTITIONS} (plus the idle 100)`,
          runs: 1,
          inflight: FRAME_INFLIGHT,
          source: '/proc/<pid>/status VmHWM (peak resident set) of the broker child after all rows',
        }),
      );
      return rows;
    } finally {
      await client?.close().catch(() => undefined);
      await broker?.stop();
      for (const c of children) c.kill('SIGKILL');
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  },
};
