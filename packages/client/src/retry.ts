// The one retry function of the SDK. Every operation that talks to a broker (produce, fetch,
// metadata, admin calls) runs through `retry()`; no other layer loops. It retries only
// StreamBusErrors whose `retriable` flag (from the shared error table) is set, a bounded number
// of times and within a bounded total time, sleeping with exponential backoff and full jitter
// (delay = random(0, min(max, initial * 2^attempt))). Before each retry it calls `beforeRetry`,
// which the cluster uses to drop stale metadata (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_...).
// It does not decide what is retriable, open connections or log.
import { ErrorCode, StreamBusError } from '@streambus/protocol';

export interface RetryPolicy {
  /** Retries after the first attempt (0 = try once). */
  readonly retriesMax: number;
  /** No retry starts after this much time since the first attempt. */
  readonly totalTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
}

export interface RetryHooks {
  /** Called before sleeping ahead of retry number `attempt` (1-based). */
  readonly beforeRetry?: (error: StreamBusError, attempt: number) => void | Promise<void>;
  /** Aborts the sleep and the loop (client closed). */
  readonly signal?: AbortSignal;
  /** Injected randomness for tests; defaults to Math.random. */
  readonly random?: () => number;
  readonly now?: () => number;
}

/** Full-jitter exponential backoff: a pure function of the attempt and a random in [0, 1). */
export function backoffDelayMs(attempt: number, policy: RetryPolicy, random: number): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffInitialMs * 2 ** (attempt - 1));
  return Math.floor(random * ceiling);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new StreamBusError(ErrorCode.CLIENT_CLOSED));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new StreamBusError(ErrorCode.CLIENT_CLOSED));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, throws something that is not a retriable StreamBusError, or the
 * policy's bounds are reached (then the last error is thrown). `fn` receives the attempt number
 * (0 = first).
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  hooks: RetryHooks = {},
): Promise<T> {
  const now = hooks.now ?? Date.now;
  const random = hooks.random ?? Math.random;
  const startedMs = now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof StreamBusError) || !err.retriable) throw err;
      if (hooks.signal?.aborted) throw new StreamBusError(ErrorCode.CLIENT_CLOSED);
      const next = attempt + 1;
      if (next > policy.retriesMax) throw err;
      const delayMs = backoffDelayMs(next, policy, random());
      if (now() + delayMs - startedMs > policy.totalTimeoutMs) throw err;
      await hooks.beforeRetry?.(err, next);
      await sleep(delayMs, hooks.signal);
    }
  }
}
