// Stage probe: where a request's time goes inside a broker, for benchmarks and investigations,
// never on in production. Enabled only when the process starts with SB_STAGE_PROBE_FILE=<path>
// in its environment (not a STREAMBUS_* name: the config loader refuses unknown ones). Then the
// hot path records stage durations (ms, performance.now()) into bounded sample arrays, and at
// process exit the probe writes one JSON object to the file: per stage count, p50, p90, p99,
// p99.9 and max, plus the event loop's delay (monitorEventLoopDelay) and the GC pauses seen
// (count, total and max ms, by kind). Disabled, `stageProbe()` is null and a call site costs one
// null check.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

/** Samples kept per stage; later ones are counted in `dropped`, not stored. */
const SAMPLES_PER_STAGE_MAX = 1_000_000;
/** Stage names recorded at most (a bound on the map). */
const STAGES_MAX = 64;

export interface StageSummary {
  readonly count: number;
  readonly dropped: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/**
 * Bounded duration samples per stage name, at most `stagesMax` names: the first `perStageMax`
 * samples of each stage (later ones are only counted), or with `ring` the newest `perStageMax`.
 * Shared by this probe and the broker's replica stage trace (replication/stage-trace.ts).
 */
export class StageSamples {
  private readonly samples = new Map<string, { values: Float64Array; n: number; seen: number }>();

  constructor(
    private readonly perStageMax: number,
    private readonly stagesMax: number,
    private readonly ring = false,
  ) {}

  /** Records `ms` for `stage`. */
  record(stage: string, ms: number): void {
    let s = this.samples.get(stage);
    if (s === undefined) {
      if (this.samples.size >= this.stagesMax) return;
      s = { values: new Float64Array(Math.min(1024, this.perStageMax)), n: 0, seen: 0 };
      this.samples.set(stage, s);
    }
    s.seen++;
    if (s.n === s.values.length && s.n < this.perStageMax) {
      const grown = new Float64Array(Math.min(this.perStageMax, s.values.length * 4));
      grown.set(s.values);
      s.values = grown;
    }
    if (s.n < s.values.length) s.values[s.n++] = ms;
    else if (this.ring) s.values[(s.seen - 1) % this.perStageMax] = ms;
  }

  /** Per stage: its name, how many samples were recorded, and the kept ones sorted ascending. */
  *sorted(): IterableIterator<[name: string, seen: number, kept: Float64Array]> {
    for (const [name, s] of this.samples) yield [name, s.seen, s.values.slice(0, s.n).sort()];
  }
}

/** The `p` quantile (0..1) of ascending `sorted` samples, 0 when there are none. */
export function quantileOf(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

export class StageProbe {
  private readonly samples = new StageSamples(SAMPLES_PER_STAGE_MAX, STAGES_MAX);
  private readonly gc = new Map<string, { count: number; totalMs: number; maxMs: number }>();
  private readonly loop = monitorEventLoopDelay({ resolution: 1 });
  private readonly observer: PerformanceObserver;

  constructor() {
    this.loop.enable();
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = String((e as { detail?: { kind?: number } }).detail?.kind ?? 'gc');
        const g = this.gc.get(kind) ?? { count: 0, totalMs: 0, maxMs: 0 };
        g.count++;
        g.totalMs += e.duration;
        g.maxMs = Math.max(g.maxMs, e.duration);
        this.gc.set(kind, g);
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Records `ms` for `stage`. */
  record(stage: string, ms: number): void {
    this.samples.record(stage, ms);
  }

  /** Every stage's quantiles so far. */
  summary(): Record<string, unknown> {
    const stages: Record<string, StageSummary> = {};
    const r = (x: number): number => Math.round(x * 1000) / 1000;
    for (const [name, seen, v] of this.samples.sorted()) {
      stages[name] = {
        count: seen,
        dropped: seen - v.length,
        p50: r(quantileOf(v, 0.5)),
        p90: r(quantileOf(v, 0.9)),
        p99: r(quantileOf(v, 0.99)),
        p999: r(quantileOf(v, 0.999)),
        max: r(v[v.length - 1] ?? 0),
      };
    }
    const ms = (ns: number): number => Math.round(ns / 1000) / 1000;
    return {
      stages,
      eventLoopDelayMs: {
        p50: ms(this.loop.percentile(50)),
        p99: ms(this.loop.percentile(99)),
        max: ms(this.loop.max),
      },
      gc: Object.fromEntries(this.gc),
    };
  }
}

let probe: StageProbe | null | undefined;

/** The process's probe, or null unless SB_STAGE_PROBE_FILE was set at start. */
export function stageProbe(): StageProbe | null {
  if (probe !== undefined) return probe;
  const file = process.env.SB_STAGE_PROBE_FILE;
  if (file === undefined || file === '') {
    probe = null;
    return probe;
  }
  const p = new StageProbe();
  probe = p;
  process.once('exit', () => {
    try {
      writeFileSync(file, `${JSON.stringify(p.summary(), null, 1)}\n`);
    } catch {
      // A probe that cannot write its file changes nothing about the broker's exit.
    }
  });
  return probe;
}
