import { getEventListeners } from 'node:events';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelayMs, type RetryPolicy, retry } from './retry.js';

const policy: RetryPolicy = {
  retriesMax: 3,
  totalTimeoutMs: 10_000,
  backoffInitialMs: 1,
  backoffMaxMs: 4,
};

describe('backoffDelayMs', () => {
  it('is full jitter under an exponential ceiling capped at backoffMaxMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (attempt, r) => {
          const p = { ...policy, backoffInitialMs: 100, backoffMaxMs: 2000 };
          const d = backoffDelayMs(attempt, p, r);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThan(Math.min(2000, 100 * 2 ** (attempt - 1)));
        },
      ),
    );
    expect(backoffDelayMs(1, { ...policy, backoffInitialMs: 100 }, 0.5)).toBe(2);
  });
});

describe('retry', () => {
  it('backoffMaxMsFor lowers the ceiling for the errors it names, and only for them', async () => {
    const slow: RetryPolicy = {
      retriesMax: 3,
      totalTimeoutMs: 60_000,
      backoffInitialMs: 30_000,
      backoffMaxMs: 60_000,
    };
    const seen: number[] = [];
    let calls = 0;
    const t0 = Date.now();
    const v = await retry(
      async () => {
        if (++calls < 4) throw new StreamBusError(ErrorCode.NOT_LEADER_OR_FOLLOWER);
        return 'ok';
      },
      slow,
      {
        random: () => 0.999,
        backoffMaxMsFor: (err) => {
          seen.push(err.code);
          return err.code === ErrorCode.NOT_LEADER_OR_FOLLOWER ? 10 : undefined;
        },
      },
    );
    expect(v).toBe('ok');
    expect(seen).toEqual([6, 6, 6]);
    // Three sleeps of at most 10 ms each, not 30 s and more.
    expect(Date.now() - t0).toBeLessThan(1_000);
    // Another error keeps the policy's ceiling: the first sleep is cut only by the total bound.
    const t1 = Date.now();
    await expect(
      retry(
        async () => {
          throw new StreamBusError(ErrorCode.REQUEST_TIMED_OUT);
        },
        { ...slow, totalTimeoutMs: 300 },
        { random: () => 0.999, backoffMaxMsFor: () => undefined },
      ),
    ).rejects.toMatchObject({ code: ErrorCode.REQUEST_TIMED_OUT });
    expect(Date.now() - t1).toBeGreaterThanOrEqual(290);
  });

  it('backoffInitialMsFor lowers the first backoff for the errors it names; it doubles from there', async () => {
    const policy: RetryPolicy = {
      retriesMax: 4,
      totalTimeoutMs: 60_000,
      backoffInitialMs: 100,
      backoffMaxMs: 2_000,
    };
    const timed = async (code: number, retries: number): Promise<number> => {
      let calls = 0;
      const t0 = performance.now();
      await retry(
        async () => {
          if (++calls <= retries) throw new StreamBusError(code);
          return calls;
        },
        policy,
        {
          random: () => 0.999,
          backoffInitialMsFor: (err) =>
            err.code === ErrorCode.NOT_LEADER_OR_FOLLOWER ? 10 : undefined,
        },
      );
      return performance.now() - t0;
    };
    // Four sleeps of 9 + 19 + 39 + 79 ms (146), not 99 + 199 + 399 + 799 (1496).
    const named = await timed(ErrorCode.NOT_LEADER_OR_FOLLOWER, 4);
    expect(named).toBeGreaterThanOrEqual(140);
    expect(named).toBeLessThan(1_000);
    // Another error keeps the policy's first backoff (99 ms).
    expect(await timed(ErrorCode.REQUEST_TIMED_OUT, 1)).toBeGreaterThanOrEqual(95);
  });

  it('retries retriable errors until success, calling beforeRetry each time', async () => {
    const seen: number[] = [];
    let calls = 0;
    const v = await retry(
      async () => {
        calls++;
        if (calls < 3) throw new StreamBusError(ErrorCode.NOT_LEADER_OR_FOLLOWER);
        return 'ok';
      },
      policy,
      { beforeRetry: (err, attempt) => void seen.push(err.code * 100 + attempt) },
    );
    expect(v).toBe('ok');
    expect(calls).toBe(3);
    expect(seen).toEqual([601, 602]);
  });

  it('does not retry non-retriable errors or foreign exceptions', async () => {
    let calls = 0;
    await expect(
      retry(async () => {
        calls++;
        throw new StreamBusError(ErrorCode.INVALID_RECORD);
      }, policy),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_RECORD });
    expect(calls).toBe(1);
    await expect(
      retry(async () => {
        calls++;
        throw new TypeError('bug');
      }, policy),
    ).rejects.toBeInstanceOf(TypeError);
    expect(calls).toBe(2);
  });

  it('gives up after retriesMax retries with the last error', async () => {
    let calls = 0;
    await expect(
      retry(async () => {
        calls++;
        throw new StreamBusError(ErrorCode.CONNECTION_CLOSED, `attempt ${calls}`);
      }, policy),
    ).rejects.toThrow('attempt 4');
    expect(calls).toBe(4);
  });

  /** Attempts made when each one takes `stepMs` of a fake clock and always fails. */
  async function attemptsUntilGiveUp(stepMs: number, p: RetryPolicy, random = 0.5) {
    let calls = 0;
    let now = 0;
    const code = ErrorCode.NETWORK_EXCEPTION;
    const fail = async () => {
      calls++;
      now += stepMs;
      throw new StreamBusError(code);
    };
    await expect(retry(fail, p, { now: () => now, random: () => random })).rejects.toMatchObject({
      code,
    });
    return calls;
  }

  it('gives up when the total time would be exceeded', async () => {
    const p = { retriesMax: 100, totalTimeoutMs: 1000, backoffInitialMs: 1, backoffMaxMs: 1 };
    expect(await attemptsUntilGiveUp(600, p)).toBe(2);
  });

  it('starts the last retry at the time bound instead of giving up before it', async () => {
    // Every backoff (5 s) is longer than what is left: each sleep is cut to the rest.
    const p = {
      retriesMax: 100,
      totalTimeoutMs: 100,
      backoffInitialMs: 10_000,
      backoffMaxMs: 10_000,
    };
    expect(await attemptsUntilGiveUp(40, p)).toBe(3);
  });

  it('adds one abort listener per signal however many retries sleep at once', async () => {
    const ac = new AbortController();
    const sleeping = Array.from({ length: 50 }, () =>
      retry(
        async () => {
          throw new StreamBusError(ErrorCode.CONNECTION_CLOSED);
        },
        { ...policy, backoffInitialMs: 60_000, backoffMaxMs: 60_000 },
        { signal: ac.signal, random: () => 0.5 },
      ),
    );
    await new Promise((r) => setTimeout(r, 10));
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    ac.abort();
    for (const p of sleeping)
      await expect(p).rejects.toMatchObject({ code: ErrorCode.CLIENT_CLOSED });
  });

  it('stops with CLIENT_CLOSED when aborted', async () => {
    const ac = new AbortController();
    const p = retry(
      async () => {
        ac.abort();
        throw new StreamBusError(ErrorCode.CONNECTION_CLOSED);
      },
      { ...policy, backoffInitialMs: 1000, backoffMaxMs: 1000 },
      { signal: ac.signal },
    );
    await expect(p).rejects.toMatchObject({ code: ErrorCode.CLIENT_CLOSED });
  });
});
