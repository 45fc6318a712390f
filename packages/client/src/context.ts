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
}
