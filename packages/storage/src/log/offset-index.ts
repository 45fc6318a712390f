// OffsetIndex: the sparse offset index of one log segment (`<baseOffset>.index`). One entry per
// `indexIntervalBytes` of batches maps an offset to the byte position of its batch, so a read
// seeks close to its start and scans forward from there (Kafka's `OffsetIndex`).
//
// The live index is in memory (typed arrays). The file is written whole when the segment is
// sealed (rolled) or the log closes cleanly, and trusted at open only if it is intact and matches
// the log file's size; otherwise recovery rebuilds it from the log (see log-recovery.ts).
//
// File format (big-endian):
//   entry*  : u32 relativeOffset (offset - baseOffset), u32 position            (8 bytes each)
//   footer  : u32 entryCount, f64 logBytes, f64 nextOffset, f64 maxTimestamp,
//             u32 magic 0x53424f49 ("SBOI"), u32 crc32c(every byte before)      (36 bytes)
// `logBytes`, `nextOffset` and `maxTimestamp` summarize the segment as of the write, so a clean
// open needs no scan of the log.
import assert from 'node:assert/strict';
import { crc32c } from '@streambus/protocol';

const ENTRY_BYTES = 8;
export const OFFSET_INDEX_FOOTER_BYTES = 36;
const MAGIC = 0x53424f49;

export interface SegmentSummary {
  readonly logBytes: number;
  readonly nextOffset: number;
  readonly maxTimestamp: number;
}

export class OffsetIndex {
  private rel = new Uint32Array(64);
  private pos = new Uint32Array(64);
  count = 0;

  constructor(readonly baseOffset: number) {}

  /** Adds (offset, position); both must exceed the last entry's. */
  append(offset: number, position: number): void {
    const r = offset - this.baseOffset;
    assert.ok(r >= 0 && r <= 0xffffffff, 'relative offset out of u32 range');
    if (this.count > 0) {
      assert.ok(
        r > this.rel[this.count - 1]! && position > this.pos[this.count - 1]!,
        'index order',
      );
    }
    if (this.count === this.rel.length) {
      const rel = new Uint32Array(this.count * 2);
      rel.set(this.rel);
      this.rel = rel;
      const pos = new Uint32Array(this.count * 2);
      pos.set(this.pos);
      this.pos = pos;
    }
    this.rel[this.count] = r;
    this.pos[this.count] = position;
    this.count++;
  }

  /** Position of the last indexed batch starting at or before `offset` (0 when none). */
  lookup(offset: number): number {
    const r = offset - this.baseOffset;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rel[mid]! <= r) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.pos[lo - 1]!;
  }

  /** Last entry's position (0 when empty). */
  get lastPosition(): number {
    return this.count === 0 ? 0 : this.pos[this.count - 1]!;
  }

  clear(): void {
    this.count = 0;
  }

  encode(summary: SegmentSummary): Buffer {
    const n = this.count;
    const out = Buffer.allocUnsafe(n * ENTRY_BYTES + OFFSET_INDEX_FOOTER_BYTES);
    for (let i = 0; i < n; i++) {
      out.writeUInt32BE(this.rel[i]!, i * ENTRY_BYTES);
      out.writeUInt32BE(this.pos[i]!, i * ENTRY_BYTES + 4);
    }
    const f = n * ENTRY_BYTES;
    out.writeUInt32BE(n, f);
    out.writeDoubleBE(summary.logBytes, f + 4);
    out.writeDoubleBE(summary.nextOffset, f + 12);
    out.writeDoubleBE(summary.maxTimestamp, f + 20);
    out.writeUInt32BE(MAGIC, f + 28);
    out.writeUInt32BE(crc32c(out, 0, 0, f + 32) >>> 0, f + 32);
    return out;
  }

  /** Parses an index file; returns a reason string instead when it is damaged. */
  static decode(
    baseOffset: number,
    data: Buffer,
  ): { index: OffsetIndex; summary: SegmentSummary } | string {
    if (data.length < OFFSET_INDEX_FOOTER_BYTES) return `too short (${data.length} B)`;
    const f = data.length - OFFSET_INDEX_FOOTER_BYTES;
    if (data.readUInt32BE(f + 28) !== MAGIC) return 'bad magic';
    if (crc32c(data, 0, 0, f + 32) >>> 0 !== data.readUInt32BE(f + 32)) return 'CRC mismatch';
    const n = data.readUInt32BE(f);
    if (n * ENTRY_BYTES !== f) return 'entry count does not match the size';
    const summary: SegmentSummary = {
      logBytes: data.readDoubleBE(f + 4),
      nextOffset: data.readDoubleBE(f + 12),
      maxTimestamp: data.readDoubleBE(f + 20),
    };
    const index = new OffsetIndex(baseOffset);
    let lastRel = -1;
    let lastPos = -1;
    for (let i = 0; i < n; i++) {
      const r = data.readUInt32BE(i * ENTRY_BYTES);
      const p = data.readUInt32BE(i * ENTRY_BYTES + 4);
      if (r <= lastRel || p <= lastPos || p >= summary.logBytes) return `entry ${i} out of order`;
      if (baseOffset + r >= summary.nextOffset) return `entry ${i} beyond the segment end`;
      index.append(baseOffset + r, p);
      lastRel = r;
      lastPos = p;
    }
    return { index, summary };
  }
}
