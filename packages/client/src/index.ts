// @streambus/client: the SDK. `new StreamBusClient({ bootstrap })`, then `client.producer()`,
// `client.consumer()`, `client.admin()`; see docs/client.md. Layers, bottom up: connection.ts
// (one socket, framing, correlation, in-flight bound) -> cluster.ts (pool, metadata) ->
// producer.ts / consumer.ts / admin.ts; retry.ts is the one retry function.

export {
  ErrorCode,
  isStreamBusError,
  StreamBusError,
  type TopicPartition,
} from '@streambus/protocol';
export type {
  Admin,
  BrokerDescription,
  ClusterDescription,
  ConfigEntry,
  CreatePartitionsOptions,
  NewTopic,
  OffsetQuery,
  PartitionDescription,
  PartitionReplicasDescription,
  RebalanceLeadersResult,
  RepairResult,
  ReplicaDescription,
  TopicDescription,
} from './admin.js';
export type {
  GroupDescription,
  GroupListing,
  GroupMemberDescription,
  GroupOffsetDescription,
  OffsetReset,
  ResetOffsetsOptions,
  ResetTarget,
} from './admin-groups.js';
export type { Bytes, HeaderInput } from './batch-builder.js';
export { type ClientOptions, StreamBusClient } from './client.js';
export { type BrokerAddress, type PartitionInfo, parseAddress } from './cluster.js';
export type {
  AssignOptions,
  Consumer,
  ConsumerBatch,
  ConsumerOptions,
  ConsumerRecord,
  OffsetResetPolicy,
  StartFrom,
} from './consumer.js';
export type {
  AssignmentEvent,
  AssignorName,
  CommitOffset,
  GroupConsumer,
  GroupConsumerOptions,
  PartitionLag,
  RevocationEvent,
  SeekTarget,
  SubscribeOptions,
} from './group-consumer.js';
export {
  ClientDefaults,
  ConsumerDefaults,
  DEFAULT_BOOTSTRAP,
  GroupDefaults,
  ProducerDefaults,
} from './limits.js';
export { UnknownOptionError } from './options.js';
export type {
  Acks,
  CompressionName,
  Producer,
  ProducerOptions,
  ProducerRecord,
  RecordMetadata,
} from './producer.js';
export { backoffDelayMs, type RetryPolicy } from './retry.js';
