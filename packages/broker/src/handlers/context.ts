// What every request handler works with: the broker's config, logs and metrics, the topic
// registry, the replica manager and the admin queue. Handlers take it as their first argument
// and keep no state of their own.
import type { Logger } from 'pino';
import type { AdminQueue } from '../admin-queue.js';
import type { ClusterNode } from '../cluster-node.js';
import type { BrokerConfig, HostPort } from '../config.js';
import type { BrokerMetrics } from '../metrics.js';
import type { ReplicaManager } from '../replica-manager.js';
import type { TopicRegistry } from '../topic-registry.js';

export interface BrokerContext {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  /** The single-node topic registry (metadata.json); null on a cluster broker. */
  readonly topics: TopicRegistry | null;
  /** The broker's part in a replicated cluster; null on a single-node broker. */
  readonly cluster: ClusterNode | null;
  readonly replicas: ReplicaManager;
  readonly admin: AdminQueue;
  /** True once shutdown has begun. */
  closing(): boolean;
  /** The native listener's address as clients should dial it. */
  advertised(): HostPort;
}

/** The single-node registry; only called on the branch where `b.cluster` is null. */
export function localTopics(b: BrokerContext): TopicRegistry {
  if (b.topics === null) throw new Error('assertion: no local topic registry on a cluster broker');
  return b.topics;
}
