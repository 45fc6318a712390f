// Broker-suite rows measured as a user runs StreamBus (issue 13): every run starts a fresh
// broker process and a fresh client process (fresh-client.ts), nothing warmed up, medians of 3.
// They stand beside the warmed rows of the same run (the long-lived benchmark process and
// broker), whose value is each row's reference, so the ratio is fresh / warmed.
//
//   fresh producer acks=all          sendBatch records/s, 100 B, durability always (warmed:
//                                    `producer acks=all`)
//   fresh latency acks=all / acks=1  p50 and p99 of per-record send() at a paced 10,000
//                                    records/s, lingerMs 0, 5 s with the first second dropped;
//                                    durability always / none (warmed: `latency ...`)
//   fresh consume 1 KiB MB/s         one Consumer of 1 KiB records from the earliest offset, on a
//                                    broker restarted over the filled data dir (warmed:
//                                    `consume 1 KiB MB/s`)
//   fresh broker start-up cpu        CPU time (ms, user + system, /proc/<pid>/stat) of a broker
//                                    process from spawn to its "broker started" line, on an
//                                    empty data dir, median of 5 (reference: a bare `node`
//                                    process read the same way once it printed a line, the
//                                    runtime's own floor). A restart's cost to the other brokers
//                                    on shared cores (issue 12) and the wait of `npm start`.
//   fresh broker start-up wall       the same starts' wall time from spawn to the line.
// Each broker gets its own data dir (the consume one is filled once, then the broker restarted
// for each run). Process start-up and connection set-up are outside the timed part; the JIT,
// first-fetch sizing and the GC of the first seconds are inside it.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamBusClient } from '@streambus/client';
import { driveFrames, openSocket } from './frame-driver.js';
import type { FreshJob, FreshResult } from './fresh-client.js';
import { median, quantile, type ResultRow, row } from './harness.js';
// Types only: the suite passes its own functions in (no import cycle at run time).
import type { makeBatches, produceFrames, spawnBroker } from './suites/broker.js';

export interface FreshBenchContext {
  readonly quick: boolean;
  readonly tmp: string;
  /** Rows measured so far in this run: the warmed counterparts are looked up by name. */
  readonly warmed: readonly ResultRow[];
  readonly spawnBroker: typeof spawnBroker;
  readonly makeBatches: typeof makeBatches;
  readonly produceFrames: typeof produceFrames;
  /** Extra node flags for the client children (e.g. --cpu-prof), from the environment. */
  readonly clientNodeFlags?: readonly string[];
}

/** The built child script, from benchmarks/src (tests) or benchmarks/dist alike. */
const CLIENT_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'fresh-client.js');
const RUNS = 3;
const CHILD_TIMEOUT_MS = 120_000;
const RATE = 10_000;

const clients = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Runs one fresh client process and returns the JSON line it prints. */
export function runFreshClient(job: FreshJob, nodeFlags: readonly string[] = []) {
  return new Promise<FreshResult>((resolve, reject) => {
    const child: ChildProcess = spawn(
      process.execPath,
      [...nodeFlags, CLIENT_MAIN, JSON.stringify(job)],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    clients.add(child);
    child.once('exit', () => clients.delete(child));
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // A crashed benchmark must not leave client processes behind.
      process.once('exit', () => {
        for (const c of clients) c.kill('SIGKILL');
      });
    }
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.stdout!.on('data', (d: Buffer) => {
      if (out.length < 16 * 1024 * 1024) out += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 10_000) err += d.toString();
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`fresh client (${job.kind}) exited with ${code ?? signal}: ${err}`));
        return;
      }
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as FreshResult);
      } catch (e) {
        reject(
          new Error(`fresh client printed no result: ${out.slice(0, 200)} ${err}`, { cause: e }),
        );
      }
    });
  });
}

/** A fresh broker on its own data dir with one topic, for one run; stopped afterwards. */
async function withFreshBroker<T>(
  ctx: FreshBenchContext,
  tag: string,
  topic: { name: string; partitions: number; durability: 'none' | 'always' } | null,
  dataDir: string,
  body: (port: number) => Promise<T>,
): Promise<T> {
  const broker = await ctx.spawnBroker(dataDir);
  try {
    if (topic !== null) {
      const admin = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
      try {
        await admin.admin().createTopic({
          name: topic.name,
          partitions: topic.partitions,
          configs: { durability: topic.durability },
        });
      } finally {
        await admin.close();
      }
    }
    return await body(broker.port);
  } catch (err) {
    throw new Error(`fresh ${tag}: ${(err as Error).message}`, { cause: err });
  } finally {
    await broker.stop();
  }
}

function warmedValue(ctx: FreshBenchContext, name: string): number | undefined {
  return ctx.warmed.find((r) => r.name === name)?.value;
}

async function freshProducerRow(ctx: FreshBenchContext): Promise<ResultRow> {
  const records = ctx.quick ? 300_000 : 3_000_000;
  const values: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = join(ctx.tmp, `fresh-producer-${i}`);
    const r = await withFreshBroker(
      ctx,
      'producer',
      { name: 'fresh', partitions: 4, durability: 'always' },
      dir,
      (port) =>
        runFreshClient(
          {
            kind: 'sendBatch',
            port,
            topic: 'fresh',
            acks: 'all',
            records,
            valueBytes: 100,
            chunkRecords: 10_000,
            chunksOutstanding: 8,
          },
          ctx.clientNodeFlags,
        ),
    );
    await fsp.rm(dir, { recursive: true, force: true });
    if (r.kind !== 'sendBatch') throw new Error(`unexpected result ${r.kind}`);
    values.push(r.recordsPerSec);
  }
  return row(
    'fresh producer acks=all',
    median(values),
    'records/s',
    {
      durability: 'always',
      acks: 'all',
      recordValueBytes: 100,
      records,
      partitions: 4,
      runs: RUNS,
      inflight: '8 sendBatch chunks of 10,000',
      processes: 'fresh broker and fresh client process per run, no warm-up',
      values: values.map(Math.round),
      reference: 'producer acks=all (warmed, this run)',
    },
    warmedValue(ctx, 'producer acks=all'),
  );
}

async function freshLatencyRows(ctx: FreshBenchContext): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const seconds = ctx.quick ? 2 : 5;
  const dropMs = 1000;
  for (const acks of ['all', 1] as const) {
    const durability = acks === 'all' ? 'always' : 'none';
    const p50s: number[] = [];
    const p99s: number[] = [];
    let measured = 0;
    for (let i = 0; i < RUNS; i++) {
      const dir = join(ctx.tmp, `fresh-latency-${acks}-${i}`);
      const r = await withFreshBroker(
        ctx,
        `latency acks=${acks}`,
        { name: 'fresh', partitions: 1, durability },
        dir,
        (port) =>
          runFreshClient(
            {
              kind: 'paced',
              port,
              topic: 'fresh',
              acks,
              rate: RATE,
              seconds,
              dropMs,
              valueBytes: 100,
            },
            ctx.clientNodeFlags,
          ),
      );
      await fsp.rm(dir, { recursive: true, force: true });
      if (r.kind !== 'paced') throw new Error(`unexpected result ${r.kind}`);
      measured += r.latenciesMs.length;
      p50s.push(quantile(r.latenciesMs, 0.5));
      p99s.push(quantile(r.latenciesMs, 0.99));
    }
    const settings = {
      durability,
      acks,
      recordValueBytes: 100,
      records: seconds * RATE * RUNS,
      measured,
      partitions: 1,
      runs: RUNS,
      secondsPerRun: seconds,
      droppedMs: dropMs,
      rateRecordsPerSec: RATE,
      inflight: 'client default (producer send() per record, lingerMs 0)',
      processes: 'fresh broker and fresh client process per run, no warm-up',
    };
    const name = `latency acks=${acks}`;
    rows.push(
      row(
        `fresh ${name} p50`,
        median(p50s),
        'ms',
        { ...settings, values: p50s, reference: `${name} p50 (warmed, this run)` },
        warmedValue(ctx, `${name} p50`),
      ),
    );
    rows.push(
      row(
        `fresh ${name} p99`,
        median(p99s),
        'ms',
        { ...settings, values: p99s, reference: `${name} p99 (warmed, this run)` },
        warmedValue(ctx, `${name} p99`),
      ),
    );
  }
  return rows;
}

async function freshConsumeRow(ctx: FreshBenchContext): Promise<ResultRow> {
  const perBatch = 200;
  const frames = ctx.quick ? 300 : 2000;
  const records = frames * perBatch;
  const dir = join(ctx.tmp, 'fresh-consume');
  // Fill once through a broker that is then stopped; every run starts a new one over the data.
  await withFreshBroker(
    ctx,
    'consume fill',
    { name: 'fresh', partitions: 1, durability: 'none' },
    dir,
    async (port) => {
      const socket = await openSocket(port);
      const batches = ctx.makeBatches(32, perBatch, 1024);
      await driveFrames(socket, ctx.produceFrames('fresh', batches, 1, 1), frames, 16);
      socket.destroy();
    },
  );
  const values: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const r = await withFreshBroker(ctx, 'consume', null, dir, (port) =>
        runFreshClient({ kind: 'consume', port, topic: 'fresh', records }, ctx.clientNodeFlags),
      );
      if (r.kind !== 'consume') throw new Error(`unexpected result ${r.kind}`);
      values.push(r.valueBytes / r.seconds / 1e6);
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
  return row(
    'fresh consume 1 KiB MB/s',
    median(values),
    'MB/s',
    {
      durability: 'none',
      acks: 'n/a (read path)',
      recordValueBytes: 1024,
      records,
      recordsPerBatch: perBatch,
      partitions: 1,
      runs: RUNS,
      inflight: '1 fetch per broker (client Consumer)',
      bytes: 'record values',
      processes: 'broker restarted over the filled data dir and a fresh client process per run',
      values: values.map(Math.round),
      reference: 'consume 1 KiB MB/s (warmed, this run)',
    },
    warmedValue(ctx, 'consume 1 KiB MB/s'),
  );
}

const STARTS = 5;

/** CPU time (ms) a live process used so far: utime + stime of /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 (state) on.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux this runs on
  return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond;
}

/** A bare node process: its CPU time once it printed its first line (the runtime's floor). */
function bareNodeCpuMs(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['-e', "console.log('up'); setInterval(() => {}, 1000)"],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.once('error', reject);
    child.stdout!.once('data', () => {
      try {
        resolve(processCpuMs(child.pid!));
      } catch (e) {
        reject(e);
      } finally {
        clearTimeout(timer);
        child.kill('SIGKILL');
      }
    });
  });
}

export async function freshStartupRows(ctx: FreshBenchContext): Promise<ResultRow[]> {
  if (!existsSync('/proc/self/stat')) {
    console.log('  fresh broker start-up rows skipped: they read /proc/<pid>/stat (Linux only)');
    return [];
  }
  const cpu: number[] = [];
  const wall: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const dir = await fsp.mkdtemp(join(ctx.tmp, 'fresh-start-'));
    try {
      const t0 = performance.now();
      const broker = await ctx.spawnBroker(dir);
      wall.push(performance.now() - t0);
      try {
        cpu.push(processCpuMs(broker.pid));
      } finally {
        await broker.stop();
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
    bare.push(await bareNodeCpuMs());
  }
  const settings = {
    durability: 'n/a (start-up)',
    acks: 'n/a',
    dataDir: 'empty',
    runs: STARTS,
    processes: 'a fresh broker process per run (benchmarks spawnBroker: dist/main.js)',
  };
  return [
    row(
      'fresh broker start-up cpu',
      median(cpu),
      'ms',
      {
        ...settings,
        values: cpu,
        reference: 'a bare node process, CPU once it printed a line (same run)',
        references: bare,
      },
      median(bare),
    ),
    row('fresh broker start-up wall', median(wall), 'ms', {
      ...settings,
      values: wall.map(Math.round),
      reference: 'none',
    }),
  ];
}

export async function freshProcessRows(ctx: FreshBenchContext): Promise<ResultRow[]> {
  return [
    ...(await freshStartupRows(ctx)),
    await freshProducerRow(ctx),
    ...(await freshLatencyRows(ctx)),
    await freshConsumeRow(ctx),
  ];
}
