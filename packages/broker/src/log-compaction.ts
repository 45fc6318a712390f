// The log cleaner's scheduler for compacted topics (cleanup.policy compact or compact,delete; the
// cleaner itself is packages/storage/src/log/log-cleaner.ts, docs/storage.md "Compaction").
//
// Every replica of a compacted partition on this broker, leader or follower, compacts its own log
// independently (as Kafka's replicas do). That keeps replicas consistent for every offset a
// consumer can read, because the cleaner
//   - only touches sealed segments wholly below the replica's commit point (its high watermark),
//     where every replica holds the same committed batches, and never the active segment;
//   - keeps every batch (`keepEveryBatch`): a batch is a Raft entry, and the replica's offset
//     translator, term runs, producer state and recovery scan read batch headers only (base
//     offset, last offset delta, epoch, producer fields, control flag), which a clean keeps. An
//     emptied batch stays as its 61-byte header. So no entry's bytes ever disappear: a lagging or
//     new follower is served the cleaned batches (by the Raft tail's prefetch) and its log is a
//     valid compaction of the same entries; no snapshot is needed for that.
//
// Scheduling: a timer every `intervalMs`; one partition at a time, one pass at a time. Each pass
// takes the compacted partition with the highest dirty ratio (cleaner.dirtyRatio at
// bound = min(commit point, active segment base)) that reached its min.cleanable.dirty.ratio, and
// cleans it within the broker-wide IoBudget (bytes read + written per second), in 64 KiB slices,
// yielding the event loop after each and pausing to stay within half of its time. A partition
// whose clean failed or skipped segments (damage, a conflict) waits a growing number of passes
// before it is tried again. Closing a partition aborts its clean (LOG_CLEAN_ABORTED) and waits for it.
//
// Appends never wait for the cleaner's reads, writes, budget or segment swaps (PartitionLog runs
// a swap's file operations beside its writer).
//
// The key index (key -> latest offset) is one LSM store for all partitions of this broker, in
// `<dataDir>/log-cleaner-index`, opened at the first clean; each partition's keys carry its name
// (`<topic id>/<partition>`), and are cleared when the partition's data is removed.
import { join } from 'node:path';
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import {
  CleanerKeyIndex,
  type CleanReport,
  type FileSystem,
  IoBudget,
  LogCleaner,
  LsmStore,
  type PartitionLog,
} from '@streambus/storage';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { compactionApplies, type TopicConfig } from './topic-config.js';

export const LOG_CLEANER_INDEX_DIR = 'log-cleaner-index';
/** Passes a partition waits after a failed or partial clean: 1, 2, 4, ... up to this. */
const BACKOFF_PASSES_MAX = 64;
/**
 * How often a running clean checks its topic's cleanup.policy: a live change to one without
 * compact stops it (the passes skip the partition from then on).
 */
const POLICY_CHECK_MS = 100;
/**
 * Bytes the cleaner reads per slice. Small, because the cleaner runs on the broker's event loop:
 * a slice's records are judged in one stretch of microtasks (an index lookup each), so the slice
 * bounds how long produce and fetch callbacks wait for it.
 */
const READ_BYTES_MAX = 64 * 1024;
/** The cleaner shares the broker's event loop: at most this share of its time by default. */
const DEFAULT_LOOP_SHARE_MAX = 0.5;

/**
 * Pure: how long the cleaner pauses after running `ranMs` so that its share of the loop's time
 * stays at most `loopShareMax` (0 when the share is 1 or more: no pause).
 */
export function loopPauseMs(ranMs: number, loopShareMax: number): number {
  if (loopShareMax >= 1 || ranMs <= 0) return 0;
  return (ranMs * (1 - loopShareMax)) / Math.max(loopShareMax, 0.01);
}

/**
 * The shared budget, which also hands the event loop back after every slice read or written:
 * a macrotask turn (appends, fsync completions and fetches run between the cleaner's slices),
 * and a pause that keeps the cleaner's share of the loop's time at most `loopShareMax` (the time
 * since the cleaner last gave the loop back counts as its own, I/O waits included).
 */
class YieldingBudget extends IoBudget {
  private ranSinceMs = performance.now();
  constructor(
    options: ConstructorParameters<typeof IoBudget>[0],
    private readonly loopShareMax: number,
    private readonly pause: (ms: number) => Promise<void>,
  ) {
    super(options);
  }

  override async spend(bytes: number): Promise<void> {
    await super.spend(bytes);
    const pauseMs = loopPauseMs(performance.now() - this.ranSinceMs, this.loopShareMax);
    if (pauseMs >= 1) await this.pause(pauseMs);
    else await new Promise<void>((resolve) => setImmediate(resolve));
    this.ranSinceMs = performance.now();
  }
}

/**
 * Sleeps that end early when `wakeAll` is called (a clean being aborted must not sit out its
 * budget wait or its pause: closing the broker waits for it). Unref'd: a sleeping cleaner does
 * not keep the process alive.
 */
class Sleeps {
  private readonly waiting = new Set<() => void>();

  /** `skip`: true while sleeping is pointless (the clean is being stopped): no wait at all. */
  constructor(private readonly skip: () => boolean) {}

  sleep = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      if (this.skip()) {
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.ceil(ms));
      timer.unref();
      this.waiting.add(done);
    });

  wakeAll(): void {
    for (const done of [...this.waiting]) done();
  }
}

/** One partition log the scheduler may clean (a replica of a partition on this broker). */
export interface CompactionTarget {
  /** Unique on this broker; the key index's prefix (`<topic id>/<partition>`). */
  readonly name: string;
  readonly topic: string;
  readonly partition: number;
  /** The log's directory (the cleaned temp file goes there). */
  readonly dir: string;
  /** The log as it is now (null: not serving, e.g. offline). */
  log(): PartitionLog | null;
  /** Nothing at or above this offset is cleaned (the replica's high watermark). */
  commitPoint(): number;
  config(): TopicConfig;
  /** The log's index interval (for the cleaned segments' offset index). */
  readonly indexIntervalBytes: number;
}

export interface LogCompactionOptions {
  readonly fs: FileSystem;
  /** The broker's data directory (the key index lives in LOG_CLEANER_INDEX_DIR under it). */
  readonly dataDir: string;
  readonly bytesPerSecond: number;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Registers the cleaner's metrics there (none: no metrics). */
  readonly registry?: Registry | null;
  readonly nowMs?: () => number;
  /** The budget's sleep (tests). */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly readBytesMax?: number;
  /** The cleaner's largest share of the event loop's time, 0..1 (default 0.5; 1: no pauses). */
  readonly loopShareMax?: number;
  /**
   * Whether the key index fsyncs its WAL on every write (default false: the index is derived from
   * the logs, and each WriteBatch is atomic, so a crash loses a suffix of it that the next
   * catch-up reads again; its fsyncs would compete with the logs' on the same disk).
   */
  readonly indexSyncWrites?: boolean;
}

export interface CompactionRun {
  readonly target: string;
  readonly bound: number;
  readonly dirtyRatio: number;
  readonly report: CleanReport;
  readonly durationMs: number;
}

interface Entry {
  readonly target: CompactionTarget;
  /** Passes left before this partition is tried again. */
  waitPasses: number;
  failures: number;
  /**
   * When the oldest tombstone the last clean had to keep (not old enough) becomes old enough to
   * go (its timestamp + delete.retention.ms); null: none known. At or after it, the partition is
   * cleaned whatever its dirty ratio, so expired tombstones do not wait for new writes.
   */
  tombstonesDueMs: number | null;
}

/**
 * Pure: the clean's bound for a log, min(commit point, the active segment's base offset), and
 * whether anything below it is a sealed segment at all.
 */
export function cleanBound(
  extents: ReadonlyArray<{ baseOffset: number; nextOffset: number; sealed: boolean }>,
  commitPoint: number,
): { bound: number; cleanable: boolean } {
  const active = extents.find((e) => !e.sealed);
  const bound = Math.min(commitPoint, active?.baseOffset ?? commitPoint);
  const cleanable = extents.some((e) => e.sealed && e.nextOffset <= bound);
  return { bound, cleanable };
}

class CompactionMetrics {
  readonly runs: Counter<'result'>;
  readonly bytesRead: Counter;
  readonly bytesWritten: Counter;
  readonly recordsRemoved: Counter;
  readonly budgetWaitSeconds: Counter;
  readonly lastRunSeconds: Gauge;
  readonly lastRunLagOffsets: Gauge;
  readonly dirtyRatioMax: Gauge;

  constructor(registry: Registry, lastRunEndMs: () => number | null, nowMs: () => number) {
    const registers = [registry];
    this.runs = new Counter({
      name: 'streambus_log_cleaner_runs_total',
      help: 'Cleans of compacted partitions, by result (cleaned, unchanged, partial, failed, aborted)',
      labelNames: ['result'],
      registers,
    });
    this.bytesRead = new Counter({
      name: 'streambus_log_cleaner_bytes_read_total',
      help: 'Bytes the log cleaner read (index catch-up, segments, verification)',
      registers,
    });
    this.bytesWritten = new Counter({
      name: 'streambus_log_cleaner_bytes_written_total',
      help: 'Bytes of cleaned segments the log cleaner wrote',
      registers,
    });
    this.recordsRemoved = new Counter({
      name: 'streambus_log_cleaner_records_removed_total',
      help: 'Superseded records and expired tombstones the log cleaner removed',
      registers,
    });
    this.budgetWaitSeconds = new Counter({
      name: 'streambus_log_cleaner_budget_wait_seconds_total',
      help: 'Time the log cleaner waited for its I/O budget (logCleanerBytesPerSecond)',
      registers,
    });
    this.lastRunSeconds = new Gauge({
      name: 'streambus_log_cleaner_last_run_duration_seconds',
      help: 'Duration of the last clean',
      registers,
    });
    this.lastRunLagOffsets = new Gauge({
      name: 'streambus_log_cleaner_last_run_lag_offsets',
      help: "Offsets between the last clean's bound and its partition's log end (not yet cleanable)",
      registers,
    });
    this.dirtyRatioMax = new Gauge({
      name: 'streambus_log_cleaner_dirty_ratio_max',
      help: 'The highest dirty ratio among compacted partitions at the last scheduling pass',
      registers,
    });
    new Gauge({
      name: 'streambus_log_cleaner_last_run_age_seconds',
      help: 'Seconds since the last clean ended (-1: none yet)',
      registers,
      collect() {
        const end = lastRunEndMs();
        this.set(end === null ? -1 : (nowMs() - end) / 1000);
      },
    });
  }
}

export class LogCompaction {
  private readonly o: LogCompactionOptions;
  private readonly budget: IoBudget;
  /** The budget's waits and the loop-share pauses: woken when a clean is aborted. */
  private readonly sleeps = new Sleeps(
    () => this.closed || this.running?.abort.signal.aborted === true,
  );
  private readonly nowMs: () => number;
  private readonly entries = new Map<string, Entry>();
  private readonly metrics: CompactionMetrics | null;
  private store: LsmStore | null = null;
  private storeOpening: Promise<LsmStore> | null = null;
  private running: { name: string; abort: AbortController; done: Promise<unknown> } | null = null;
  private pass: Promise<CompactionRun | null> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private lastRunEndMs: number | null = null;
  /** Cleans finished (any result), for tests and stats. */
  runsTotal = 0;

  constructor(o: LogCompactionOptions) {
    this.o = o;
    this.nowMs = o.nowMs ?? Date.now;
    this.budget = new YieldingBudget(
      { bytesPerSecond: o.bytesPerSecond, nowMs: this.nowMs, sleep: o.sleep ?? this.sleeps.sleep },
      o.loopShareMax ?? DEFAULT_LOOP_SHARE_MAX,
      this.sleeps.sleep,
    );
    this.metrics =
      o.registry == null
        ? null
        : new CompactionMetrics(o.registry, () => this.lastRunEndMs, this.nowMs);
  }

  /** The shared I/O budget (its counters: spentBytes, waitedMs). */
  get ioBudget(): IoBudget {
    return this.budget;
  }

  /** Registers a partition log (any policy: a config change to compact takes effect at once). */
  add(target: CompactionTarget): void {
    if (this.closed) return;
    this.entries.set(target.name, { target, waitPasses: 0, failures: 0, tombstonesDueMs: null });
  }

  /**
   * Forgets a partition: aborts its clean and waits for it to stop (so its directory can be
   * closed or removed). `clearIndex`: its data is removed, so its key-index entries go too.
   */
  async remove(name: string, clearIndex = false): Promise<void> {
    this.entries.delete(name);
    const r = this.running;
    if (r !== null && r.name === name) {
      r.abort.abort();
      this.sleeps.wakeAll();
      await r.done;
    }
    if (clearIndex && !this.closed) {
      const store = await this.openStore().catch(() => null);
      if (store !== null) {
        await new CleanerKeyIndex(store, name).clear().catch((err: unknown) => {
          this.o.logger.warn({ err, partition: name }, 'clearing the log cleaner index failed');
        });
      }
    }
  }

  /** Starts the timer (one pass every intervalMs, never two at once). */
  start(): void {
    if (this.closed || this.timer !== null) return;
    this.timer = setInterval(() => {
      if (this.pass === null) void this.runOnce();
    }, this.o.intervalMs);
    this.timer.unref();
  }

  /**
   * One scheduling pass: cleans the compacted partition most in need of it, if one is due.
   * Never rejects (a failed clean is logged, counted and backed off); resolves to what ran.
   */
  runOnce(): Promise<CompactionRun | null> {
    if (this.pass !== null) return this.pass;
    const p = this.doPass()
      .catch((err: unknown) => {
        this.o.logger.error({ err }, 'log cleaner pass failed');
        return null;
      })
      .finally(() => {
        this.pass = null;
      });
    this.pass = p;
    return p;
  }

  private async doPass(): Promise<CompactionRun | null> {
    if (this.closed) return null;
    const candidates: Array<{ entry: Entry; log: PartitionLog; bound: number }> = [];
    for (const entry of this.entries.values()) {
      const t = entry.target;
      if (!compactionApplies(t.config().cleanupPolicy)) continue;
      if (entry.waitPasses > 0) {
        entry.waitPasses--;
        continue;
      }
      const log = t.log();
      if (log === null || log.failed) continue;
      const { bound, cleanable } = cleanBound(log.segmentExtents, t.commitPoint());
      if (cleanable) candidates.push({ entry, log, bound });
    }
    if (candidates.length === 0) {
      this.metrics?.dirtyRatioMax.set(0);
      return null;
    }
    const store = await this.openStore();
    let best: { entry: Entry; log: PartitionLog; bound: number; ratio: number } | null = null;
    let bestScore = 0;
    let ratioMax = 0;
    const now = this.nowMs();
    for (const c of candidates) {
      if (this.closed || !this.entries.has(c.entry.target.name)) continue;
      const cleaner = this.cleanerFor(c.entry.target, c.log, store);
      const ratio = await cleaner.dirtyRatio(c.bound);
      ratioMax = Math.max(ratioMax, ratio);
      const due = c.entry.tombstonesDueMs !== null && now >= c.entry.tombstonesDueMs;
      const dirty = ratio >= c.entry.target.config().minCleanableDirtyRatio && ratio > 0;
      if (!dirty && !due) continue;
      // Tombstones coming due rank after any partition that is dirty enough.
      const score = dirty ? 1 + ratio : ratio;
      if (best === null || score > bestScore) {
        best = { ...c, ratio };
        bestScore = score;
      }
    }
    this.metrics?.dirtyRatioMax.set(ratioMax);
    if (best === null || this.closed || !this.entries.has(best.entry.target.name)) return null;
    return this.clean(best.entry, best.log, best.bound, best.ratio, store);
  }

  private cleanerFor(t: CompactionTarget, log: PartitionLog, store: LsmStore): LogCleaner {
    return new LogCleaner(this.o.fs, t.dir, log, new CleanerKeyIndex(store, t.name), {
      indexIntervalBytes: t.indexIntervalBytes,
    });
  }

  private async clean(
    entry: Entry,
    log: PartitionLog,
    bound: number,
    ratio: number,
    store: LsmStore,
  ): Promise<CompactionRun | null> {
    const t = entry.target;
    const abort = new AbortController();
    const started = this.nowMs();
    const waitedBefore = this.budget.waitedMs;
    const work = this.cleanerFor(t, log, store).clean({
      bound,
      deleteRetentionMs: t.config().deleteRetentionMs,
      nowMs: this.nowMs(),
      readBytesMax: this.o.readBytesMax ?? READ_BYTES_MAX,
      budget: this.budget,
      keepEveryBatch: true,
      signal: abort.signal,
    });
    const done = work.then(
      () => undefined,
      () => undefined,
    );
    this.running = { name: t.name, abort, done };
    const policyWatch = setInterval(() => {
      if (!compactionApplies(t.config().cleanupPolicy)) {
        abort.abort();
        this.sleeps.wakeAll();
      }
    }, POLICY_CHECK_MS);
    policyWatch.unref();
    const where = { topic: t.topic, partition: t.partition, bound };
    try {
      const report = await work;
      const durationMs = this.nowMs() - started;
      const partial = report.skippedSegments.length > 0 || report.damage.length > 0;
      const result = partial
        ? 'partial'
        : report.cleanedSegments.length > 0
          ? 'cleaned'
          : 'unchanged';
      this.count(result, report, durationMs, waitedBefore, log.logEndOffset - bound);
      if (partial) {
        this.backOff(entry);
        const level = report.damage.length > 0 ? 'error' : 'warn';
        this.o.logger[level](
          { ...where, skipped: report.skippedSegments, damage: report.damage },
          report.damage.length > 0
            ? 'log cleaner met damaged data: those segments are left as they are (no tombstone after them goes)'
            : 'log cleaner skipped segments; it tries again later',
        );
      } else {
        entry.failures = 0;
      }
      // A partial clean kept tombstones for other reasons: wait for the next dirty pass then.
      const kept = partial ? null : report.tombstoneKeptMinTimestamp;
      entry.tombstonesDueMs = kept === null ? null : kept + t.config().deleteRetentionMs + 1;
      this.o.logger.info(
        {
          ...where,
          dirtyRatio: ratio,
          cleanedSegments: report.cleanedSegments.length,
          unchangedSegments: report.unchangedSegments,
          recordsRemoved: report.recordsRemoved,
          tombstonesRemoved: report.tombstonesRemoved,
          bytesBefore: report.bytesBefore,
          bytesAfter: report.bytesAfter,
          bytesRead: report.bytesRead,
          durationMs,
        },
        'log cleaner ran',
      );
      return { target: t.name, bound, dirtyRatio: ratio, report, durationMs };
    } catch (err) {
      const aborted = isStreamBusError(err, ErrorCode.LOG_CLEAN_ABORTED);
      this.count(aborted ? 'aborted' : 'failed', null, this.nowMs() - started, waitedBefore, 0);
      if (aborted) {
        this.o.logger.debug(
          where,
          'log clean stopped: the partition is closing, or its cleanup.policy no longer compacts',
        );
      } else {
        this.backOff(entry);
        this.o.logger.warn({ ...where, err }, 'log clean failed; it tries again later');
      }
      return null;
    } finally {
      clearInterval(policyWatch);
      this.running = null;
      this.lastRunEndMs = this.nowMs();
      this.runsTotal++;
    }
  }

  private count(
    result: string,
    report: CleanReport | null,
    durationMs: number,
    waitedBefore: number,
    lag: number,
  ): void {
    const m = this.metrics;
    if (m === null) return;
    m.runs.inc({ result });
    m.lastRunSeconds.set(durationMs / 1000);
    m.budgetWaitSeconds.inc(Math.max(0, this.budget.waitedMs - waitedBefore) / 1000);
    if (report !== null) {
      m.bytesRead.inc(report.bytesRead);
      m.bytesWritten.inc(report.bytesWritten);
      m.recordsRemoved.inc(report.recordsRemoved);
      m.lastRunLagOffsets.set(Math.max(0, lag));
    }
  }

  private backOff(entry: Entry): void {
    entry.failures++;
    entry.waitPasses = Math.min(BACKOFF_PASSES_MAX, 2 ** (entry.failures - 1));
  }

  private openStore(): Promise<LsmStore> {
    if (this.store !== null) return Promise.resolve(this.store);
    this.storeOpening ??= LsmStore.open(this.o.fs, join(this.o.dataDir, LOG_CLEANER_INDEX_DIR), {
      syncWrites: this.o.indexSyncWrites ?? false,
    }).then(
      (s) => {
        this.store = s;
        return s;
      },
      (err: unknown) => {
        this.storeOpening = null;
        throw err;
      },
    );
    return this.storeOpening;
  }

  /** Stops the timer, aborts a running clean and waits for it, closes the key index. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.running?.abort.abort();
    this.sleeps.wakeAll();
    await this.pass;
    this.entries.clear();
    const store = this.store ?? (await this.storeOpening?.catch(() => null)) ?? null;
    this.store = null;
    await store?.close().catch((err: unknown) => {
      this.o.logger.warn(
        { err },
        'closing the log cleaner index failed (it is rebuilt from the logs)',
      );
    });
  }
}
