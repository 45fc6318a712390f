// Broker-suite rows for the cost of record validation on the produce path (issue 8 item 4): the
// broker walks every record of every batch (validateBatchRecords, inflating compressed ones)
// before appending. Two measurements on the same prebuilt batches (1000 records of 100 B, none,
// lz4 and gzip):
//   validate walk <codec>   records/s of the walk alone (validateBatchRecords, decompression
//                     included) in this process, a tight loop over the batches; reference: the
//                     header check alone (validateBatch: CRC-32C and header fields) on the same
//                     batches, so the ratio is walk speed over header-check speed.
//   produce prebuilt <codec> acks=1   records/s through the broker (durability none, frames as in
//                     `produce prebuilt`, walk included); reference: the walk's rate from the row
//                     above, so the ratio (broker rate / walk rate) is the share of the broker's
//                     single-threaded produce time the walk takes.
// Leaves out keys and headers (the walk skips them by length; more fields per record cost more),
// snappy and zstd.
import type { StreamBusClient } from '@streambus/client';
import {
  Compression,
  type CompressionCodec,
  compressionName,
  decodeRecordBatch,
  encodeRecordBatch,
  validateBatch,
  validateBatchRecords,
} from '@streambus/protocol';
import { driveFrames, openSocket } from './frame-driver.js';
import { median, medianOfRuns, type ResultRow, row } from './harness.js';
// Type only: the suite passes its own functions in (no import cycle at run time).
import { type produceFrames, recordsStored } from './suites/broker.js';

export interface ValidationBenchContext {
  readonly port: number;
  readonly client: StreamBusClient;
  readonly quick: boolean;
  readonly runs: number;
  /** Uncompressed prebuilt batches (1000 records of 100 B each). */
  readonly batches: readonly Buffer[];
  readonly produceFrames: typeof produceFrames;
  /** Overrides for tests: produce frames per run, and ms per walk loop. */
  readonly framesPerRun?: number;
  readonly loopMs?: number;
}

const PARTITIONS = 4;
const INFLIGHT = 16;
const CODECS: readonly CompressionCodec[] = [Compression.NONE, Compression.LZ4, Compression.GZIP];

/** The same records re-encoded with `codec`. */
function recompress(batches: readonly Buffer[], codec: CompressionCodec): Buffer[] {
  if (codec === Compression.NONE) return [...batches];
  return batches.map((b) => {
    const { header, records } = decodeRecordBatch(b);
    return encodeRecordBatch(
      records.map((r) => ({ value: r.value, timestamp: r.timestamp })),
      { compression: codec, timestamp: header.baseTimestamp },
    );
  });
}

/** Records/s of `check` over the batches, looping for about `ms` milliseconds. */
function loopRate(batches: readonly Buffer[], ms: number, check: (b: Buffer) => void): number {
  let records = 0;
  const perBatch = validateBatch(batches[0]!, 0).recordCount;
  for (let i = 0; i < batches.length; i++) check(batches[i]!); // warm-up
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < ms * 1e6) {
    for (const b of batches) check(b);
    records += perBatch * batches.length;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return records / (elapsed / 1e9);
}

export async function validationRows(ctx: ValidationBenchContext): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const loopMs = ctx.loopMs ?? (ctx.quick ? 200 : 1000);
  const frames = ctx.framesPerRun ?? (ctx.quick ? 200 : 2000);
  let seq = 0;
  for (const codec of CODECS) {
    const name = compressionName(codec);
    const batches = recompress(ctx.batches, codec);
    const recordsPerBatch = validateBatch(batches[0]!, 0).recordCount;
    const headerOnly = (b: Buffer): void => {
      validateBatch(b, 0);
    };
    const walk = (b: Buffer): void => {
      validateBatchRecords(b, 0, validateBatch(b, 0));
    };
    const w = await medianOfRuns(
      ctx.runs,
      () => loopRate(batches, loopMs, walk),
      () => loopRate(batches, loopMs, headerOnly),
    );
    const bytes = batches.reduce((s, b) => s + b.length, 0) / batches.length;
    rows.push(
      row(
        `validate walk ${name}`,
        w.value,
        'records/s',
        {
          durability: 'n/a (in-process loop)',
          acks: 'n/a',
          codec: name,
          recordValueBytes: 100,
          recordsPerBatch,
          batchBytes: Math.round(bytes),
          runs: ctx.runs,
          msPerRun: loopMs,
          inflight: 'n/a',
          values: w.values.map(Math.round),
          references: w.references.map(Math.round),
          reference: 'validateBatch alone (CRC-32C and header) on the same batches',
        },
        w.reference,
      ),
    );
    const p = await medianOfRuns(ctx.runs, async () => {
      const topic = `valid-${name}-${++seq}`;
      await ctx.client
        .admin()
        .createTopic({ name: topic, partitions: PARTITIONS, configs: { durability: 'none' } });
      const socket = await openSocket(ctx.port);
      const r = await driveFrames(
        socket,
        ctx.produceFrames(topic, batches, PARTITIONS, 1),
        frames,
        INFLIGHT,
      );
      socket.destroy();
      const stored = await recordsStored(ctx.client, topic);
      await ctx.client.admin().deleteTopic(topic);
      if (stored !== frames * recordsPerBatch) {
        throw new Error(`broker stored ${stored} of ${frames * recordsPerBatch} ${name} records`);
      }
      return (frames * recordsPerBatch) / r.seconds;
    });
    rows.push(
      row(
        `produce prebuilt ${name} acks=1`,
        p.value,
        'records/s',
        {
          durability: 'none',
          acks: 1,
          codec: name,
          recordValueBytes: 100,
          records: frames * recordsPerBatch,
          recordsPerBatch,
          partitions: PARTITIONS,
          runs: ctx.runs,
          inflight: INFLIGHT,
          connections: 1,
          values: p.values.map(Math.round),
          reference: `validate walk ${name} (this process): ratio = share of broker time in the walk`,
          walkSharePerRun: p.values.map((v) => Number((v / median(w.values)).toFixed(3))),
        },
        w.value,
      ),
    );
  }
  return rows;
}
