// What every request handler works with: the broker's config, logs and metrics, its cluster
// node (controller state, forwarding), the replica manager and the admin queue. Handlers take it as their first argument
// and keep no state of their own.
import type { Logger } from 'pino';
import type { AdminQueue } from '../admin-queue.js';
import type { ClusterNode } from '../cluster-node.js';
import type { BrokerConfig, HostPort } from '../config.js';
import type { BrokerMetrics } from '../metrics.js';
import type { ReplicaManager } from '../replica-manager.js';

export interface BrokerContext {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  /** The broker's part in its cluster (a cluster of one without --peers). */
  readonly cluster: ClusterNode;
  readonly replicas: ReplicaManager;
  readonly admin: AdminQueue;
  /** True once shutdown has begun. */
  closing(): boolean;
  /** The native listener's address as clients should dial it. */
  advertised(): HostPort;
}
