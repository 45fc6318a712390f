// Suite `protocol`: the RecordBatch v2 codec and CRC-32C of @streambus/protocol, in process.
//
// Measures: batch encode and decode in records/s for 100 B and 1 KiB values (uncompressed and
// under each codec this runtime can write), the broker's header check (validateBatch: size,
// magic, CRC, counts) in GB/s, and CRC-32C in GB/s for both implementations. Every row has a
// reference measured in the same run, alternating with it:
//   encode   -> Buffer.concat of the same record values (gathering the bytes, no framing)
//   decode   -> Buffer.copy of the same batch bytes, counted as the batch's records
//   validate and CRC-32C -> Buffer.copy of the same bytes
// Leaves out: sockets, disks, allocation pressure from other work. Read first: "crc32c 64KiB"
// and "decode 1KiB none" (the broker never decodes, but consumers do).
import {
  Compression,
  type CompressionCodec,
  compressionName,
  crc32c,
  crc32cImplementation,
  crc32cPortable,
  decodeRecordBatch,
  encodeRecordBatch,
  type RecordInput,
  validateBatch,
  zstdCanCompress,
} from '@streambus/protocol';
import { medianOfRuns, type ResultRow, row, type Suite, type SuiteOptions } from '../harness.js';

/** Runs `op` until `minMs` elapsed; returns units per second (op returns the units it did). */
function rate(minMs: number, op: () => number): number {
  let units = 0;
  const start = process.hrtime.bigint();
  const budgetNs = BigInt(Math.round(minMs * 1e6));
  let elapsed = 0n;
  do {
    units += op();
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budgetNs);
  return units / (Number(elapsed) / 1e9);
}

/** Deterministic, moderately compressible values (log-like text with varying numbers). */
function makeRecords(count: number, valueBytes: number): RecordInput[] {
  const records: RecordInput[] = [];
  let x = 42;
  for (let i = 0; i < count; i++) {
    const v = Buffer.alloc(valueBytes);
    let p = 0;
    while (p < valueBytes) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      p += v.write(`user=${x % 10000} action=view item=${(x >>> 8) % 997} `, p);
    }
    records.push({ key: Buffer.from(`key-${i % 64}`), value: v, timestamp: 1700000000000 + i });
  }
  return records;
}

function bytesOf(n: number): string {
  return n >= 1024 * 1024 ? `${n / 1024 / 1024}MiB` : n >= 1024 ? `${n / 1024}KiB` : `${n}B`;
}

async function codecRows(
  runs: number,
  minMs: number,
  valueBytes: number,
  count: number,
  codec: CompressionCodec,
): Promise<ResultRow[]> {
  const records = makeRecords(count, valueBytes);
  const values = records.map((r) => r.value as Buffer);
  const batch = encodeRecordBatch(records, { compression: codec });
  const settings = {
    valueBytes,
    recordsPerBatch: count,
    codec: compressionName(codec),
    batchBytes: batch.length,
    minMsPerRun: minMs,
    runs,
    node: process.versions.node,
  };
  const label = `${bytesOf(valueBytes)} ${compressionName(codec)}`;
  const enc = await medianOfRuns(
    runs,
    () =>
      rate(minMs, () => {
        encodeRecordBatch(records, { compression: codec });
        return count;
      }),
    () =>
      rate(minMs, () => {
        Buffer.concat(values);
        return count;
      }),
  );
  const copy = Buffer.allocUnsafe(batch.length);
  const dec = await medianOfRuns(
    runs,
    () => rate(minMs, () => decodeRecordBatch(batch).records.length),
    () =>
      rate(minMs, () => {
        batch.copy(copy);
        return count;
      }),
  );
  return [
    row(
      `encode ${label}`,
      enc.value,
      'records/s',
      { ...settings, reference: 'Buffer.concat of the values' },
      enc.reference,
    ),
    row(
      `decode ${label}`,
      dec.value,
      'records/s',
      { ...settings, reference: 'Buffer.copy of the batch' },
      dec.reference,
    ),
  ];
}

async function run({ quick }: SuiteOptions): Promise<ResultRow[]> {
  const runs = quick ? 3 : 7;
  const minMs = quick ? 40 : 250;
  const rows: ResultRow[] = [];

  const codecs: CompressionCodec[] = quick
    ? [Compression.NONE, Compression.LZ4]
    : [
        Compression.NONE,
        Compression.GZIP,
        Compression.SNAPPY,
        Compression.LZ4,
        ...(zstdCanCompress ? [Compression.ZSTD as CompressionCodec] : []),
      ];
  for (const [valueBytes, count] of [
    [100, 1000],
    [1024, 100],
  ] as const) {
    for (const codec of codecs)
      rows.push(...(await codecRows(runs, minMs, valueBytes, count, codec)));
  }

  // The broker's per-batch check on produce: validateBatch over a ~100 KiB batch.
  const batch = encodeRecordBatch(makeRecords(100, 1024));
  const copy = Buffer.allocUnsafe(batch.length);
  const val = await medianOfRuns(
    runs,
    () =>
      rate(minMs, () => {
        validateBatch(batch);
        return batch.length;
      }) / 1e9,
    () =>
      rate(minMs, () => {
        batch.copy(copy);
        return batch.length;
      }) / 1e9,
  );
  rows.push(
    row(
      'validateBatch 100KiB',
      val.value,
      'GB/s',
      {
        batchBytes: batch.length,
        crc32c: crc32cImplementation,
        reference: 'Buffer.copy of the batch',
        runs,
      },
      val.reference,
    ),
  );

  for (const size of quick ? [1024, 65536] : [100, 1024, 65536, 1 << 20]) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 131 + (i >> 7)) & 0xff;
    const out = Buffer.allocUnsafe(size);
    const reference = () =>
      rate(minMs, () => {
        data.copy(out);
        return size;
      }) / 1e9;
    const settings = {
      bytes: size,
      reference: 'Buffer.copy of the same bytes',
      runs,
      minMsPerRun: minMs,
    };
    const dispatched = await medianOfRuns(
      runs,
      () =>
        rate(minMs, () => {
          crc32c(data);
          return size;
        }) / 1e9,
      reference,
    );
    rows.push(
      row(
        `crc32c ${bytesOf(size)}`,
        dispatched.value,
        'GB/s',
        {
          ...settings,
          implementation: size >= 256 ? crc32cImplementation : 'javascript',
        },
        dispatched.reference,
      ),
    );
    const portable = await medianOfRuns(
      runs,
      () =>
        rate(minMs, () => {
          crc32cPortable(data);
          return size;
        }) / 1e9,
      reference,
    );
    rows.push(
      row(
        `crc32c-js ${bytesOf(size)}`,
        portable.value,
        'GB/s',
        {
          ...settings,
          implementation: 'javascript slicing-by-8',
        },
        portable.reference,
      ),
    );
  }
  return rows;
}

export const suite: Suite = {
  name: 'protocol',
  description:
    'RecordBatch v2 encode/decode (records/s, 100 B and 1 KiB values, per codec), validateBatch and ' +
    'CRC-32C (GB/s), each against a same-run Buffer.concat/Buffer.copy reference. Read first: ' +
    '"crc32c 64KiB" and "decode 1KiB none". In process; no sockets or disks.',
  run,
};
