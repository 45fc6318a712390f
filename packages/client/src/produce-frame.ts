// The PRODUCE request frame, written around the record batches instead of through msgpackr and
// encodeFrame (which copy every batch twice: into msgpackr's buffer, then into the frame). The
// frame is returned as a list of chunks, to be written corked: small headers, and the batch
// Buffers themselves. The bytes are the wire format of @streambus/protocol (frame.ts: 4-byte
// length, apiKey u16, apiVersion u16, correlationId u32, flags u16, then the msgpack body) with
// the body the msgpack map the ProduceRequest schema describes:
//   { acks: int, timeoutMs: int, topics: [ { name: str, partitions: [ { partition: int,
//     records: bin } ] } ] }
// encoded with msgpack's smallest forms (fixmap, fixint/int8..int32, fixstr/str8/str16,
// fixarray/array16/array32, bin8/bin16/bin32). msgpackr writes map16 headers for objects where
// this writes fixmap; both are msgpack and decode alike, which produce-frame.test.ts checks with
// decodeRequest. Pure: no I/O.
import assert from 'node:assert/strict';
import { ApiKey, FRAME_HEADER_BYTES } from '@streambus/protocol';

export interface ProduceTopicChunks {
  readonly name: string;
  readonly partitions: ReadonlyArray<{ readonly partition: number; readonly records: Buffer }>;
}

/** A growable scratch writer for the small msgpack pieces between batches. */
class Writer {
  buf = Buffer.allocUnsafe(256);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  int(v: number): void {
    assert.ok(Number.isInteger(v) && v >= -0x80000000 && v <= 0xffffffff, `int ${v}`);
    this.ensure(5);
    const b = this.buf;
    if (v >= 0) {
      if (v < 0x80) b[this.pos++] = v;
      else if (v < 0x100) {
        b[this.pos++] = 0xcc;
        b[this.pos++] = v;
      } else if (v < 0x10000) {
        b[this.pos++] = 0xcd;
        b.writeUInt16BE(v, this.pos);
        this.pos += 2;
      } else {
        b[this.pos++] = 0xce;
        b.writeUInt32BE(v, this.pos);
        this.pos += 4;
      }
    } else if (v >= -32) {
      b[this.pos++] = v & 0xff;
    } else if (v >= -0x80) {
      b[this.pos++] = 0xd0;
      b.writeInt8(v, this.pos);
      this.pos += 1;
    } else if (v >= -0x8000) {
      b[this.pos++] = 0xd1;
      b.writeInt16BE(v, this.pos);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xd2;
      b.writeInt32BE(v, this.pos);
      this.pos += 4;
    }
  }

  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n + 3);
    const b = this.buf;
    if (n < 32) b[this.pos++] = 0xa0 | n;
    else if (n < 0x100) {
      b[this.pos++] = 0xd9;
      b[this.pos++] = n;
    } else {
      assert.ok(n < 0x10000, 'string too long for a produce request');
      b[this.pos++] = 0xda;
      b.writeUInt16BE(n, this.pos);
      this.pos += 2;
    }
    this.pos += b.write(s, this.pos, n, 'utf8');
  }

  array(n: number): void {
    this.ensure(5);
    const b = this.buf;
    if (n < 16) b[this.pos++] = 0x90 | n;
    else if (n < 0x10000) {
      b[this.pos++] = 0xdc;
      b.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xdd;
      b.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }

  binHeader(n: number): void {
    this.ensure(5);
    const b = this.buf;
    if (n < 0x100) {
      b[this.pos++] = 0xc4;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = 0xc5;
      b.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xc6;
      b.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }
}

// fixmap headers and the fixstr keys of the schema, written as they are.
const MAP2 = 0x82;
const MAP3 = 0x83;

/**
 * The chunks of one PRODUCE request frame (their concatenation is the frame). The record batch
 * Buffers are among the chunks, uncopied: they must not change until the chunks are written.
 */
export function encodeProduceChunks(
  correlationId: number,
  apiVersion: number,
  acks: -1 | 0 | 1,
  timeoutMs: number,
  topics: readonly ProduceTopicChunks[],
  flags = 0,
): Buffer[] {
  const w = new Writer();
  w.pos = FRAME_HEADER_BYTES;
  w.byte(MAP3);
  w.str('acks');
  w.int(acks);
  w.str('timeoutMs');
  w.int(timeoutMs);
  w.str('topics');
  w.array(topics.length);
  // Pieces: [start, end) ranges of the scratch buffer, each followed by one batch.
  const cuts: number[] = [];
  const batches: Buffer[] = [];
  let bodyBytes = 0;
  for (const t of topics) {
    w.byte(MAP2);
    w.str('name');
    w.str(t.name);
    w.str('partitions');
    w.array(t.partitions.length);
    for (const p of t.partitions) {
      w.byte(MAP2);
      w.str('partition');
      w.int(p.partition);
      w.str('records');
      w.binHeader(p.records.length);
      cuts.push(w.pos);
      batches.push(p.records);
      bodyBytes += p.records.length;
    }
  }
  const scratch = w.buf;
  const end = w.pos;
  bodyBytes += end - FRAME_HEADER_BYTES;
  scratch.writeUInt32BE(FRAME_HEADER_BYTES - 4 + bodyBytes, 0);
  scratch.writeUInt16BE(ApiKey.PRODUCE, 4);
  scratch.writeUInt16BE(apiVersion, 6);
  scratch.writeUInt32BE(correlationId, 8);
  scratch.writeUInt16BE(flags, 12);
  const chunks: Buffer[] = [];
  let from = 0;
  for (let i = 0; i < batches.length; i++) {
    chunks.push(scratch.subarray(from, cuts[i]!));
    chunks.push(batches[i]!);
    from = cuts[i]!;
  }
  if (from < end) chunks.push(scratch.subarray(from, end));
  return chunks;
}
