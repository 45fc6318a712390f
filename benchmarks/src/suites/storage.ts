// Suite `storage`: the partition log and the LSM store of @streambus/storage on the real disk
// (a temp directory under os.tmpdir(), removed afterwards), in process.
//
// Measures:
//   append <policy>   records/s appending 100-record batches of 100 B records (RecordBatch v2,
//                     uncompressed, ~11 KiB each; 16,000 per run, 4,000 distinct buffers appended
//                     4 times; quick: 1,000) with 32 appends in flight (many producers),
//                     under each durability policy. Reference, alternating in the same run: a
//                     plain node:fs append (one awaited write per batch) of the same bytes with
//                     the same fsync cadence: 'always' fsyncs as often as the log's group commit
//                     did in its previous run, 'interval' every flushIntervalMs, 'none' never.
//   read sequential   records/s reading the whole log from offset 0 with 1 MiB reads. Reference:
//                     node:fs reads of the same segment files in 1 MiB chunks.
//   lsm put / get     operations/s over 1,000,000 keys (100 B values, random order, WAL not
//                     fsynced per write, 1000 operations in flight); reference: a JS Map.
//   lsm memory        the process's heap + external MiB (after a full GC) while the open store
//                     holds every key, next to the store's own memtable and block-cache bytes.
// Leaves out: sockets, replication, compression, other processes' I/O. Read first: the three
// "append" ratios (target >= 0.8), then "read sequential".
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeRecordBatch } from '@streambus/protocol';
import {
  type DurabilityPolicy,
  LsmStore,
  NodeFileSystem,
  PartitionLog,
  type PartitionLogConfig,
} from '@streambus/storage';
import { medianOfRuns, type ResultRow, row, type Suite, type SuiteOptions } from '../harness.js';

const RECORDS_PER_BATCH = 100;
const RECORD_VALUE_BYTES = 100;
const INFLIGHT_APPENDS = 32;
const FLUSH_INTERVAL_MS = 50;
const READ_BYTES = 1024 * 1024;

function logConfig(durability: DurabilityPolicy): PartitionLogConfig {
  return {
    segmentBytesMax: 256 * 1024 * 1024,
    segmentAgeMsMax: 24 * 3600 * 1000,
    indexIntervalBytes: 4096,
    retentionBytesMax: -1,
    retentionMs: -1,
    durability,
    flushIntervalMs: FLUSH_INTERVAL_MS,
  };
}

function makeBatches(count: number): Buffer[] {
  const out: Buffer[] = [];
  let x = 7;
  for (let b = 0; b < count; b++) {
    const records = [];
    for (let i = 0; i < RECORDS_PER_BATCH; i++) {
      const v = Buffer.alloc(RECORD_VALUE_BYTES);
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      v.write(`event ${x} batch ${b} record ${i} `.padEnd(RECORD_VALUE_BYTES, '.'));
      records.push({ value: v, timestamp: 1_700_000_000_000 + b });
    }
    out.push(encodeRecordBatch(records, { timestamp: 1_700_000_000_000 + b }));
  }
  return out;
}

async function freshDir(tag: string): Promise<string> {
  return fsp.mkdtemp(join(tmpdir(), `streambus-bench-${tag}-`));
}

/** Appends every batch through a PartitionLog; returns records/s and the fsyncs it issued. */
async function appendRun(
  durability: DurabilityPolicy,
  batches: Buffer[],
  passes: number,
): Promise<{ rate: number; syncs: number; dir: string; log: PartitionLog }> {
  const dir = await freshDir('log');
  const log = await PartitionLog.open(new NodeFileSystem(), dir, logConfig(durability));
  const syncs0 = log.syncCount;
  const start = process.hrtime.bigint();
  const pending: Promise<unknown>[] = [];
  // A buffer is appended again (next pass) only long after its previous append resolved.
  for (let pass = 0; pass < passes; pass++) {
    for (const b of batches) {
      pending.push(log.append(b));
      if (pending.length >= INFLIGHT_APPENDS) await pending.shift();
    }
  }
  await Promise.all(pending);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return {
    rate: (batches.length * passes * RECORDS_PER_BATCH) / secs,
    syncs: log.syncCount - syncs0,
    dir,
    log,
  };
}

/** The reference: one awaited node:fs write per batch, fsyncing at the given cadence. */
async function referenceRun(
  batches: Buffer[],
  passes: number,
  syncEveryBatches: number,
  syncIntervalMs: number,
): Promise<number> {
  const dir = await freshDir('ref');
  try {
    const fh = await fsp.open(join(dir, 'ref.log'), 'a');
    const start = process.hrtime.bigint();
    let lastSync = performance.now();
    let n = 0;
    for (let pass = 0; pass < passes; pass++) {
      for (const b of batches) {
        await fh.write(b);
        n++;
        if (syncEveryBatches > 0 && n % syncEveryBatches === 0) await fh.sync();
        if (syncIntervalMs > 0 && performance.now() - lastSync >= syncIntervalMs) {
          await fh.sync();
          lastSync = performance.now();
        }
      }
    }
    if (syncEveryBatches > 0) await fh.sync();
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    await fh.close();
    return (batches.length * passes * RECORDS_PER_BATCH) / secs;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function appendRows(options: SuiteOptions, batches: Buffer[]): Promise<ResultRow[]> {
  const runs = options.quick ? 3 : 5;
  const passes = options.quick ? 1 : 4;
  const total = batches.length * passes;
  const rows: ResultRow[] = [];
  for (const durability of ['always', 'interval', 'none'] as const) {
    // A warm-up run gives the group-commit cadence the 'always' reference copies.
    const warm = await appendRun(durability, batches, passes);
    await warm.log.close();
    await fsp.rm(warm.dir, { recursive: true, force: true });
    let syncEvery =
      durability === 'always' ? Math.max(1, Math.round(total / Math.max(1, warm.syncs))) : 0;
    const syncCounts: number[] = [];
    const m = await medianOfRuns(
      runs,
      async () => {
        const r = await appendRun(durability, batches, passes);
        await r.log.close();
        await fsp.rm(r.dir, { recursive: true, force: true });
        syncCounts.push(r.syncs);
        if (durability === 'always') {
          syncEvery = Math.max(1, Math.round(total / Math.max(1, r.syncs)));
        }
        return r.rate;
      },
      () =>
        referenceRun(batches, passes, syncEvery, durability === 'interval' ? FLUSH_INTERVAL_MS : 0),
    );
    rows.push(
      row(
        `append ${durability}`,
        m.value,
        'records/s',
        {
          durability,
          batches: total,
          recordsPerBatch: RECORDS_PER_BATCH,
          recordValueBytes: RECORD_VALUE_BYTES,
          inflightAppends: INFLIGHT_APPENDS,
          flushIntervalMs: durability === 'interval' ? FLUSH_INTERVAL_MS : undefined,
          fsyncsPerRun: syncCounts,
          referenceFsyncEveryBatches: durability === 'always' ? syncEvery : undefined,
          runs,
          reference: 'node:fs FileHandle.write per batch, same fsync cadence',
        },
        m.reference,
      ),
    );
  }
  return rows;
}

async function readRows(options: SuiteOptions, batches: Buffer[]): Promise<ResultRow[]> {
  const runs = options.quick ? 3 : 5;
  const { dir, log } = await appendRun('none', batches, 1);
  try {
    await log.flush();
    const files = (await fsp.readdir(dir))
      .filter((f) => f.endsWith('.log'))
      .map((f) => join(dir, f));
    const records = batches.length * RECORDS_PER_BATCH;
    const m = await medianOfRuns(
      runs,
      async () => {
        const start = process.hrtime.bigint();
        let offset = 0;
        while (offset < log.logEndOffset) offset = (await log.read(offset, READ_BYTES)).nextOffset;
        return records / (Number(process.hrtime.bigint() - start) / 1e9);
      },
      async () => {
        const start = process.hrtime.bigint();
        for (const f of files) {
          const fh = await fsp.open(f, 'r');
          let pos = 0;
          for (;;) {
            const { bytesRead } = await fh.read(Buffer.allocUnsafe(READ_BYTES), 0, READ_BYTES, pos);
            if (bytesRead === 0) break;
            pos += bytesRead;
          }
          await fh.close();
        }
        return records / (Number(process.hrtime.bigint() - start) / 1e9);
      },
    );
    return [
      row(
        'read sequential',
        m.value,
        'records/s',
        {
          maxBytes: READ_BYTES,
          records,
          runs,
          pageCache: 'warm',
          reference: 'node:fs 1 MiB reads of the segment files',
        },
        m.reference,
      ),
    ];
  } finally {
    await log.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

function lsmKey(i: number): string {
  return `key-${String(i).padStart(8, '0')}`;
}

/** A deterministic permutation of 0..n-1. */
function shuffled(n: number, seed: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let x = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

async function lsmRows(options: SuiteOptions): Promise<ResultRow[]> {
  const keys = options.quick ? 100_000 : 1_000_000;
  const gets = options.quick ? 50_000 : 200_000;
  const order = shuffled(keys, 12345);
  const value = Buffer.alloc(100, 'v');
  const window = 1000;
  // Expose a GC for the memory figure (a fresh context picks up the flag).
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  gc?.();
  const mem0 = process.memoryUsage();
  const dir = await freshDir('lsm');
  const settings = {
    keys,
    valueBytes: 100,
    inflight: window,
    syncWrites: false,
    memtableBytesMax: 8 << 20,
  };
  try {
    const store = await LsmStore.open(new NodeFileSystem(), dir, {
      syncWrites: false,
      memtableBytesMax: 8 << 20,
      levelBytesBase: 64 << 20,
    });
    let start = process.hrtime.bigint();
    for (let i = 0; i < keys; i += window) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(keys, i + window); j++)
        batch.push(store.put(lsmKey(order[j]!), value));
      await Promise.all(batch);
    }
    const putRate = keys / (Number(process.hrtime.bigint() - start) / 1e9);
    await store.flush();
    await store.waitForCompactions();
    gc?.();
    const mem1 = process.memoryUsage();
    const probe = shuffled(keys, 777);
    start = process.hrtime.bigint();
    let found = 0;
    for (let i = 0; i < gets; i += window) {
      const batch: Promise<Buffer | undefined>[] = [];
      for (let j = i; j < Math.min(gets, i + window); j++) batch.push(store.get(lsmKey(probe[j]!)));
      for (const v of await Promise.all(batch)) if (v) found++;
    }
    const getRate = gets / (Number(process.hrtime.bigint() - start) / 1e9);
    if (found !== gets) throw new Error(`lsm get found ${found} of ${gets} keys`);
    const stats = store.stats();
    await store.close();
    // Same-run reference: a JS Map with the same keys and values (no durability, no order).
    const map = new Map<string, Buffer>();
    start = process.hrtime.bigint();
    for (let j = 0; j < keys; j++) map.set(lsmKey(order[j]!), value);
    const mapPut = keys / (Number(process.hrtime.bigint() - start) / 1e9);
    start = process.hrtime.bigint();
    for (let j = 0; j < gets; j++) if (map.get(lsmKey(probe[j]!))) found++;
    const mapGet = gets / (Number(process.hrtime.bigint() - start) / 1e9);
    // Absolute, not a delta: the whole process's heap + external after a full GC, with the store
    // open and holding every key (the delta is lost in the noise of earlier rows' buffers).
    const heldMiB = (mem1.heapUsed + mem1.external) / 1024 / 1024;
    return [
      row('lsm put', putRate, 'ops/s', { ...settings, reference: 'Map.set' }, mapPut),
      row('lsm get', getRate, 'ops/s', { ...settings, gets, reference: 'Map.get' }, mapGet),
      row('lsm memory', heldMiB, 'MiB', {
        ...settings,
        measuredAfterGc: gc !== undefined,
        tableBytes: stats.tableBytes,
        tablesPerLevel: stats.tablesPerLevel,
        memtableBytes: stats.memtableBytes,
        blockCacheBytes: stats.blockCacheBytes,
        rssMiB: Math.round(mem1.rss / 1024 / 1024),
        processBeforeMiB: Math.round((mem0.heapUsed + mem0.external) / 1024 / 1024),
      }),
    ];
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

export const suite: Suite = {
  name: 'storage',
  description:
    'Partition-log append records/s per durability policy vs a plain node:fs append of the same bytes ' +
    'with the same fsync cadence (read first: the append ratios, target >= 0.8); sequential read vs ' +
    'node:fs reads; LSM put/get ops/s over 1,000,000 keys vs a Map, and its memory. Real disk, temp dir.',
  async run(options: SuiteOptions): Promise<ResultRow[]> {
    const batches = makeBatches(options.quick ? 1000 : 4000);
    return [
      ...(await appendRows(options, batches)),
      ...(await readRows(options, batches)),
      ...(await lsmRows(options)),
    ];
  },
};
