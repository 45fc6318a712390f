import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import type { Cluster } from './cluster.js';
import { ClientContext } from './context.js';

describe('ClientContext.runUntil (a delivery)', () => {
  // A policy whose backoff alone would wait seconds.
  const slow = {
    retriesMax: 5,
    totalTimeoutMs: 60_000,
    backoffInitialMs: 5_000,
    backoffMaxMs: 10_000,
  };

  const failing = (codes: number[]) => {
    const seen: number[] = [];
    const cluster = {
      handleRetriableError: (err: StreamBusError) => void seen.push(err.code),
    } as unknown as Cluster;
    const ctx = new ClientContext(cluster, slow, new AbortController().signal);
    let calls = 0;
    const run = () =>
      ctx.runUntil(async () => {
        const code = codes[calls++];
        if (code !== undefined) throw new StreamBusError(code, 'moved');
        return calls;
      }, Date.now() + 60_000);
    return { run, seen };
  };

  it('retries a leader move (a connection the broker closed included) within ms, not the policy backoff', async () => {
    const { run, seen } = failing([
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
      ErrorCode.CONNECTION_CLOSED,
      ErrorCode.CONNECTION_CLOSED,
      ErrorCode.CONNECTION_CLOSED,
      ErrorCode.NETWORK_EXCEPTION,
      ErrorCode.LEADER_NOT_AVAILABLE,
    ]);
    const t0 = performance.now();
    expect(await run()).toBe(7);
    // Sleeps of at most 10 + 20 + 40 + 80 + 100 + 100 ms, not seconds each (full jitter of 5 s
    // and more: three of them all short is unlikely).
    expect(performance.now() - t0).toBeLessThan(1_000);
    // Each error went to the cluster's hook first (it drops the stale metadata).
    expect(seen).toEqual([6, 1003, 1003, 1003, 13, 5]);
  });
});
