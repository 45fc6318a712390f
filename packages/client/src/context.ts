// What the producer, consumer and admin of one client share: the cluster view, the retry policy
// and the client's abort signal. `run` is the single place where operations enter the retry
// layer (retry.ts), with the cluster's stale-metadata hook.
import type { StreamBusError } from '@streambus/protocol';
import type { Cluster } from './cluster.js';
import { type RetryPolicy, retry } from './retry.js';

export class ClientContext {
  constructor(
    readonly cluster: Cluster,
    readonly retryPolicy: RetryPolicy,
    readonly signal: AbortSignal,
  ) {}

  /** Runs `fn` under the retry policy; `topic` scopes metadata invalidation. */
  run<T>(fn: (attempt: number) => Promise<T>, topic?: string, policy?: RetryPolicy): Promise<T> {
    return retry(fn, policy ?? this.retryPolicy, {
      signal: this.signal,
      beforeRetry: (err: StreamBusError) => this.cluster.handleRetriableError(err, topic),
    });
  }

  /**
   * Runs `fn` under the retry policy's backoff with no cap on the number of retries, until
   * `deadlineMs` (epoch ms): no retry starts after it (the producer's delivery timeout).
   */
  runUntil<T>(fn: (attempt: number) => Promise<T>, deadlineMs: number, topic?: string): Promise<T> {
    return this.run(fn, topic, {
      ...this.retryPolicy,
      retriesMax: Number.MAX_SAFE_INTEGER,
      totalTimeoutMs: Math.max(0, deadlineMs - Date.now()),
    });
  }
}
