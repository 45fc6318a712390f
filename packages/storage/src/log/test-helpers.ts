// Test helpers for the partition log (not exported from the package entry): batch builders and
// a reader that collects the whole log.
import { encodeRecordBatch, splitBatches, verifyBatchCrc } from '@streambus/protocol';
import type { PartitionLog, PartitionLogConfig } from './partition-log.js';

export const TEST_CONFIG: PartitionLogConfig = {
  segmentBytesMax: 4096,
  segmentAgeMsMax: 60 * 60 * 1000,
  indexIntervalBytes: 256,
  retentionBytesMax: -1,
  retentionMs: -1,
  durability: 'always',
  flushIntervalMs: 5,
};

/** A batch of `count` records whose values encode `tag` (so reads can be checked). */
export function makeBatch(tag: number, count = 3, timestamp = 1_000_000 + tag): Buffer {
  const records = Array.from({ length: count }, (_, i) => ({
    key: Buffer.from(`k${tag}`),
    value: Buffer.from(`value-${tag}-${i}-${'x'.repeat((tag * 7 + i) % 50)}`),
    timestamp: timestamp + i,
  }));
  return encodeRecordBatch(records, { timestamp });
}

export interface StoredBatch {
  readonly baseOffset: number;
  readonly lastOffset: number;
  /** The CRC-covered bytes (attributes onwards): identical to what was appended. */
  readonly body: string;
}

export function describeBatches(data: Buffer): StoredBatch[] {
  return splitBatches(data).map(({ position, size }) => {
    const b = data.subarray(position, position + size);
    if (!verifyBatchCrc(b, 0)) throw new Error(`served a batch that fails its CRC at ${position}`);
    const base = b.readUInt32BE(0) * 2 ** 32 + b.readUInt32BE(4);
    return {
      baseOffset: base,
      lastOffset: base + b.readInt32BE(23),
      body: b.subarray(21).toString('hex'),
    };
  });
}

/** Every batch from logStartOffset to the end, read in pieces of `maxBytes`. */
export async function readAll(log: PartitionLog, maxBytes = 1000): Promise<StoredBatch[]> {
  const out: StoredBatch[] = [];
  let offset = log.logStartOffset;
  for (let guard = 0; guard < 100_000; guard++) {
    const r = await log.read(offset, maxBytes);
    if (r.data.length === 0) break;
    out.push(...describeBatches(r.data));
    offset = r.nextOffset;
  }
  return out;
}
