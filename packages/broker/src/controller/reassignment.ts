// Partition reassignment (issue 12): moving a partition's replicas to a target set while it stays
// writable. Two pure parts:
//
//   planReassignPartition / planCompleteReassignment   the controller's planner (records)
//   nextReassignmentStep                               what the partition's Raft leader does next
//
// The flow, from `streambus partition reassign T P --replicas 2,3,4`:
//   1. The controller records `reassign-partition`: replicas = target then the leaving ones,
//      adding = target members that were not replicas. Every broker applies it; a broker in
//      `adding` opens an empty replica whose initial voters are the replicas it joins (without
//      itself, so it never campaigns) and waits for the leader.
//   2. The partition's Raft leader runs `nextReassignmentStep` on its house tick, one Raft
//      configuration change at a time (single-server changes; packages/raft has no joint
//      consensus): each adding member joins as a learner, catches up (snapshot plus log, under the
//      reassignment throttle), is promoted to voter once its match reaches the commit index; then
//      each voter outside the target is removed. A leader outside the target hands its leadership
//      to an in-sync target voter before it would remove itself; the new leader carries on.
//   3. Once the voters are exactly the target (no learners), the leader asks the controller to
//      record `complete-reassignment`: replicas = target, and brokers outside it close the
//      replica and delete its data.
// The partition is writable throughout: every step keeps a quorum of caught-up voters.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { type MetadataRecord, replicaListProblem } from './metadata-records.js';
import {
  applyRecord,
  liveBrokers,
  type MetadataState,
  partitionsListing,
  replicaCounts,
  topicByName,
  topicsInOrder,
} from './metadata-state.js';

export interface ReassignRequest {
  readonly topic: string;
  readonly partition: number;
  /** The replica set wanted, preferred leader first. */
  readonly replicas: readonly number[];
}

function fail(code: number, message: string): never {
  throw new StreamBusError(code, message);
}

/** The records that start a reassignment; [] when the partition already has `replicas`. */
export function planReassignPartition(
  state: MetadataState,
  req: ReassignRequest,
): MetadataRecord[] {
  const t = topicByName(state, req.topic);
  const p = t?.partitions[req.partition];
  if (t === undefined || p === undefined) {
    fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown partition ${req.topic}/${req.partition}`);
  }
  const problem = replicaListProblem(req.replicas, 'target replicas');
  if (problem !== null) fail(ErrorCode.INVALID_REPLICA_ASSIGNMENT, problem);
  for (const id of req.replicas) {
    const b = state.brokers.get(id);
    if (b === undefined || b.fenced) {
      fail(
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        `broker ${id} is ${b === undefined ? 'not registered' : 'not live'}: it cannot take a replica`,
      );
    }
  }
  if (p.reassignment !== undefined) {
    fail(
      ErrorCode.REASSIGNMENT_IN_PROGRESS,
      `${req.topic}/${req.partition} is already moving to [${p.reassignment.target.join(',')}]`,
    );
  }
  const same =
    p.replicas.length === req.replicas.length &&
    p.replicas.every((id, i) => req.replicas[i] === id);
  if (same) return [];
  const record: MetadataRecord = {
    type: 'reassign-partition',
    topicId: t.id,
    partition: req.partition,
    replicas: [...req.replicas, ...p.replicas.filter((id) => !req.replicas.includes(id))],
    target: [...req.replicas],
    adding: req.replicas.filter((id) => !p.replicas.includes(id)),
  };
  const applied = applyRecord(state, record);
  if (applied.noop !== null) throw new Error(`assertion: planned a no-op: ${applied.noop}`);
  return [record];
}

/**
 * The records that finish a reassignment, asked by the partition's leader once its Raft voters
 * are the target: [] when none is in progress any more (a retried request).
 */
export function planCompleteReassignment(
  state: MetadataState,
  req: { readonly topicId: number; readonly partition: number; readonly voters: readonly number[] },
): MetadataRecord[] {
  const p = state.topics.get(req.topicId)?.partitions[req.partition];
  if (p === undefined) {
    fail(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `partition ${req.topicId}/${req.partition} does not exist`,
    );
  }
  const ra = p.reassignment;
  if (ra === undefined) return [];
  const voters = [...req.voters].sort((a, b) => a - b);
  const target = [...ra.target].sort((a, b) => a - b);
  if (voters.length !== target.length || voters.some((id, i) => target[i] !== id)) {
    fail(
      ErrorCode.INVALID_REQUEST,
      `the voters [${voters.join(',')}] are not the target [${target.join(',')}] yet`,
    );
  }
  const record: MetadataRecord = {
    type: 'complete-reassignment',
    topicId: req.topicId,
    partition: req.partition,
  };
  const applied = applyRecord(state, record);
  if (applied.noop !== null) fail(ErrorCode.NOT_ENOUGH_REPLICAS, applied.noop);
  return [record];
}

/**
 * `partition reassign T P --cancel`: the replicas being added leave at once (their brokers close
 * and delete them), replicas and the target become the replicas before the move, and the
 * partition's leader removes the learners (or a member already promoted) from its Raft group and
 * completes it as any reassignment (metadata-state.ts rule 12). INVALID_REQUEST when nothing is
 * moving or nothing is being added (a shrink, or a cancel already recorded: both finish by
 * themselves).
 */
export function planCancelReassignment(
  state: MetadataState,
  req: { readonly topic: string; readonly partition: number },
): MetadataRecord[] {
  const t = topicByName(state, req.topic);
  const p = t?.partitions[req.partition];
  if (t === undefined || p === undefined) {
    fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown partition ${req.topic}/${req.partition}`);
  }
  const ra = p.reassignment;
  if (ra === undefined) {
    fail(ErrorCode.INVALID_REQUEST, `${req.topic}/${req.partition} is not being reassigned`);
  }
  if (ra.adding.length === 0) {
    fail(
      ErrorCode.INVALID_REQUEST,
      `${req.topic}/${req.partition} is moving to [${ra.target.join(',')}] without adding a replica (or its cancel is recorded): nothing to cancel, it completes by itself`,
    );
  }
  const record: MetadataRecord = {
    type: 'cancel-reassignment',
    topicId: t.id,
    partition: req.partition,
  };
  const applied = applyRecord(state, record);
  if (applied.noop !== null) fail(ErrorCode.NOT_ENOUGH_REPLICAS, applied.noop);
  return [record];
}

// ---- decommission ----

/**
 * `cluster decommission ID`, one round: every partition listing `brokerId` as a replica and not
 * being reassigned is moved off it (the broker replaced in place by the live broker outside the
 * partition's replicas with the fewest replicas, counting this plan's moves, lowest id on a tie).
 * [] when nothing can move now (all moved, or the rest are still reassigning: the caller repeats
 * the round until `partitionsListing` finds nothing, then plans `planUnregisterBroker`).
 */
export function planDecommission(state: MetadataState, brokerId: number): MetadataRecord[] {
  if (!state.brokers.has(brokerId)) {
    fail(ErrorCode.BROKER_ID_NOT_REGISTERED, `broker ${brokerId} is not registered`);
  }
  const counts = replicaCounts(state);
  const live = liveBrokers(state)
    .map((b) => b.id)
    .filter((id) => id !== brokerId);
  const records: MetadataRecord[] = [];
  let s = state;
  for (const t of topicsInOrder(state)) {
    t.partitions.forEach((p, i) => {
      if (!p.replicas.includes(brokerId) || p.reassignment !== undefined) return;
      const free = live
        .filter((id) => !p.replicas.includes(id))
        .sort((a, b) => (counts.get(a) ?? 0) - (counts.get(b) ?? 0) || a - b);
      const to = free[0];
      if (to === undefined) {
        fail(
          ErrorCode.INVALID_REPLICA_ASSIGNMENT,
          `no live broker outside [${p.replicas.join(',')}] can take broker ${brokerId}'s replica of ${t.name}/${i}`,
        );
      }
      counts.set(to, (counts.get(to) ?? 0) + 1);
      const replicas = p.replicas.map((id) => (id === brokerId ? to : id));
      const plan = planReassignPartition(s, { topic: t.name, partition: i, replicas });
      for (const r of plan) s = applyRecord(s, r).state;
      records.push(...plan);
    });
  }
  return records;
}

/** The decommissioned broker leaves the registry: refused while a partition still lists it. */
export function planUnregisterBroker(state: MetadataState, brokerId: number): MetadataRecord[] {
  const b = state.brokers.get(brokerId);
  if (b === undefined) return [];
  const holds = partitionsListing(state, brokerId);
  if (holds !== null) {
    fail(
      ErrorCode.REASSIGNMENT_IN_PROGRESS,
      `broker ${brokerId} still holds a replica of ${holds}: its replicas move off first`,
    );
  }
  return [{ type: 'unregister-broker', brokerId, brokerEpoch: b.brokerEpoch }];
}

// ---- the leader's driver ----

export interface ReassignmentView {
  /** The broker running the step: the partition's Raft leader. */
  readonly self: number;
  readonly target: readonly number[];
  /** The Raft configuration in force (latest entry). */
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  /** A configuration change is proposed and not yet committed. */
  readonly changePending: boolean;
  /** The follower's (learners included) Raft match index reaches the commit index. */
  readonly caughtUp: (id: number) => boolean;
  /** Voters the leader counts in sync (partition-replica.ts `inSyncReplicas`). */
  readonly inSync: readonly number[];
}

export type ReassignmentStep =
  | { readonly kind: 'wait'; readonly why: string }
  | { readonly kind: 'add-learner'; readonly node: number }
  | { readonly kind: 'promote'; readonly node: number }
  | { readonly kind: 'remove'; readonly node: number }
  | { readonly kind: 'transfer'; readonly to: number }
  | { readonly kind: 'complete' };

/** The next thing the leader does for a reassignment (see the top of the file). */
export function nextReassignmentStep(v: ReassignmentView): ReassignmentStep {
  if (v.changePending) return { kind: 'wait', why: 'a configuration change is in flight' };
  const members = new Set([...v.voters, ...v.learners]);
  // Learners of this group that are not wanted (a reassignment's target changed): removed.
  for (const id of v.learners) {
    if (!v.target.includes(id)) return { kind: 'remove', node: id };
  }
  for (const id of v.target) {
    if (!members.has(id)) return { kind: 'add-learner', node: id };
  }
  for (const id of v.target) {
    if (!v.learners.includes(id)) continue;
    if (v.caughtUp(id)) return { kind: 'promote', node: id };
  }
  if (v.learners.length > 0) return { kind: 'wait', why: 'a learner is catching up' };
  // Every target member votes; the others leave, this leader last (after a hand-over).
  for (const id of v.voters) {
    if (!v.target.includes(id) && id !== v.self) return { kind: 'remove', node: id };
  }
  if (!v.target.includes(v.self)) {
    const to = v.target.find((id) => id !== v.self && v.inSync.includes(id));
    return to === undefined
      ? { kind: 'wait', why: 'no target voter is in sync to take the leadership' }
      : { kind: 'transfer', to };
  }
  return { kind: 'complete' };
}
