// TimeIndex: the sparse time index of one log segment (`<baseOffset>.timeindex`), for
// offset-for-timestamp lookups (Kafka's `TimeIndex`, simplified). An entry (T, O) is added with
// each offset-index entry: T is the largest maxTimestamp of all batches before offset O. So every
// batch before O has maxTimestamp <= T, and a search for timestamp t may start at the last entry
// with T < t and scan forward to the first batch whose maxTimestamp >= t.
//
// Like the offset index it lives in memory and is written whole at seal or clean close.
// File format (big-endian):
//   entry* : f64 maxTimestampBefore, u32 relativeOffset                          (12 bytes each)
//   footer : u32 entryCount, f64 logBytes, u32 magic 0x53425449 ("SBTI"),
//            u32 crc32c(every byte before)                                        (20 bytes)
import assert from 'node:assert/strict';
import { crc32c } from '@streambus/protocol';

const ENTRY_BYTES = 12;
export const TIME_INDEX_FOOTER_BYTES = 20;
const MAGIC = 0x53425449;

export class TimeIndex {
  private ts = new Float64Array(64);
  private rel = new Uint32Array(64);
  count = 0;

  constructor(readonly baseOffset: number) {}

  append(maxTimestampBefore: number, offset: number): void {
    const r = offset - this.baseOffset;
    assert.ok(r >= 0 && r <= 0xffffffff, 'relative offset out of u32 range');
    if (this.count > 0) assert.ok(r > this.rel[this.count - 1]!, 'time index order');
    if (this.count === this.ts.length) {
      const ts = new Float64Array(this.count * 2);
      ts.set(this.ts);
      this.ts = ts;
      const rel = new Uint32Array(this.count * 2);
      rel.set(this.rel);
      this.rel = rel;
    }
    this.ts[this.count] = maxTimestampBefore;
    this.rel[this.count] = r;
    this.count++;
  }

  /** An offset from which a forward scan finds the first batch with maxTimestamp >= t. */
  lookup(t: number): number {
    // Entries' timestamps are running maxima, so they are non-decreasing: binary search.
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ts[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? this.baseOffset : this.baseOffset + this.rel[lo - 1]!;
  }

  clear(): void {
    this.count = 0;
  }

  encode(logBytes: number): Buffer {
    const n = this.count;
    const out = Buffer.allocUnsafe(n * ENTRY_BYTES + TIME_INDEX_FOOTER_BYTES);
    for (let i = 0; i < n; i++) {
      out.writeDoubleBE(this.ts[i]!, i * ENTRY_BYTES);
      out.writeUInt32BE(this.rel[i]!, i * ENTRY_BYTES + 8);
    }
    const f = n * ENTRY_BYTES;
    out.writeUInt32BE(n, f);
    out.writeDoubleBE(logBytes, f + 4);
    out.writeUInt32BE(MAGIC, f + 12);
    out.writeUInt32BE(crc32c(out, 0, 0, f + 16) >>> 0, f + 16);
    return out;
  }

  static decode(
    baseOffset: number,
    data: Buffer,
    nextOffset: number,
  ): { index: TimeIndex; logBytes: number } | string {
    if (data.length < TIME_INDEX_FOOTER_BYTES) return `too short (${data.length} B)`;
    const f = data.length - TIME_INDEX_FOOTER_BYTES;
    if (data.readUInt32BE(f + 12) !== MAGIC) return 'bad magic';
    if (crc32c(data, 0, 0, f + 16) >>> 0 !== data.readUInt32BE(f + 16)) return 'CRC mismatch';
    const n = data.readUInt32BE(f);
    if (n * ENTRY_BYTES !== f) return 'entry count does not match the size';
    const index = new TimeIndex(baseOffset);
    let lastRel = -1;
    let lastTs = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const t = data.readDoubleBE(i * ENTRY_BYTES);
      const r = data.readUInt32BE(i * ENTRY_BYTES + 8);
      if (r <= lastRel || t < lastTs || baseOffset + r >= nextOffset || !Number.isFinite(t)) {
        return `entry ${i} out of order`;
      }
      index.append(t, baseOffset + r);
      lastRel = r;
      lastTs = t;
    }
    return { index, logBytes: data.readDoubleBE(f + 4) };
  }
}
