// The LSM's write-ahead log (`NNNNNN.wal`): one record per atomic write batch, appended before the
// batch reaches the memtable, replayed at open. A WAL is deleted once its memtable is in a table.
//
// Record format (big-endian):
//   u32 payloadLength, u32 crc32c(the 4 length bytes), u32 crc32c(payload), payload
//   payload = f64 firstSeq, u32 count, { u8 kind, u32 keyLength, key, u32 valueLength, value }*
// Entry i of a batch has seq firstSeq + i.
//
// Replay rules: a record cut short by the end of the file (header or payload incomplete) is a torn
// tail from a crash and ends the log quietly (it was never acknowledged as durable). A complete
// record whose CRC fails, or a header whose length CRC fails, is corruption: replay stops with a
// CORRUPT_DATA error naming the file, because silently dropping it could lose acknowledged data.
import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';
import { EntryKind } from './memtable.js';

export const WAL_HEADER_BYTES = 12;

export interface BatchOp {
  readonly kind: EntryKind;
  /** latin1 key string. */
  readonly key: string;
  readonly value: Buffer | null;
}

/** Encodes one batch as a complete WAL record (header + payload). */
export function encodeWalRecord(firstSeq: number, ops: readonly BatchOp[]): Buffer {
  let size = WAL_HEADER_BYTES + 12;
  for (const op of ops) size += 9 + op.key.length + (op.value?.length ?? 0);
  const b = Buffer.allocUnsafe(size);
  let p = WAL_HEADER_BYTES;
  b.writeDoubleBE(firstSeq, p);
  b.writeUInt32BE(ops.length, p + 8);
  p += 12;
  for (const op of ops) {
    b[p] = op.kind;
    b.writeUInt32BE(op.key.length, p + 1);
    p += 5;
    p += b.write(op.key, p, 'latin1');
    const v = op.value;
    b.writeUInt32BE(v?.length ?? 0, p);
    p += 4;
    if (v) p += v.copy(b, p);
  }
  const payloadLength = size - WAL_HEADER_BYTES;
  b.writeUInt32BE(payloadLength, 0);
  b.writeUInt32BE(crc32c(b, 0, 0, 4) >>> 0, 4);
  b.writeUInt32BE(crc32c(b, 0, WAL_HEADER_BYTES, size) >>> 0, 8);
  return b;
}

export interface WalBatch {
  readonly firstSeq: number;
  readonly ops: BatchOp[];
}

export interface WalReplay {
  readonly batches: WalBatch[];
  /** Bytes of valid records; anything after is a torn tail. */
  readonly validBytes: number;
  readonly tornTailBytes: number;
}

function corruptWal(path: string, at: number, what: string): StreamBusError {
  return new StreamBusError(
    ErrorCode.CORRUPT_DATA,
    `corrupt write-ahead log ${path} at byte ${at}: ${what}`,
  );
}

/** Parses a whole WAL file. Pure: throws CORRUPT_DATA (naming `path`) on corruption. */
export function replayWal(path: string, data: Buffer): WalReplay {
  const batches: WalBatch[] = [];
  let p = 0;
  while (p < data.length) {
    if (data.length - p < WAL_HEADER_BYTES) break;
    const len = data.readUInt32BE(p);
    if (crc32c(data, 0, p, p + 4) >>> 0 !== data.readUInt32BE(p + 4)) {
      // An all-zero header past the last record is preallocated/zero-filled space, not a record.
      if (data.subarray(p, p + WAL_HEADER_BYTES).every((x) => x === 0)) break;
      throw corruptWal(path, p, 'record header fails its CRC');
    }
    const end = p + WAL_HEADER_BYTES + len;
    if (end > data.length) break;
    if (crc32c(data, 0, p + WAL_HEADER_BYTES, end) >>> 0 !== data.readUInt32BE(p + 8)) {
      throw corruptWal(path, p, 'record fails its CRC');
    }
    batches.push(decodePayload(path, p, data.subarray(p + WAL_HEADER_BYTES, end)));
    p = end;
  }
  return { batches, validBytes: p, tornTailBytes: data.length - p };
}

function decodePayload(path: string, at: number, b: Buffer): WalBatch {
  const bad = () => corruptWal(path, at, 'malformed record payload');
  if (b.length < 12) throw bad();
  const firstSeq = b.readDoubleBE(0);
  const count = b.readUInt32BE(8);
  const ops: BatchOp[] = [];
  let p = 12;
  for (let i = 0; i < count; i++) {
    if (p + 5 > b.length) throw bad();
    const kind = b[p]!;
    const kl = b.readUInt32BE(p + 1);
    p += 5;
    if (p + kl + 4 > b.length) throw bad();
    const key = b.toString('latin1', p, p + kl);
    p += kl;
    const vl = b.readUInt32BE(p);
    p += 4;
    if (p + vl > b.length) throw bad();
    if (kind === EntryKind.PUT) {
      ops.push({ kind, key, value: Buffer.from(b.subarray(p, p + vl)) });
    } else if (kind === EntryKind.DELETE) {
      ops.push({ kind, key, value: null });
    } else {
      throw bad();
    }
    p += vl;
  }
  if (p !== b.length || !Number.isSafeInteger(firstSeq)) throw bad();
  return { firstSeq, ops };
}
