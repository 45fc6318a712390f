// The consumer-protocol bytes (Kafka's ConsumerProtocolSubscription / Assignment) live in
// @streambus/protocol (src/groups/consumer-protocol.ts), shared with the SDK; re-exported here.
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
} from '@streambus/protocol';
