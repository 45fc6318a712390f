// Per-stage timings of the replicated write path (issue 9, latency breakdown): an opt-in probe,
// off unless the broker's environment names a file in SBDIAG_REPLICA_STAGES. When on, every
// PartitionReplica of the process records how long each stage of an entry's way took (ms, wall
// clock via performance.now(); a diagnostic, never an input to Raft), and the process rewrites
// `<file>.<pid>.json` with the quantiles of each stage every 2 s and at exit.
//
// Stages (L = on the leader, F = on a follower):
//   L.queue        propose() until the batch is proposed to the core (log not placed yet)
//   L.toReady      first proposal of a round until the Ready holding it is taken (the host's
//                  scheduling hop: notify, setImmediate, process())
//   L.write / F.write      a Ready's entries handed to the log until written to the OS
//   L.fsync / F.fsync      written until durable (the policy's fsync)
//   F.toReady      an append message stepped until the Ready holding its entries is taken
//   L.firstAck     a Ready's appends sent until the first follower acknowledged its last entry
//   L.commit       a Ready's appends sent until its last entry counts as committed and durable
//   L.ownDurable   a Ready's appends sent until the leader's own copy is durable
// Bounds: at most SAMPLES_MAX samples per stage (a ring: the newest win), at most STAGES_MAX
// stage names.
import { writeFileSync } from 'node:fs';
import { quantileOf, StageSamples } from '@streambus/storage';

const SAMPLES_MAX = 20_000;
const STAGES_MAX = 32;
const DUMP_INTERVAL_MS = 2000;

export interface StageSummary {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export class StageTrace {
  private readonly samples = new StageSamples(SAMPLES_MAX, STAGES_MAX, true);

  record(stage: string, ms: number): void {
    this.samples.record(stage, ms);
  }

  summary(): Record<string, StageSummary> {
    const out: Record<string, StageSummary> = {};
    for (const [stage, n, v] of this.samples.sorted()) {
      const q = (p: number): number => quantileOf(v, p);
      out[stage] = { n, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: v[v.length - 1] ?? 0 };
    }
    return out;
  }
}

function fromEnv(): StageTrace | null {
  const file = process.env.SBDIAG_REPLICA_STAGES;
  if (!file) return null;
  const trace = new StageTrace();
  const dump = (): void => {
    try {
      writeFileSync(`${file}.${process.pid}.json`, JSON.stringify(trace.summary(), null, 1));
    } catch {
      // A diagnostic: a file that cannot be written costs the figures, never the broker.
    }
  };
  setInterval(dump, DUMP_INTERVAL_MS).unref();
  process.once('exit', dump);
  return trace;
}

/** The process's probe, or null (the default: nothing recorded, nothing timed). */
export const stageTrace: StageTrace | null = fromEnv();

/** One replica's view of the probe: the timestamps its stages start from. */
export class ReplicaStageProbe {
  private proposedAt = 0;
  private steppedAt = 0;
  /** The leader's Readys in flight: last entry index, when its appends left, what happened. */
  private sent: Array<{ index: number; at: number; acked: boolean; own: boolean }> = [];

  constructor(private readonly trace: StageTrace) {}

  proposed(): void {
    if (this.proposedAt === 0) this.proposedAt = performance.now();
  }

  /** An append carrying entries was stepped (follower). */
  appendStepped(): void {
    if (this.steppedAt === 0) this.steppedAt = performance.now();
  }

  /** A Ready with entries up to `lastIndex` was taken; `leader`: its appends leave now. */
  readyTaken(leader: boolean, lastIndex: number): number {
    const now = performance.now();
    if (leader && this.proposedAt !== 0) {
      this.trace.record('L.toReady', now - this.proposedAt);
      this.proposedAt = 0;
    }
    if (!leader && this.steppedAt !== 0) {
      this.trace.record('F.toReady', now - this.steppedAt);
      this.steppedAt = 0;
    }
    if (leader) {
      if (this.sent.length >= 1024) this.sent.shift();
      this.sent.push({ index: lastIndex, at: now, acked: false, own: false });
    }
    return now;
  }

  written(leader: boolean, startedAt: number): number {
    const now = performance.now();
    this.trace.record(leader ? 'L.write' : 'F.write', now - startedAt);
    return now;
  }

  durable(leader: boolean, writtenAt: number, lastIndex: number): void {
    const now = performance.now();
    this.trace.record(leader ? 'L.fsync' : 'F.fsync', now - writtenAt);
    this.firstTime(lastIndex, 'own', 'L.ownDurable', now);
  }

  /** A follower acknowledged entries up to `index` (leader). */
  acked(index: number): void {
    this.firstTime(index, 'acked', 'L.firstAck', performance.now());
  }

  /** Records `stage` for every sent Ready up to `index` not marked `flag` yet, and marks it. */
  private firstTime(index: number, flag: 'own' | 'acked', stage: string, now: number): void {
    for (const s of this.sent) {
      if (s.index > index) break;
      if (!s[flag]) {
        s[flag] = true;
        this.trace.record(stage, now - s.at);
      }
    }
  }

  /** Entries up to `index` count as committed and durable (leader). */
  committed(index: number): void {
    if (this.sent.length === 0 || this.sent[0]!.index > index) return;
    const now = performance.now();
    let n = 0;
    while (n < this.sent.length && this.sent[n]!.index <= index) {
      this.trace.record('L.commit', now - this.sent[n]!.at);
      n++;
    }
    this.sent = this.sent.slice(n);
  }
}
