// What a consumer group's members share (issue 10; docs/groups.md): the partition assignors the
// group's leader runs and the consumer-protocol bytes of subscriptions and assignments. Used by
// the SDK's group consumer (the leader assigns) and by the broker's scenario tests.
export {
  ASSIGNORS,
  type Assignor,
  type AssignorMember,
  compareTopicPartitions,
  cooperativeStickyAssignor,
  type GroupAssignment,
  rangeAssignor,
  revokedPartitions,
  roundRobinAssignor,
  stickyTarget,
} from './assignors.js';
export {
  CONSUMER_PROTOCOL_PARTITIONS_MAX,
  CONSUMER_PROTOCOL_TOPICS_MAX,
  CONSUMER_PROTOCOL_USER_DATA_MAX,
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  type MemberAssignment,
  type Subscription,
} from './consumer-protocol.js';
export type { TopicPartition } from './topic-partition.js';
