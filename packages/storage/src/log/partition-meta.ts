// PartitionMeta: the partition log's checkpoint file `partition.meta`, holding the two numbers
// the segment files alone cannot give: the log-start offset (moved by retention and
// delete-records, possibly into the middle of a segment) and the recovery point (every offset
// below it is fsynced and its segments' index files are intact, so recovery need not verify it).
// Rewritten atomically (temp file, fsync, rename, fsync dir).
//
// Format (28 bytes, big-endian): u32 magic 0x5342504d ("SBPM"), u32 version 1,
// f64 logStartOffset, f64 recoveryPoint, u32 crc32c(the 24 bytes before).
import { crc32c } from '@streambus/protocol';
import type { FileSystem } from '../fs.js';
import { writeFileAtomic } from '../fs.js';

const MAGIC = 0x5342504d;
export const PARTITION_META_FILE = 'partition.meta';

export interface PartitionMeta {
  readonly logStartOffset: number;
  readonly recoveryPoint: number;
}

export function encodePartitionMeta(m: PartitionMeta): Buffer {
  const b = Buffer.allocUnsafe(28);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt32BE(1, 4);
  b.writeDoubleBE(m.logStartOffset, 8);
  b.writeDoubleBE(m.recoveryPoint, 16);
  b.writeUInt32BE(crc32c(b, 0, 0, 24) >>> 0, 24);
  return b;
}

/** The checkpoint, or a string saying why it cannot be used. */
export function decodePartitionMeta(b: Buffer): PartitionMeta | string {
  if (b.length !== 28) return `wrong size ${b.length}`;
  if (b.readUInt32BE(0) !== MAGIC || b.readUInt32BE(4) !== 1) return 'bad magic or version';
  if (crc32c(b, 0, 0, 24) >>> 0 !== b.readUInt32BE(24)) return 'CRC mismatch';
  const m = { logStartOffset: b.readDoubleBE(8), recoveryPoint: b.readDoubleBE(16) };
  if (!Number.isSafeInteger(m.logStartOffset) || !Number.isSafeInteger(m.recoveryPoint)) {
    return 'offsets out of range';
  }
  return m;
}

export function writePartitionMeta(fs: FileSystem, path: string, m: PartitionMeta): Promise<void> {
  return writeFileAtomic(fs, path, encodePartitionMeta(m));
}
