// The consumer-group coordinator's pure core (issue 10; docs/groups.md): the group state machine,
// its records and replay, the consumer protocol bytes and the assignors. Exported from the broker
// package as the `groups` namespace; and the coordinator's shell over `__consumer_offsets`
// (coordinator.ts, coordinator-partition.ts, group-store.ts, offsets-topic.ts).

// The assignors and the consumer-protocol bytes live in @streambus/protocol (shared with the SDK;
// import them from there).
export {
  type AttachedPartition,
  type CoordinatorHost,
  GROUP_STATE_DIR,
  GroupCoordinator,
  type GroupCoordinatorOptions,
} from './coordinator.js';
export {
  type CoordinatorLocation,
  GROUP_TICK_MS,
  type GroupCoordinatorService,
  type GroupRequest,
  type GroupRequestType,
  type GroupResponseFor,
  groupTicks,
} from './coordinator-service.js';
export { GroupErrorCode, groupErrorName } from './group-errors.js';
export { GroupScenario, runGroupScenario } from './group-scenario.js';
export { emptyGroup, groupRecord, initialCoordinatorState, step } from './group-state.js';
export { type GroupCheckpoint, GroupStateStore } from './group-store.js';
export {
  checkClientTopic,
  groupPartition,
  isInternalTopic,
  javaStringHashCode,
  OFFSETS_TOPIC,
  OFFSETS_TOPIC_CONFIGS,
} from './offsets-topic.js';
export {
  decodeGroupRecord,
  durableView,
  type EncodedGroupRecord,
  encodeGroupRecord,
  replay,
} from './records.js';
export * from './types.js';
