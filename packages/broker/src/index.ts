// @streambus/broker: public entry. The broker daemon: a cluster of one without --peers (see
// docs/broker.md).
export { BROKER_VERSION, Broker, type BrokerOptions } from './broker.js';
export * as cluster from './cluster/index.js';
export {
  type BrokerConfig,
  type BrokerLimits,
  ConfigError,
  DEFAULT_HTTP_PORT,
  DEFAULT_PORT,
  type DurabilityPolicy,
  defaultConfig,
  type HostPort,
  type LogLevel,
  loadConfig,
  parseHostPort,
  type TopicDefaults,
} from './config.js';
export * as controller from './controller/index.js';
export * as groups from './groups/index.js';
export * as kafkaListener from './kafka/index.js';
export { formatPeers, PEERS_MAX, type Peer } from './peers-config.js';
export * as replication from './replication/index.js';
export { runBroker } from './run.js';
export {
  processThreadPoolSize,
  threadPoolSizeOf,
  UV_THREADPOOL_SIZE_DEFAULT,
  withThreadPoolSize,
} from './thread-pool.js';
export { TOPIC_CONFIG_KEYS, type TopicConfig } from './topic-config.js';
