import { describe, expect, it } from 'vitest';
import { LIVENESS_TICKS_MAX, runSeed } from './cluster.js';
import { replayCommand, runSeeds } from './run.js';

describe('deterministic simulator', () => {
  it('runs 300 seeds with every fault kind and no violation', () => {
    const s = runSeeds(1, 300);
    const detail = s.failures.map((f) => `${replayCommand(f.seed)}: ${f.violations[0]?.detail}`);
    expect(detail).toEqual([]);
    expect(s.seedsRun).toBe(300);
    expect(s.committed).toBeGreaterThan(10_000);
    expect(s.reads).toBeGreaterThan(1_000);
    for (const kind of [
      'partition',
      'one-way-cut',
      'crash',
      'torn-write',
      'membership-change',
      'leadership-transfer',
      'compaction',
      'message-lost',
      'message-duplicated',
      // Quiescence (odd seeds): groups went quiet, and quiesced leaders crashed.
      'quiesced-leader-tick',
      'crash-quiesced-leader',
    ]) {
      expect(s.faults[kind] ?? 0, kind).toBeGreaterThan(0);
    }
    expect(s.livenessTicksMax).toBeLessThanOrEqual(LIVENESS_TICKS_MAX);
  });

  it('runs 300 seeds over cold storage (entries not in memory until fetched) cleanly', () => {
    const s = runSeeds(1, 300, { coldStorage: true });
    const detail = s.failures.map(
      (f) => `${replayCommand(f.seed, undefined, true)}: ${f.violations[0]?.detail}`,
    );
    expect(detail).toEqual([]);
    expect(s.seedsRun).toBe(300);
    expect(s.committed).toBeGreaterThan(10_000);
    // The mode did bite: nodes evicted their logs and the core asked for (and got) ranges.
    expect(s.faults.eviction ?? 0).toBeGreaterThan(1_000);
    expect(s.faults['entries-fetched'] ?? 0).toBeGreaterThan(1_000);
    expect(s.livenessTicksMax).toBeLessThanOrEqual(LIVENESS_TICKS_MAX);
    expect(replayCommand(7, undefined, true)).toContain('--cold-storage');
  });

  it('is deterministic: one seed, one run', () => {
    const a = runSeed({ seed: 4242 });
    const b = runSeed({ seed: 4242 });
    expect(b).toEqual(a);
    expect(runSeed({ seed: 4243 }).steps).not.toBe(a.steps);
  });

  it('catches a node that votes twice in a term (election safety)', () => {
    const s = runSeeds(1, 50, { unsafe: { voteTwice: true }, stopAtFirstFailure: true });
    expect(s.failures.length).toBe(1);
    expect(s.failures[0]!.violations.map((v) => v.kind)).toContain('election-safety');
    expect(replayCommand(s.failures[0]!.seed, { voteTwice: true })).toContain(
      '--unsafe-vote-twice',
    );
  });
});
