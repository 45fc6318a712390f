// Incremental RecordBatch v2 encoder for the producer's hot path: records are encoded straight
// into one growing buffer as they are sent, so closing a batch costs a header write and one
// CRC-32C pass (plus compression of the records section when a codec is set). The format is the
// one documented in @streambus/protocol's record-batch.ts (Kafka's DefaultRecordBatch): a
// 61-byte header, then per record
//   length varint | attributes int8 (0) | timestampDelta varlong | offsetDelta varint |
//   keyLength varint (-1 = null) | key | valueLength varint | value |
//   headerCount varint | { keyLength varint | key UTF-8 | valueLength varint | value }*
// Varints are zigzag LEB128. Decoding stays in @streambus/protocol (decodeRecordBatch), and the
// unit tests check every builder output with it. Pure and synchronous: no I/O, no timers.
import assert from 'node:assert/strict';
import {
  BatchAttributes,
  BatchField,
  type CompressionCodec,
  compress,
  crc32c,
  ErrorCode,
  RECORD_BATCH_HEADER_BYTES,
  RECORD_BATCH_MAGIC,
  StreamBusError,
} from '@streambus/protocol';

/** Keys, values and header values: strings are encoded as UTF-8. */
export type Bytes = string | Uint8Array | null;

export interface HeaderInput {
  readonly key: string;
  readonly value: Bytes;
}

export interface BatchIds {
  readonly producerId: number;
  readonly producerEpoch: number;
  readonly baseSequence: number;
}

function zigzag32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

function sizeOfUvarint(u: number): number {
  if (u < 0x80) return 1;
  if (u < 0x4000) return 2;
  if (u < 0x200000) return 3;
  if (u < 0x10000000) return 4;
  if (u < 2 ** 35) return 5;
  let n = 5;
  let x = Math.floor(u / 2 ** 35);
  while (x > 0) {
    n++;
    x = Math.floor(x / 128);
  }
  return n;
}

function zigzag64(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

function writeUvarint(buf: Buffer, pos: number, u: number): number {
  if (u < 0x80) {
    buf[pos] = u;
    return pos + 1;
  }
  if (u <= 0xffffffff) {
    // 32-bit integer arithmetic (every length, delta and count fits; the loop below is for
    // timestamp deltas past 2^32).
    do {
      buf[pos++] = (u & 0x7f) | 0x80;
      u >>>= 7;
    } while (u >= 0x80);
    buf[pos++] = u;
    return pos;
  }
  while (u >= 0x80) {
    buf[pos++] = (u % 128) | 0x80;
    u = Math.floor(u / 128);
  }
  buf[pos++] = u;
  return pos;
}

function byteLen(b: Bytes): number {
  if (b === null) return -1;
  return typeof b === 'string' ? Buffer.byteLength(b, 'utf8') : b.length;
}

function sizeOfField(len: number): number {
  return len < 0 ? 1 : sizeOfUvarint(zigzag32(len)) + len;
}

function writeField(buf: Buffer, pos: number, b: Bytes, len: number): number {
  if (b === null) {
    buf[pos] = 1; // zigzag(-1)
    return pos + 1;
  }
  pos = writeUvarint(buf, pos, zigzag32(len));
  if (typeof b === 'string') buf.write(b, pos, len, 'utf8');
  else buf.set(b, pos);
  return pos + len;
}

/** A bounded pool of batch buffers, so steady-state producing allocates nothing per batch. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(
    private readonly buffersMax: number,
    private readonly initialBytes: number,
  ) {}

  acquire(minBytes: number): Buffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const b = this.free[i]!;
      if (b.length >= minBytes) {
        this.free.splice(i, 1);
        return b;
      }
    }
    return Buffer.allocUnsafe(Math.max(minBytes, this.initialBytes));
  }

  release(buf: Buffer): void {
    if (this.free.length < this.buffersMax) this.free.push(buf);
  }
}

export class BatchBuilder {
  private buf: Buffer;
  private pos = RECORD_BATCH_HEADER_BYTES;
  private count = 0;
  private baseTimestamp = 0;
  private maxTimestamp = 0;
  private built = false;

  /**
   * @param batchBytesMax a record that would take the batch past this is refused by tryAppend
   *   (unless the batch is empty: a lone record may be larger, up to recordBytesMax).
   */
  constructor(
    private readonly pool: BufferPool,
    readonly batchBytesMax: number,
    private readonly recordBytesMax: number,
  ) {
    this.buf = pool.acquire(Math.min(batchBytesMax, 64 * 1024));
  }

  get recordCount(): number {
    return this.count;
  }

  /** Encoded bytes so far (header included, before compression). */
  get sizeBytes(): number {
    return this.pos;
  }

  /**
   * Appends one record; returns false (and changes nothing) when the batch is not empty and the
   * record would take it past batchBytesMax. MESSAGE_TOO_LARGE for a record over recordBytesMax.
   */
  tryAppend(key: Bytes, value: Bytes, headers: readonly HeaderInput[] | null, timestamp: number) {
    if (this.built) assert.fail('append after build');
    if (this.count === 0) {
      this.baseTimestamp = timestamp;
      this.maxTimestamp = timestamp;
    }
    const keyLen = byteLen(key);
    const valueLen = byteLen(value);
    const tsDelta = zigzag64(timestamp - this.baseTimestamp);
    let body =
      1 +
      sizeOfUvarint(tsDelta) +
      sizeOfUvarint(zigzag32(this.count)) +
      sizeOfField(keyLen) +
      sizeOfField(valueLen);
    let headerLens: number[] | null = null;
    if (headers === null || headers.length === 0) {
      body += 1;
    } else {
      headerLens = new Array(headers.length * 2);
      body += sizeOfUvarint(zigzag32(headers.length));
      for (let i = 0; i < headers.length; i++) {
        const h = headers[i]!;
        const k = Buffer.byteLength(h.key, 'utf8');
        const v = byteLen(h.value);
        headerLens[2 * i] = k;
        headerLens[2 * i + 1] = v;
        body += sizeOfField(k) + sizeOfField(v);
      }
    }
    const total = sizeOfUvarint(zigzag32(body)) + body;
    if (total > this.recordBytesMax) {
      throw new StreamBusError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `record of ${total} bytes exceeds the maximum of ${this.recordBytesMax}`,
      );
    }
    const end = this.pos + total;
    if (this.count > 0 && end > this.batchBytesMax) return false;
    if (end > this.buf.length) this.grow(end);
    const buf = this.buf;
    let p = writeUvarint(buf, this.pos, zigzag32(body));
    buf[p++] = 0;
    p = writeUvarint(buf, p, tsDelta);
    p = writeUvarint(buf, p, zigzag32(this.count));
    p = writeField(buf, p, key, keyLen);
    p = writeField(buf, p, value, valueLen);
    if (headers === null || headerLens === null) {
      buf[p++] = 0;
    } else {
      p = writeUvarint(buf, p, zigzag32(headers.length));
      for (let i = 0; i < headers.length; i++) {
        const h = headers[i]!;
        p = writeField(buf, p, h.key, headerLens[2 * i]!);
        p = writeField(buf, p, h.value, headerLens[2 * i + 1]!);
      }
    }
    if (p !== end) assert.fail(`record size computed (${end - this.pos}) and written differ`);
    this.pos = end;
    if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    this.count++;
    return true;
  }

  /** Abandons an unbuilt batch; returns its buffer for the pool. */
  discard(): Buffer {
    assert.ok(!this.built, 'discard of a built batch');
    this.built = true;
    return this.buf;
  }

  private grow(minBytes: number): void {
    let size = this.buf.length * 2;
    while (size < minBytes) size *= 2;
    const next = this.pool.acquire(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.pool.release(this.buf);
    this.buf = next;
  }

  /**
   * Finishes the batch: compresses the records section if asked and writes the header, with
   * producer id -1, epoch -1, sequence -1 and the CRC (an idempotent producer's `stampBatch`
   * rewrites those at the batch's first send). Returns the batch bytes and the buffer to give
   * back to the pool once the batch is no longer needed (null when the batch lives in its own
   * allocation). With `checksum` false the CRC is left unwritten, for a caller that stamps the
   * batch before sending it: the CRC is a pass over the whole batch, so it is done once.
   */
  build(
    compression: CompressionCodec,
    checksum = true,
  ): { batch: Buffer; poolBuffer: Buffer | null } {
    assert.ok(!this.built && this.count > 0, 'build of an empty or built batch');
    this.built = true;
    let batch: Buffer;
    let poolBuffer: Buffer | null;
    if (compression === 0) {
      batch = this.buf.subarray(0, this.pos);
      poolBuffer = this.buf;
    } else {
      const payload = compress(compression, this.buf.subarray(RECORD_BATCH_HEADER_BYTES, this.pos));
      batch = Buffer.allocUnsafe(RECORD_BATCH_HEADER_BYTES + payload.length);
      payload.copy(batch, RECORD_BATCH_HEADER_BYTES);
      this.pool.release(this.buf);
      poolBuffer = null;
    }
    batch.writeBigInt64BE(0n, BatchField.BASE_OFFSET);
    batch.writeInt32BE(batch.length - 12, BatchField.BATCH_LENGTH);
    batch.writeInt32BE(0, BatchField.PARTITION_LEADER_EPOCH);
    batch[BatchField.MAGIC] = RECORD_BATCH_MAGIC;
    batch.writeInt16BE(compression & BatchAttributes.COMPRESSION_MASK, BatchField.ATTRIBUTES);
    batch.writeInt32BE(this.count - 1, BatchField.LAST_OFFSET_DELTA);
    batch.writeBigInt64BE(BigInt(this.baseTimestamp), BatchField.BASE_TIMESTAMP);
    batch.writeBigInt64BE(BigInt(this.maxTimestamp), BatchField.MAX_TIMESTAMP);
    batch.writeInt32BE(this.count, BatchField.RECORD_COUNT);
    if (checksum) stampBatch(batch, NO_PRODUCER);
    return { batch, poolBuffer };
  }
}

export const NO_PRODUCER: BatchIds = { producerId: -1, producerEpoch: -1, baseSequence: -1 };

/**
 * Writes the producer id, epoch and base sequence into a built batch and recomputes its CRC
 * (those fields are inside the CRC). Done once per batch, before its first send; a retry resends
 * the stamped bytes unchanged.
 */
export function stampBatch(batch: Buffer, ids: BatchIds): void {
  batch.writeBigInt64BE(BigInt(ids.producerId), BatchField.PRODUCER_ID);
  batch.writeInt16BE(ids.producerEpoch, BatchField.PRODUCER_EPOCH);
  batch.writeInt32BE(ids.baseSequence, BatchField.BASE_SEQUENCE);
  batch.writeUInt32BE(crc32c(batch, 0, BatchField.ATTRIBUTES, batch.length), BatchField.CRC);
}
