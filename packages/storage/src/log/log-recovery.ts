// Recovery of a partition log directory at open, in one place. Steps, in order:
//   1. List the directory; delete temp files and index files without a `.log`.
//   2. Read `partition.meta` (log-start offset, recovery point). Missing or damaged: recovery
//      point 0, so everything is verified.
//   3. For each segment in base-offset order:
//      - if its index files are intact, match the log file's size and end at or below the
//        recovery point, trust it (no scan; its CRCs are then checked lazily by reads);
//      - otherwise verify every batch (structure, contiguity, CRC-32C via validateBatch),
//        rebuilding both indexes; at the first bad batch cut the file there.
//      A segment that does not start where the previous one ended (a gap left by a crash that
//      kept a later file but lost an earlier file's tail) ends the log there.
//      Everything after the first cut or gap is deleted: the log is a prefix of what was written.
//   4. Drop segments wholly below the log-start offset; if everything is gone, start an empty
//      segment at the log-start offset.
//   5. Fsync what was verified or cut, write index files for verified sealed segments, and move
//      the recovery point up to the active segment's base offset.
// The report says what was cut, from which offset, and which indexes were rebuilt. A batch that
// fails its CRC is never kept, so it can never be served.
//
// Damage versus a torn tail (log-damage.ts). Only the active (last) segment can hold a torn write
// after a crash when the policy fsyncs before it seals a segment ('always', 'interval'): there a
// bad tail, with no good batch after it, is cut (step 3) and reported as a `truncated` event. A
// bad batch or a gap in a sealed segment, or a bad batch in the active segment followed by a good
// one, is damage, not a crash artifact: cutting there would silently drop the good data after
// it, so recovery changes nothing and throws a LogCorruptionError saying which segment, position
// and offsets (`sealedDamage: 'fail'`, the default). Under 'none' blocks of any segment may be
// lost by a crash, and the old behaviour stays (`sealedDamage: 'truncate'`), reported as events.
import type { FileSystem } from '../fs.js';
import { isNotFound, joinPath } from '../fs.js';
import {
  describeDamage,
  LogCorruptionError,
  type LogDamage,
  type LogEventListener,
  lastOffsetIn,
} from './log-damage.js';
import { LogSegment } from './log-segment.js';
import {
  decodePartitionMeta,
  PARTITION_META_FILE,
  type PartitionMeta,
  writePartitionMeta,
} from './partition-meta.js';

export interface RecoveryReport {
  /** Bytes cut from the log (torn or corrupt tails, segments after a cut or gap). */
  truncatedBytes: number;
  /** The first offset that was lost, or null when nothing was cut. */
  truncatedFromOffset: number | null;
  /** Index files rebuilt from their logs (paths). */
  rebuiltIndexes: string[];
  /** Segment files deleted during recovery (paths). */
  deletedSegments: string[];
  /** Segments whose every batch was verified. */
  verifiedSegments: number;
  verifiedBytes: number;
  /** Human-readable notes, each naming a file: why something was cut or rebuilt. */
  problems: string[];
}

export interface RecoveredLog {
  readonly segments: LogSegment[];
  readonly logStartOffset: number;
  readonly recoveryPoint: number;
  readonly report: RecoveryReport;
}

export const SEGMENT_LOG = /^(\d{20})\.log$/;
const SEGMENT_INDEX = /^(\d{20})\.(index|timeindex)$/;

export interface RecoverOptions {
  /** Told of every cut and every damage found (default: nobody). */
  onEvent?: LogEventListener;
  /** A bad batch or gap in a sealed segment: throw LogCorruptionError, or cut there. */
  sealedDamage?: 'fail' | 'truncate';
}

export async function recoverLog(
  fs: FileSystem,
  dir: string,
  indexIntervalBytes: number,
  nowMs: number,
  verifyAll: boolean,
  syncRecovered: boolean,
  options: RecoverOptions = {},
): Promise<RecoveredLog> {
  const opened: LogSegment[] = [];
  const args = { fs, dir, indexIntervalBytes, nowMs, verifyAll, syncRecovered, options };
  try {
    return await recover(args, opened);
  } catch (err) {
    // Leave no handle open behind a failed open (damage, EMFILE, an I/O error).
    for (const seg of opened) await seg.handle.close().catch(() => undefined);
    throw err;
  }
}

async function recover(
  args: {
    fs: FileSystem;
    dir: string;
    indexIntervalBytes: number;
    nowMs: number;
    verifyAll: boolean;
    syncRecovered: boolean;
    options: RecoverOptions;
  },
  opened: LogSegment[],
): Promise<RecoveredLog> {
  const { fs, dir, indexIntervalBytes, nowMs, verifyAll, syncRecovered, options } = args;
  const emit = options.onEvent ?? (() => {});
  const failOnSealed = (options.sealedDamage ?? 'fail') === 'fail';
  const damaged = (damage: LogDamage): never => {
    emit({ kind: 'corruption', dir, detectedBy: 'open', ...damage });
    throw new LogCorruptionError(damage);
  };
  const report: RecoveryReport = {
    truncatedBytes: 0,
    truncatedFromOffset: null,
    rebuiltIndexes: [],
    deletedSegments: [],
    verifiedSegments: 0,
    verifiedBytes: 0,
    problems: [],
  };
  await fs.mkdir(dir);
  const names = await fs.readdir(dir);
  const bases: number[] = [];
  for (const name of names) {
    const m = SEGMENT_LOG.exec(name);
    if (m) bases.push(Number(m[1]));
  }
  bases.sort((a, b) => a - b);
  const baseSet = new Set(bases);
  for (const name of names) {
    const m = SEGMENT_INDEX.exec(name);
    if (name.endsWith('.tmp') || (m && !baseSet.has(Number(m[1])))) {
      await fs.unlink(joinPath(dir, name));
    }
  }

  const metaPath = joinPath(dir, PARTITION_META_FILE);
  let meta: PartitionMeta | null = null;
  try {
    const decoded = decodePartitionMeta(await fs.readFile(metaPath));
    if (typeof decoded === 'string') report.problems.push(`${metaPath}: ${decoded}; verifying all`);
    else meta = decoded;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const recoveryPoint = verifyAll ? -1 : (meta?.recoveryPoint ?? -1);

  const segments: LogSegment[] = [];
  const toSync: LogSegment[] = [];
  let cut = false;
  const noteCut = (offset: number) => {
    if (report.truncatedFromOffset === null || offset < report.truncatedFromOffset) {
      report.truncatedFromOffset = offset;
    }
  };
  for (const [bi, base] of bases.entries()) {
    const seg = await LogSegment.open(fs, dir, base, indexIntervalBytes, nowMs);
    opened.push(seg);
    const fileBytes = await seg.handle.size();
    const prev = segments[segments.length - 1];
    const isLast = bi === bases.length - 1;
    if (cut || (prev && base !== prev.nextOffset)) {
      if (!cut && prev) {
        const why = `starts at ${base} but the previous segment ends at ${prev.nextOffset}`;
        if (failOnSealed) {
          damaged({
            segment: prev.logPath,
            segmentBaseOffset: prev.baseOffset,
            position: prev.sizeBytes,
            bytes: 0,
            fromOffset: prev.nextOffset,
            toOffset: base > prev.nextOffset ? base - 1 : null,
            resumePosition: null,
            reason: `${seg.logPath}: ${why}`,
          });
        }
        report.problems.push(`${seg.logPath}: ${why}`);
        noteCut(prev.nextOffset);
      }
      cut = true;
      report.truncatedBytes += fileBytes;
      emit({
        kind: 'truncated',
        dir,
        segment: seg.logPath,
        position: 0,
        bytes: fileBytes,
        fromOffset: base,
        toOffset: await lastOffsetIn(seg, 0, fileBytes),
        reason: 'segment after a cut or gap deleted',
      });
      await seg.handle.close();
      await fs.unlink(seg.logPath);
      await seg.deleteIndexFiles();
      report.deletedSegments.push(seg.logPath);
      continue;
    }
    const why = await seg.loadIndexes(fileBytes);
    if (why === null && seg.nextOffset <= recoveryPoint) {
      segments.push(seg);
      continue;
    }
    if (why !== null && why !== 'missing') report.problems.push(why);
    seg.resetIndexes();
    const r = await seg.scan(0, base, fileBytes, true, true);
    seg.markVerified(seg.sizeBytes, seg.nextOffset);
    report.verifiedSegments++;
    report.verifiedBytes += r.endPosition;
    if (why !== null) report.rebuiltIndexes.push(seg.indexPath, seg.timeIndexPath);
    if (r.problem !== null) {
      if (failOnSealed) {
        const damage = await describeDamage(
          seg,
          r.endPosition,
          r.nextOffset,
          fileBytes,
          isLast ? null : bases[bi + 1]!,
          r.problem,
        );
        // In the active segment a crash leaves only a torn tail: a good batch after the bad one
        // means the bad one is damage (a cut would drop the good data after it).
        if (!isLast || damage.resumePosition !== null) damaged(damage);
      }
      emit({
        kind: 'truncated',
        dir,
        segment: seg.logPath,
        position: r.endPosition,
        bytes: fileBytes - r.endPosition,
        fromOffset: r.nextOffset,
        toOffset: await lastOffsetIn(seg, r.endPosition, fileBytes),
        reason: r.problem,
      });
      report.problems.push(`${seg.logPath}: ${r.problem}; truncated at position ${r.endPosition}`);
      report.truncatedBytes += fileBytes - r.endPosition;
      noteCut(r.nextOffset);
      await seg.handle.truncate(r.endPosition);
      // Always durable, whatever the policy: otherwise the cut tail could come back after the
      // next crash and cut away later, durable segments.
      await seg.handle.sync();
      cut = true;
    } else if (r.endPosition !== fileBytes) {
      // Cannot happen: scan reads to fileBytes unless it reports a problem.
      throw seg.storageCorruption(r.endPosition, 'scan stopped early without a reason');
    }
    await seg.deleteIndexFiles();
    toSync.push(seg);
    segments.push(seg);
  }

  let logStartOffset = Math.max(meta?.logStartOffset ?? 0, segments[0]?.baseOffset ?? 0);
  const logEnd = segments[segments.length - 1]?.nextOffset ?? logStartOffset;
  if (logStartOffset > logEnd) {
    // The log-start offset was moved past data that a crash then lost: start empty there.
    report.problems.push(`log-start offset ${logStartOffset} is past the recovered end ${logEnd}`);
    for (const seg of segments) {
      report.deletedSegments.push(seg.logPath);
      await seg.handle.close();
      await fs.unlink(seg.logPath);
      await seg.deleteIndexFiles();
    }
    segments.length = 0;
  }
  while (segments.length > 1 && segments[0]!.nextOffset <= logStartOffset) {
    const seg = segments.shift()!;
    await seg.handle.close();
    await fs.unlink(seg.logPath);
    await seg.deleteIndexFiles();
  }
  if (segments.length === 0) {
    logStartOffset = Math.max(logStartOffset, 0);
    segments.push(await LogSegment.create(fs, dir, logStartOffset, indexIntervalBytes, nowMs));
    opened.push(segments[0]!);
  }

  const active = segments[segments.length - 1]!;
  for (const seg of toSync) {
    if (seg.deleted || !segments.includes(seg)) continue;
    if (syncRecovered) await seg.handle.sync();
    if (seg !== active) await seg.writeIndexes(syncRecovered);
  }
  if (syncRecovered) await active.handle.sync();
  await fs.syncDir(dir);
  // Sealed segments are now verified, synced and indexed: recovery need not look at them again.
  const newRecoveryPoint = syncRecovered
    ? active.baseOffset
    : Math.min(Math.max(recoveryPoint, 0), active.baseOffset);
  await writePartitionMeta(fs, metaPath, { logStartOffset, recoveryPoint: newRecoveryPoint });
  return { segments, logStartOffset, recoveryPoint: newRecoveryPoint, report };
}
