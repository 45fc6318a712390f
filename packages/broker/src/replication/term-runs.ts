// The term-run table of one partition replica: for each Raft term that has entries in the log,
// the index and offset of its first entry. It is the partition's counterpart of Kafka's
// leader-epoch checkpoint (`LeaderEpochFileCache`, KIP-101/KIP-279), with the epoch being the
// Raft term the leader stamps into each batch's `partitionLeaderEpoch`.
//
// Why a separate, checksummed table: `partitionLeaderEpoch` lies outside the batch CRC (it is
// patched after the producer computed the CRC), so a flipped bit there goes unnoticed by the
// segment log. The table is the second copy: it carries its own CRC-32C (checkpoint-file.ts),
// every read of an old entry checks the batch's term against it (raft-log-tail.ts), and the
// synchronous `term(index)` the Raft core asks for every index of the log is answered from it
// without touching the disk.
//
// What it does not do: it does not read the log itself (the shell hands it the scan) and it
// does not decide when to write the file (the rules the shell follows are below).
//
// Invariants (checked by `check()` after decoding, asserted on every change):
//   1. Terms strictly increase from run to run; so do indexes and offsets, and the offset gap
//      between two runs is at least the index gap (every entry is a batch of >= 1 record).
//   2. Every run but the last covers at least one entry (implied by 1); the last may be empty
//      (its run was recorded, rule R1 below, before its first entry was written).
//   3. When the table is not empty, runs[0].index <= the log's first index: every entry held
//      has a term here.
//
// Persistence rules for the shell (what makes the file, after any crash, describe a prefix of
// the log or be detected as unusable):
//   R1. Before writing the first entry of a new term, save the table with its new run
//       (`observe` returns true). Kafka's `assign` flushes the checkpoint the same way.
//   R2. After truncating the log's suffix, save the table before writing anything after the
//       truncation point if `truncateSuffix` returned true (a run was removed).
//   R3. A prefix trim need not be saved at once: recovery clips runs before the log start.
//   Recovery (`recoverTermRuns`): a file that is missing, torn or fails its CRC is rebuilt from a
//   scan of the log (batch terms in order) and saved; a good file is clipped to the log's
//   [start, end): runs starting at or past the end (R1 with the entry never written) dropped.
import assert from 'node:assert/strict';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { LogIndex, Term } from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import {
  PayloadReader,
  PayloadWriter,
  readCheckpoint,
  writeCheckpoint,
} from './checkpoint-file.js';
import { lastWhere } from './last-where.js';

export const TERM_RUNS_MAGIC = 'SBTR';

/** An exact point of the log: an entry's Raft index and its batch's base offset. */
export interface LogPosition {
  readonly index: LogIndex;
  readonly offset: number;
}

/** The first entry of `term` in the log. */
export interface TermRun extends LogPosition {
  readonly term: Term;
}

/** One batch as a log scan reports it, for rebuilding the table. */
export interface ScannedTerm {
  readonly index: LogIndex;
  readonly offset: number;
  /** The batch's `partitionLeaderEpoch`. */
  readonly term: Term;
}

const RUN_BYTES = 4 + 8 + 8;

export class TermRuns {
  private runs: TermRun[];

  constructor(runs: readonly TermRun[] = []) {
    const reason = checkRuns(runs);
    assert.equal(reason, undefined, `term runs: ${reason}`);
    this.runs = runs.slice();
  }

  /** The runs, oldest first (a copy-free read-only view; do not keep it across changes). */
  list(): readonly TermRun[] {
    return this.runs;
  }

  get size(): number {
    return this.runs.length;
  }

  latest(): TermRun | undefined {
    return this.runs[this.runs.length - 1];
  }

  /**
   * Records that the entry at `index` (base offset `offset`) has `term`. Entries are observed in
   * index order; to go back, truncate first. Returns true when a run was added: the table must
   * be saved before that entry is written (rule R1).
   */
  observe(term: Term, index: LogIndex, offset: number): boolean {
    const last = this.latest();
    if (last !== undefined) {
      assert.ok(index >= last.index, `term runs: entry ${index} before run start ${last.index}`);
      assert.ok(term >= last.term, `term runs: term ${term} at ${index} after term ${last.term}`);
      if (term === last.term) return false;
      if (index === last.index) {
        // The last run is empty (invariant 2: recorded ahead of its entry, or left by a prefix
        // trim of the whole log): the entry's term replaces it.
        this.runs[this.runs.length - 1] = { term, index, offset };
        return true;
      }
      assert.ok(
        index > last.index && offset - last.offset >= index - last.index,
        `term runs: run of term ${term} at ${index}/${offset} overlaps ${last.index}/${last.offset}`,
      );
    }
    this.runs.push({ term, index, offset });
    return true;
  }

  /** The index of the run holding `index`, or -1 before the first run. */
  private runAt(index: LogIndex): number {
    return lastWhere(this.runs, (r) => r.index <= index);
  }

  /**
   * The term of the entry at `index`, for indexes the table covers (the caller bounds `index` by
   * the log's end: the table does not know where the last run ends). Undefined before the first.
   */
  termOf(index: LogIndex): Term | undefined {
    const k = this.runAt(index);
    return k < 0 ? undefined : this.runs[k]!.term;
  }

  /**
   * Forgets every entry from `fromIndex` on (the log's suffix was truncated there). Returns true
   * when a run was removed, i.e. when the saved file no longer describes the log (rule R2).
   */
  truncateSuffix(fromIndex: LogIndex): boolean {
    let n = this.runs.length;
    while (n > 0 && this.runs[n - 1]!.index >= fromIndex) n--;
    if (n === this.runs.length) return false;
    this.runs.length = n;
    return true;
  }

  /** The log now starts at `start` (snapshot compaction or retention): drops older runs. */
  truncatePrefix(start: LogPosition): void {
    const k = this.runAt(start.index);
    if (k < 0) return; // the whole table is at or after the new start
    const run = this.runs[k]!;
    if (run.index === start.index) {
      assert.equal(run.offset, start.offset, `term runs: start ${start.index} offset mismatch`);
    } else {
      assert.ok(start.offset - run.offset >= start.index - run.index, 'term runs: start offset');
    }
    const next = this.runs[k + 1];
    if (next !== undefined) {
      assert.ok(next.offset - start.offset >= next.index - start.index, 'term runs: start offset');
    }
    this.runs = [
      { term: run.term, index: start.index, offset: start.offset },
      ...this.runs.slice(k + 1),
    ];
  }

  /**
   * "End offset for term T" (Kafka's OffsetsForLeaderEpoch, used for follower truncation): the
   * largest term t <= `term` that has entries here, and the position just after its last entry
   * (the next run's start, or `logEnd` when t is the latest term). Undefined when every run's
   * term is above `term` (the asker's history diverges before this log's start).
   */
  endFor(term: Term, logEnd: LogPosition): TermRun | undefined {
    const found = lastWhere(this.runs, (r) => r.term <= term);
    if (found < 0) return undefined;
    const next = this.runs[found + 1];
    const end = next ?? logEnd;
    return { term: this.runs[found]!.term, index: end.index, offset: end.offset };
  }

  /** Recovery: fits a table read from its file to the log's actual [start, end) (rules R1, R3). */
  clip(logStart: LogPosition, logEnd: LogPosition): void {
    this.truncateSuffix(logEnd.index);
    if (logStart.index < logEnd.index) this.truncatePrefix(logStart);
    else this.runs.length = 0; // an empty log holds no term
  }

  /** The payload of the table's file (checkpoint-file.ts wraps it): count, then the runs. */
  encode(): Uint8Array {
    const w = new PayloadWriter(4 + this.runs.length * RUN_BYTES);
    w.u32(this.runs.length);
    for (const r of this.runs) {
      w.u32(r.term);
      w.u64(r.index);
      w.u64(r.offset);
    }
    return w.finish();
  }

  /** Decodes a payload; a string says why it is not a valid table. */
  static decode(payload: Uint8Array): TermRuns | string {
    const r = new PayloadReader(payload);
    const count = r.u32();
    if (count === undefined || count * RUN_BYTES !== r.remaining) return 'bad run count';
    const runs: TermRun[] = [];
    for (let k = 0; k < count; k++) {
      const term = r.u32();
      const index = r.u64();
      const offset = r.u64();
      if (term === undefined || index === undefined || offset === undefined) return 'bad run';
      runs.push({ term: term as Term, index: index as LogIndex, offset });
    }
    const reason = checkRuns(runs);
    return reason === undefined ? new TermRuns(runs) : reason;
  }

  /**
   * Rebuilds the table from a scan of the log, in index order. A term that goes down is a
   * damaged `partitionLeaderEpoch` (it is outside the batch CRC): CORRUPT_DATA, never trusted.
   */
  static fromScan(batches: Iterable<ScannedTerm>): TermRuns {
    const table = new TermRuns();
    let prev: ScannedTerm | undefined;
    for (const b of batches) {
      if (prev !== undefined && (b.index !== prev.index + 1 || b.offset <= prev.offset)) {
        throw new StreamBusError(
          ErrorCode.CORRUPT_DATA,
          `term runs: log scan went from ${prev.index}/${prev.offset} to ${b.index}/${b.offset}`,
        );
      }
      const latest = table.latest();
      if (latest !== undefined && b.term < latest.term) {
        throw new StreamBusError(
          ErrorCode.CORRUPT_DATA,
          `term runs: batch at offset ${b.offset} has term ${b.term} after term ${latest.term}`,
        );
      }
      table.observe(b.term, b.index, b.offset);
      prev = b;
    }
    return table;
  }
}

/** Invariant 1; undefined when it holds, else why not. */
function checkRuns(runs: readonly TermRun[]): string | undefined {
  for (let k = 1; k < runs.length; k++) {
    const a = runs[k - 1]!;
    const b = runs[k]!;
    if (b.term <= a.term) return `term ${b.term} does not follow ${a.term}`;
    if (b.index <= a.index || b.offset - a.offset < b.index - a.index) {
      return `run ${b.index}/${b.offset} does not follow ${a.index}/${a.offset}`;
    }
  }
  return undefined;
}

/** Saves the table atomically (rules R1, R2). */
export async function saveTermRuns(fs: FileSystem, path: string, table: TermRuns): Promise<void> {
  await writeCheckpoint(fs, path, TERM_RUNS_MAGIC, table.encode());
}

export interface RecoveredTermRuns {
  readonly table: TermRuns;
  /** 'file' when the checkpoint was used; otherwise it was rebuilt from the log and saved. */
  readonly from: 'file' | 'rebuilt';
  /** Why the file was not used (missing, torn, CRC mismatch, invalid table). */
  readonly reason?: string;
}

/**
 * Opens the table at start-up: the file if it is whole and valid (clipped to the log), else a
 * rebuild from `scan` (the caller's read of the log's batch terms, in order), saved at once.
 */
export async function recoverTermRuns(
  fs: FileSystem,
  path: string,
  log: { readonly start: LogPosition; readonly end: LogPosition },
  scan: () => Promise<Iterable<ScannedTerm>>,
): Promise<RecoveredTermRuns> {
  const read = await readCheckpoint(fs, path, TERM_RUNS_MAGIC);
  let reason: string;
  if (read.status === 'ok') {
    const decoded = TermRuns.decode(read.payload);
    if (typeof decoded !== 'string') {
      const first = decoded.list()[0];
      const empty = log.start.index === log.end.index;
      if (empty || (first !== undefined && first.index <= log.start.index)) {
        decoded.clip(log.start, log.end);
        return { table: decoded, from: 'file' };
      }
      reason = `its first run (${first?.index ?? 'none'}) is after the log start ${log.start.index}`;
    } else {
      reason = decoded;
    }
  } else {
    reason = read.status === 'missing' ? 'no file' : read.reason;
  }
  const table = TermRuns.fromScan(await scan());
  await saveTermRuns(fs, path, table);
  return { table, from: 'rebuilt', reason };
}
