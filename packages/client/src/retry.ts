// The one retry function of the SDK. Every operation that talks to a broker (produce, fetch,
// metadata, admin calls) runs through `retry()`; no other layer loops. It retries only
// StreamBusErrors whose `retriable` flag (from the shared error table) is set, a bounded number
// of times and within a bounded total time (the producer passes its delivery timeout as that
// bound, with no cap on the count: context.ts `runUntil`), sleeping with exponential backoff and full jitter
// (delay = random(0, min(max, initial * 2^attempt))). Before each retry it calls `beforeRetry`,
// which the cluster uses to drop stale metadata (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_...);
// when the hook says the error itself fixed the route (a refusal naming the partition's leader:
// cluster.ts `applyHint`), the retry goes at once, without a backoff sleep. The hook bounds that
// (a hint is followed only for a newer leader epoch), so it cannot spin.
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
  /**
   * Called before sleeping ahead of retry number `attempt` (1-based). Returning true skips the
   * sleep: the error told where to go (a leader hint), and waiting would only delay the retry.
   */
  readonly beforeRetry?: (
    error: StreamBusError,
    attempt: number,
  ) => undefined | boolean | Promise<undefined | boolean>;
  /** Aborts the sleep and the loop (client closed). */
  readonly signal?: AbortSignal;
  /**
   * A lower backoff ceiling for this error, if any (the producer's deliveries when a leader
   * moved: context.ts `runUntil`); undefined keeps the policy's `backoffMaxMs`.
   */
  readonly backoffMaxMsFor?: (error: StreamBusError) => number | undefined;
  /**
   * A lower first backoff for this error, if any (the producer's deliveries when a leader
   * moved: its first retry goes out within a few ms, the doubling starts from there).
   */
  readonly backoffInitialMsFor?: (error: StreamBusError) => number | undefined;
  /** Injected randomness for tests; defaults to Math.random. */
  readonly random?: () => number;
  readonly now?: () => number;
}

/** Full-jitter exponential backoff: a pure function of the attempt and a random in [0, 1). */
export function backoffDelayMs(attempt: number, policy: RetryPolicy, random: number): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffInitialMs * 2 ** (attempt - 1));
  return Math.floor(random * ceiling);
}

/**
 * Sleepers per abort signal, woken by ONE 'abort' listener per signal: a listener per sleep
 * crossed the EventTarget warning threshold (MaxListenersExceededWarning) as soon as more than
 * ten operations (partitions riding out a broker restart) slept at once.
 */
const sleepersBySignal = new WeakMap<AbortSignal, Set<() => void>>();

function sleepersOf(signal: AbortSignal): Set<() => void> {
  let set = sleepersBySignal.get(signal);
  if (set === undefined) {
    const created = new Set<() => void>();
    set = created;
    sleepersBySignal.set(signal, created);
    signal.addEventListener(
      'abort',
      () => {
        for (const wake of [...created]) wake();
        created.clear();
      },
      { once: true },
    );
  }
  return set;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new StreamBusError(ErrorCode.CLIENT_CLOSED));
      return;
    }
    const sleepers = signal === undefined ? null : sleepersOf(signal);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new StreamBusError(ErrorCode.CLIENT_CLOSED));
    };
    const timer = setTimeout(() => {
      sleepers?.delete(onAbort);
      resolve();
    }, ms);
    sleepers?.add(onAbort);
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
      // The last retry starts at the bound at the latest (the sleep is cut to what is left).
      const leftMs = startedMs + policy.totalTimeoutMs - now();
      if (leftMs <= 0) throw err;
      const ceilingMs = hooks.backoffMaxMsFor?.(err);
      const initialMs = hooks.backoffInitialMsFor?.(err);
      const backoff = {
        ...policy,
        backoffMaxMs: Math.min(policy.backoffMaxMs, ceilingMs ?? Number.POSITIVE_INFINITY),
        backoffInitialMs: Math.min(policy.backoffInitialMs, initialMs ?? Number.POSITIVE_INFINITY),
      };
      const delayMs = Math.min(backoffDelayMs(next, backoff, random()), leftMs);
      const rerouted = await hooks.beforeRetry?.(err, next);
      if (rerouted !== true) await sleep(delayMs, hooks.signal);
    }
  }
}
