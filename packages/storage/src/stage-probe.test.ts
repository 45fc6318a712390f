import { describe, expect, it } from 'vitest';
import { quantileOf, StageProbe, StageSamples, stageProbe } from './stage-probe.js';

describe('stage probe', () => {
  it('is off unless SB_STAGE_PROBE_FILE was set at start', () => {
    expect(process.env.SB_STAGE_PROBE_FILE ?? '').toBe('');
    expect(stageProbe()).toBeNull();
  });

  it('summarizes each stage by quantiles of what it recorded', () => {
    const p = new StageProbe();
    for (let i = 1; i <= 1000; i++) p.record('log.write', i / 10);
    p.record('log.fsync', 3);
    const s = p.summary() as {
      stages: Record<string, { count: number; p50: number; p99: number; max: number }>;
    };
    expect(s.stages['log.write']).toMatchObject({ count: 1000, p50: 50.1, p99: 99.1, max: 100 });
    expect(s.stages['log.fsync']).toMatchObject({ count: 1, p50: 3, max: 3 });
  });

  it('keeps the first samples of a stage, or with ring the newest, and bounds the stage names', () => {
    const first = new StageSamples(2000, 2);
    const ring = new StageSamples(2000, 2, true);
    for (let i = 0; i < 5000; i++) {
      first.record('a', i);
      ring.record('a', i);
    }
    first.record('b', 1);
    first.record('c', 1); // a third name is not kept
    const [a, ...rest] = [...first.sorted()];
    const [name, seen, kept] = a!;
    expect([name, seen, kept.length, kept[0], kept[kept.length - 1]]).toEqual([
      'a',
      5000,
      2000,
      0,
      1999,
    ]);
    expect(rest.map(([n]) => n)).toEqual(['b']);
    const [, ringSeen, newest] = [...ring.sorted()][0]!;
    expect([ringSeen, newest.length, newest[0], newest[newest.length - 1]]).toEqual([
      5000, 2000, 3000, 4999,
    ]);
    expect(quantileOf(newest, 0.5)).toBe(4000);
    expect(quantileOf(new Float64Array(0), 0.5)).toBe(0);
  });
});
