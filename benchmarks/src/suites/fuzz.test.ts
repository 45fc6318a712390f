// The fuzz suite's short bounded version on every test run: ~12 s of hostile traffic from 8
// attacker connections against a broker child, next to an acks=all producer. The seed is printed
// on failure (rerun: `node benchmarks/dist/main.js fuzz --quick`, or runFuzz with that seed).
import { describe, expect, it } from 'vitest';
import { FUZZ_RSS_BOUND_MIB, runFuzz } from './fuzz.js';

describe('fuzz suite (bounded)', () => {
  it('survives crafted and mutated requests, loses no acknowledged record, stays under the RSS bound', async () => {
    const r = await runFuzz({ durationMs: 12_000, attackers: 8 });
    const context = `seed ${r.seed}: ${JSON.stringify(r)}`;
    expect(r.survived, context).toBe(true);
    expect(r.recordsAcked, context).toBeGreaterThan(0);
    expect(r.recordsLost, context).toBe(0);
    expect(r.peakRssMiB, context).toBeLessThan(FUZZ_RSS_BOUND_MIB);
    expect(r.pingFailures, context).toBe(0);
    expect(r.framesSent, context).toBeGreaterThan(100);
    // Every kind of attack ran at least once.
    expect(Object.keys(r.rounds).length, context).toBe(8);
  }, 60_000);
});
