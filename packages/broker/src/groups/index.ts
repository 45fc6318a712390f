// The consumer-group coordinator's pure core (issue 10; docs/groups.md): the group state machine,
// its records and replay, the consumer protocol bytes and the assignors. Exported from the broker
// package as the `groups` namespace. The coordinator's shell (the `__consumer_offsets`
// partition, the LSM materialization, the wire handlers) is not built yet.

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
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  type MemberAssignment,
  type Subscription,
} from './consumer-protocol.js';
export { GroupErrorCode, groupErrorName } from './group-errors.js';
export { GroupScenario, runGroupScenario } from './group-scenario.js';
export { emptyGroup, groupRecord, initialCoordinatorState, step } from './group-state.js';
export {
  decodeGroupRecord,
  durableView,
  type EncodedGroupRecord,
  encodeGroupRecord,
  replay,
} from './records.js';
export * from './types.js';
