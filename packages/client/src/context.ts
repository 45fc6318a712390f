// What the producer, consumer and admin of one client share: the cluster view, the retry policy
// and the client's abort signal. `run` is the single place where operations enter the retry
// layer (retry.ts), with the cluster's stale-metadata hook.
import { ErrorCode, type StreamBusError } from '@streambus/protocol';
import type { Cluster } from './cluster.js';
import { ClientDefaults } from './limits.js';
import { type RetryHooks, type RetryPolicy, retry } from './retry.js';

/**
 * Errors that say a partition's leader moved or is being elected: the cluster answers again
 * within about one election (~1-2 s), and the metadata refresh before each retry is what finds
 * the new leader.
 */
const LEADER_MOVED: ReadonlySet<number> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
  ErrorCode.NETWORK_EXCEPTION,
  // The broker closed the connection with requests pending: a controlled shutdown's last step
  // (its leaderships have moved), or a crash.
  ErrorCode.CONNECTION_CLOSED,
]);

export class ClientContext {
  constructor(
    readonly cluster: Cluster,
    readonly retryPolicy: RetryPolicy,
    readonly signal: AbortSignal,
  ) {}

  /** Runs `fn` under the retry policy; `topic` scopes metadata invalidation. */
  run<T>(
    fn: (attempt: number) => Promise<T>,
    topic?: string,
    policy?: RetryPolicy,
    hooks: Pick<RetryHooks, 'backoffMaxMsFor' | 'backoffInitialMsFor'> = {},
  ): Promise<T> {
    return retry(fn, policy ?? this.retryPolicy, {
      ...hooks,
      signal: this.signal,
      beforeRetry: (err: StreamBusError) => this.cluster.handleRetriableError(err, topic),
    });
  }

  /**
   * Runs `fn` under the retry policy's backoff with no cap on the number of retries, until
   * `deadlineMs` (epoch ms): no retry starts after it (the producer's delivery timeout). While
   * a leader moves (LEADER_MOVED) the backoff starts at `leaderMovedBackoffInitialMs` and
   * stays at most `leaderMovedBackoffMaxMs`: the
   * bound is the deadline, not a count, so retrying sooner costs no budget, and a send reaches
   * the new leader within about that much of its election instead of up to `backoffMaxMs`
   * later (the failover and rolling-restart tails). Metadata refreshes of one topic are shared
   * (cluster.ts), so many partitions retrying do not multiply them.
   */
  runUntil<T>(fn: (attempt: number) => Promise<T>, deadlineMs: number, topic?: string): Promise<T> {
    return this.run(
      fn,
      topic,
      {
        ...this.retryPolicy,
        retriesMax: Number.MAX_SAFE_INTEGER,
        totalTimeoutMs: Math.max(0, deadlineMs - Date.now()),
      },
      {
        backoffMaxMsFor: (err) =>
          LEADER_MOVED.has(err.code) ? ClientDefaults.leaderMovedBackoffMaxMs : undefined,
        backoffInitialMsFor: (err) =>
          LEADER_MOVED.has(err.code) ? ClientDefaults.leaderMovedBackoffInitialMs : undefined,
      },
    );
  }
}
