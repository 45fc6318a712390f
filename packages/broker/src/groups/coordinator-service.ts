// The group coordinator as both front ends see it (issue 10; docs/groups.md): the native group
// handlers (handlers/groups.ts) and the Kafka listener's classic group APIs translate their
// requests into `GroupRequest`s and their answers from `GroupResponse`s, and nothing else of the
// coordinator. The implementation hosts one pure coordinator state (group-state.ts) per
// `__consumer_offsets` partition this broker leads, writes its records through that partition,
// keeps the materialized state in the LSM store, and answers NOT_COORDINATOR for groups it does
// not coordinate.
//
// Time: front ends pass timeouts in milliseconds; `groupTicks` converts them to the state
// machine's ticks (GROUP_TICK_MS each), rounding up so a timeout is never shortened.
import type { GroupEvent, GroupResponse } from './types.js';

/** The coordinator's tick: every timeout in the state machine is a count of these. */
export const GROUP_TICK_MS = 100;

export function groupTicks(ms: number): number {
  return Math.max(0, Math.ceil(ms / GROUP_TICK_MS));
}

type RequestEvent = Exclude<GroupEvent, { readonly type: 'tick' } | { readonly type: 'topics' }>;
/** A front end's request: a group event without the request id the coordinator assigns. */
export type GroupRequest = RequestEvent extends infer E
  ? E extends RequestEvent
    ? Omit<E, 'requestId'>
    : never
  : never;
export type GroupRequestType = GroupRequest['type'];
/** The response kind answering a request type (`join` -> the join response, ...). */
export type GroupResponseFor<T extends GroupRequestType> = Extract<GroupResponse, { kind: T }>;

/** Where a group's coordinator is, from this broker's applied metadata. */
export interface CoordinatorLocation {
  /** The `__consumer_offsets` partition holding the group. */
  readonly partition: number;
  /** That partition's leader: the coordinator's broker. */
  readonly nodeId: number;
}

export interface GroupCoordinatorService {
  /**
   * The coordinator of a group. Throws StreamBusError COORDINATOR_NOT_AVAILABLE (retriable)
   * while `__consumer_offsets` does not exist yet (it is created on first use) or the group's
   * partition has no leader, and INVALID_GROUP_ID for an empty or oversized id.
   */
  locate(groupId: string): Promise<CoordinatorLocation>;
  /**
   * Runs one request on the coordinator hosted here. Rejects with StreamBusError
   * NOT_COORDINATOR when this broker does not lead the group's partition, and
   * COORDINATOR_LOAD_IN_PROGRESS while it is catching up after becoming leader. Joins and syncs
   * resolve when their rebalance phase completes (bounded by the rebalance timeout); group
   * errors (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, ...) come back in the
   * response's `error`, not as a rejection. A response that changes state resolves only after
   * its records are committed in the partition (acks=all).
   */
  request<T extends GroupRequest>(req: T): Promise<GroupResponseFor<T['type']>>;
  /** Every group this broker coordinates (ListGroups is per broker, as in Kafka). */
  listLocal(): Promise<GroupResponseFor<'list'>>;
}
