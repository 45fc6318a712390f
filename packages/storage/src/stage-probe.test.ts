import { describe, expect, it } from 'vitest';
import { StageProbe, stageProbe } from './stage-probe.js';

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
      eventLoopDelayMs: { max: number };
    };
    expect(s.stages['log.write']).toMatchObject({ count: 1000, p50: 50.1, p99: 99.1, max: 100 });
    expect(s.stages['log.fsync']).toMatchObject({ count: 1, p50: 3, max: 3 });
    expect(s.eventLoopDelayMs.max).toBeGreaterThanOrEqual(0);
  });
});
