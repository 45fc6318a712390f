// Repair of a damaged partition log directory, run while the log is closed (the broker closes
// the partition, repairs, and opens it again). Every segment is verified batch by batch (CRC-32C,
// framing, offset contiguity); at each damaged range (log-damage.ts) one of two modes applies:
//
//   'truncate'  the log is cut at the first damage: the damaged segment is cut at the bad batch
//               and every later segment is deleted. Every offset from the damage on is lost; the
//               log ends there and hands those offsets out again.
//   'skip'      only the damaged bytes go: they are replaced by one empty "gap" batch (a valid
//               RecordBatch v2 with no records whose offset range is exactly the lost range), so
//               the next good batch keeps its offsets, offsets stay monotonic, and a consumer
//               fetching into the gap receives the gap batch and moves past it (its position comes
//               from batch headers). Damage with nothing good after it in the last segment can
//               only be cut, as in 'truncate'.
//
// A segment that changes is rewritten to `<file>.repair.tmp` (fsynced) and renamed over the old
// file, after its index files are deleted; recovery deletes leftover `.tmp` files, so a crash
// mid-repair leaves the old or the new segment, never a mix. The recovery point in
// `partition.meta` is lowered to the first changed segment, so the next open verifies what
// changed and rebuilds its indexes. `dryRun` reports the same without changing anything.
//
// Gap batch format: the 61-byte RecordBatch v2 header alone: baseOffset = first lost offset,
// lastOffsetDelta = lost count - 1 (ranges over 2^31 - 1 offsets take several), recordCount 0,
// attributes 0, producerId/epoch/baseSequence -1, both timestamps -1 (so time lookups and time
// retention ignore it), CRC-32C over attributes..end as usual.
import assert from 'node:assert/strict';
import {
  BatchField,
  crc32c,
  ErrorCode,
  RECORD_BATCH_HEADER_BYTES,
  RECORD_BATCH_MAGIC,
  StreamBusError,
} from '@streambus/protocol';
import type { FileSystem } from '../fs.js';
import { isNotFound, joinPath } from '../fs.js';
import { describeDamage, type LogDamage, lastOffsetIn } from './log-damage.js';
import { SEGMENT_LOG } from './log-recovery.js';
import { LogSegment } from './log-segment.js';
import { decodePartitionMeta, PARTITION_META_FILE, writePartitionMeta } from './partition-meta.js';

export type RepairMode = 'truncate' | 'skip';

export interface RepairOptions {
  readonly mode: RepairMode;
  /** Report what would be done; change nothing. */
  readonly dryRun?: boolean;
}

/** An inclusive range of offsets; `toOffset` null when the end is unknown (an unreadable tail). */
export interface OffsetRange {
  readonly fromOffset: number;
  readonly toOffset: number | null;
}

export interface RepairReport {
  readonly mode: RepairMode;
  readonly dryRun: boolean;
  /** Every damaged range found, in log order (in 'truncate' mode, the first only). */
  readonly damages: LogDamage[];
  /** Offsets no longer readable after the repair: cut away, or covered by a gap batch. */
  readonly lost: OffsetRange[];
  /** How many offsets `lost` covers; null when a range's end is unknown. */
  readonly offsetsLost: number | null;
  /** Bytes of log data removed (damaged ranges, cut tails, deleted segments). */
  readonly bytesRemoved: number;
  /** The log end offset before (as far as batch headers tell) and after the repair. */
  readonly logEndOffsetBefore: number;
  readonly logEndOffsetAfter: number;
  /** Segment files rewritten, cut or deleted. */
  readonly changedSegments: string[];
}

const GAP_DELTA_MAX = 0x7fffffff;
const COPY_CHUNK_BYTES = 1024 * 1024;

/** The empty batches covering offsets [from, to]. */
export function encodeGapBatches(from: number, to: number): Buffer[] {
  assert.ok(Number.isSafeInteger(from) && Number.isSafeInteger(to) && to >= from, 'gap range');
  const out: Buffer[] = [];
  for (let base = from; base <= to; base += GAP_DELTA_MAX + 1) {
    const b = Buffer.alloc(RECORD_BATCH_HEADER_BYTES);
    b.writeUInt32BE(Math.floor(base / 0x100000000), BatchField.BASE_OFFSET);
    b.writeUInt32BE(base >>> 0, BatchField.BASE_OFFSET + 4);
    b.writeInt32BE(RECORD_BATCH_HEADER_BYTES - 12, BatchField.BATCH_LENGTH);
    b[BatchField.MAGIC] = RECORD_BATCH_MAGIC;
    b.writeInt32BE(Math.min(to - base, GAP_DELTA_MAX), BatchField.LAST_OFFSET_DELTA);
    b.writeBigInt64BE(-1n, BatchField.BASE_TIMESTAMP);
    b.writeBigInt64BE(-1n, BatchField.MAX_TIMESTAMP);
    b.writeBigInt64BE(-1n, BatchField.PRODUCER_ID);
    b.writeInt16BE(-1, BatchField.PRODUCER_EPOCH);
    b.writeInt32BE(-1, BatchField.BASE_SEQUENCE);
    b.writeInt32BE(0, BatchField.RECORD_COUNT);
    b.writeUInt32BE(crc32c(b, 0, BatchField.ATTRIBUTES, b.length) >>> 0, BatchField.CRC);
    out.push(b);
  }
  return out;
}

type Piece = { kind: 'copy'; from: number; to: number } | { kind: 'gap'; from: number; to: number };

interface SegmentPlan {
  readonly seg: LogSegment;
  readonly fileBytes: number;
  pieces: Piece[];
  /** 'keep' unchanged, 'cut' truncated at cutAt, 'rewrite' from pieces, 'delete'. */
  action: 'keep' | 'cut' | 'rewrite' | 'delete';
  cutAt: number;
}

/** Verifies and repairs the closed partition log in `dir` (see the top of this file). */
export async function repairPartitionLog(
  fs: FileSystem,
  dir: string,
  options: RepairOptions,
): Promise<RepairReport> {
  if (options.mode !== 'truncate' && options.mode !== 'skip') {
    throw new StreamBusError(ErrorCode.INVALID_REQUEST, `repair mode must be truncate or skip`);
  }
  const bases = (await fs.readdir(dir))
    .map((n) => SEGMENT_LOG.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const segs: LogSegment[] = [];
  try {
    for (const base of bases) segs.push(await LogSegment.open(fs, dir, base, 4096, 0));
    return await repair(fs, dir, options, segs);
  } finally {
    for (const s of segs) await s.handle.close().catch(() => undefined);
  }
}

async function repair(
  fs: FileSystem,
  dir: string,
  options: RepairOptions,
  segs: LogSegment[],
): Promise<RepairReport> {
  const dryRun = options.dryRun === true;
  const damages: LogDamage[] = [];
  const lost: OffsetRange[] = [];
  const plans: SegmentPlan[] = [];
  let bytesRemoved = 0;
  let logEndBefore = segs[0]?.baseOffset ?? 0;
  for (const seg of segs) {
    const fileBytes = await seg.handle.size();
    const last = await lastOffsetIn(seg, 0, fileBytes);
    logEndBefore = Math.max(logEndBefore, seg.baseOffset, last === null ? 0 : last + 1);
    plans.push({ seg, fileBytes, pieces: [], action: 'keep', cutAt: 0 });
  }
  let stopped = false;
  let expected: number | null = null;
  let logEndAfter = segs[0]?.baseOffset ?? 0;
  const cutFrom = (offset: number) => {
    stopped = true;
    lost.push({ fromOffset: offset, toOffset: logEndBefore > offset ? logEndBefore - 1 : null });
    logEndAfter = offset;
  };
  for (const [i, plan] of plans.entries()) {
    const { seg, fileBytes } = plan;
    if (stopped) {
      plan.action = 'delete';
      bytesRemoved += fileBytes;
      continue;
    }
    const prev = plans[i - 1];
    if (expected !== null && seg.baseOffset !== expected && prev !== undefined) {
      // A gap (or an overlap) between segments: the previous one lost its tail.
      const damage: LogDamage = {
        segment: prev.seg.logPath,
        segmentBaseOffset: prev.seg.baseOffset,
        position: prev.fileBytes,
        bytes: 0,
        fromOffset: expected,
        toOffset: seg.baseOffset > expected ? seg.baseOffset - 1 : null,
        resumePosition: null,
        reason: `${seg.logPath}: starts at ${seg.baseOffset} but the previous segment ends at ${expected}`,
      };
      damages.push(damage);
      if (options.mode === 'truncate' || damage.toOffset === null) {
        cutFrom(expected);
        plan.action = 'delete';
        bytesRemoved += fileBytes;
        continue;
      }
      prev.pieces.push({ kind: 'gap', from: expected, to: damage.toOffset });
      if (prev.action === 'keep') prev.action = 'rewrite';
      lost.push({ fromOffset: expected, toOffset: damage.toOffset });
    }
    let pos = 0;
    let next: number = seg.baseOffset;
    for (;;) {
      const r = await seg.scan(pos, next, fileBytes, true, false);
      if (r.endPosition > pos) plan.pieces.push({ kind: 'copy', from: pos, to: r.endPosition });
      next = r.nextOffset;
      if (r.problem === null) break;
      const nextBase = segs[i + 1]?.baseOffset ?? null;
      const damage = await describeDamage(seg, r.endPosition, next, fileBytes, nextBase, r.problem);
      damages.push(damage);
      if (options.mode === 'truncate' || damage.toOffset === null) {
        plan.action = plan.action === 'rewrite' ? 'rewrite' : 'cut';
        plan.cutAt = r.endPosition;
        bytesRemoved += fileBytes - r.endPosition;
        cutFrom(next);
        break;
      }
      plan.action = 'rewrite';
      plan.pieces.push({ kind: 'gap', from: next, to: damage.toOffset });
      bytesRemoved += damage.bytes;
      lost.push({ fromOffset: next, toOffset: damage.toOffset });
      next = damage.toOffset + 1;
      if (damage.resumePosition === null) break;
      pos = damage.resumePosition;
    }
    expected = next;
    if (!stopped) logEndAfter = next;
  }
  const changed = plans.filter((p) => p.action !== 'keep');
  const report: RepairReport = {
    mode: options.mode,
    dryRun,
    damages,
    lost,
    offsetsLost: lost.some((r) => r.toOffset === null)
      ? null
      : lost.reduce((n, r) => n + (r.toOffset! - r.fromOffset + 1), 0),
    bytesRemoved,
    logEndOffsetBefore: Math.max(logEndBefore, logEndAfter),
    logEndOffsetAfter: logEndAfter,
    changedSegments: changed.map((p) => p.seg.logPath),
  };
  if (dryRun || changed.length === 0) return report;

  // Lower the recovery point first: whatever happens next, the next open verifies it all.
  const metaPath = joinPath(dir, PARTITION_META_FILE);
  let logStartOffset = 0;
  try {
    const meta = decodePartitionMeta(await fs.readFile(metaPath));
    if (typeof meta !== 'string') logStartOffset = meta.logStartOffset;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const recoveryPoint = changed[0]!.seg.baseOffset;
  await writePartitionMeta(fs, metaPath, { logStartOffset, recoveryPoint });
  for (const plan of changed) {
    const { seg } = plan;
    await seg.deleteIndexFiles();
    if (plan.action === 'delete') {
      await fs.unlink(seg.logPath);
    } else if (plan.action === 'cut') {
      await seg.handle.truncate(plan.cutAt);
      await seg.handle.sync();
    } else {
      await rewrite(fs, plan);
    }
  }
  await fs.syncDir(dir);
  return report;
}

/** Writes the plan's pieces to a temp file, fsyncs it and renames it over the segment. */
async function rewrite(fs: FileSystem, plan: SegmentPlan): Promise<void> {
  const { seg } = plan;
  const tmp = `${seg.logPath}.repair.tmp`;
  const out = await fs.open(tmp, 'create');
  try {
    await out.truncate(0);
    let at = 0;
    for (const piece of plan.pieces) {
      if (piece.kind === 'gap') {
        for (const b of encodeGapBatches(piece.from, piece.to)) {
          await out.write(b, at);
          at += b.length;
        }
        continue;
      }
      for (let p = piece.from; p < piece.to; p += COPY_CHUNK_BYTES) {
        const chunk = await seg.read(p, Math.min(COPY_CHUNK_BYTES, piece.to - p));
        assert.equal(chunk.length, Math.min(COPY_CHUNK_BYTES, piece.to - p), 'segment shrank');
        await out.write(chunk, at);
        at += chunk.length;
      }
    }
    await out.sync();
  } finally {
    await out.close();
  }
  await fs.rename(tmp, seg.logPath);
}
