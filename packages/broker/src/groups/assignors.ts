// The assignors live in @streambus/protocol (src/groups/assignors.ts), shared with the SDK's group
// consumer, whose leader runs them; re-exported here for the broker's group code and tests.
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
} from '@streambus/protocol';
