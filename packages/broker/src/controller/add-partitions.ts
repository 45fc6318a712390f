// Adding partitions to a topic (CreatePartitions, issue 11): the controller's planner for the
// `add-partitions` record (metadata-records.ts tag 15). Pure, like controller-planner.ts.
//
// Rules:
//   1. The topic must exist (UNKNOWN_TOPIC_OR_PARTITION, 3); the count only grows: a count at or
//      below the current one is INVALID_PARTITIONS (37), as in Kafka, and so is one above
//      partitionsPerTopicMax. The cluster-wide total above partitionsTotalMax is POLICY_VIOLATION
//      (44), as for a creation.
//   2. The new partitions have the topic's replication factor (partition 0's replica count, or
//      its reassignment target's while it moves). Without assignments they are placed like a
//      creation's (controller-planner.ts rule 1: Kafka's round robin over the live brokers, least
//      loaded first), so leaders stay spread.
//   3. Assignments given by the client: one replica list per new partition, each of the topic's
//      replication factor, distinct, on live brokers; anything else is
//      INVALID_REPLICA_ASSIGNMENT (39) naming the problem.
//   4. The record carries the new count: planned against a stale count it is a no-op when
//      applied (metadata-state.ts rule 11), so a retried request never adds twice.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import {
  assignReplicas,
  DEFAULT_PLANNER_LIMITS,
  type PlannerLimits,
} from './controller-planner.js';
import {
  type AddPartitionsRecord,
  type MetadataRecord,
  PARTITIONS_MAX,
  replicaListProblem,
} from './metadata-records.js';
import {
  applyRecord,
  leaderCounts,
  liveBrokers,
  type MetadataState,
  partitionCount,
  replicaCounts,
  type TopicState,
  topicByName,
} from './metadata-state.js';

export interface AddPartitionsRequest {
  readonly name: string;
  /** The partition count wanted (the current count plus the ones to add). */
  readonly count: number;
  /** One replica list per new partition (preferred leader first); null: the controller places them. */
  readonly assignments?: readonly (readonly number[])[] | null;
}

function fail(code: number, message: string): never {
  throw new StreamBusError(code, message);
}

/** The topic's replication factor (rule 2). */
export function replicationFactorOf(t: TopicState): number {
  const p = t.partitions[0]!;
  return p.reassignment?.target.length ?? p.replicas.length;
}

/** The `add-partitions` record for `req` (see the rules above); throws typed errors. */
export function planAddPartitions(
  state: MetadataState,
  req: AddPartitionsRequest,
  limits: PlannerLimits = DEFAULT_PLANNER_LIMITS,
): MetadataRecord[] {
  const t = topicByName(state, req.name);
  if (t === undefined) fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic ${req.name}`);
  const had = t.partitions.length;
  if (!Number.isSafeInteger(req.count) || req.count <= had) {
    fail(
      ErrorCode.INVALID_PARTITIONS,
      `topic ${req.name} has ${had} partitions: the count can only grow (asked ${req.count})`,
    );
  }
  const perTopicMax = Math.min(limits.partitionsPerTopicMax, PARTITIONS_MAX);
  if (req.count > perTopicMax) {
    fail(
      ErrorCode.INVALID_PARTITIONS,
      `topic ${req.name}: ${req.count} partitions exceed the most a topic may have (${perTopicMax})`,
    );
  }
  const adding = req.count - had;
  const total = partitionCount(state);
  if (total + adding > limits.partitionsTotalMax) {
    fail(
      ErrorCode.POLICY_VIOLATION,
      `the cluster has ${total} partitions; ${adding} more exceed partitionsTotalMax (${limits.partitionsTotalMax})`,
    );
  }
  const rf = replicationFactorOf(t);
  const live = liveBrokers(state);
  let replicas: number[][];
  if (req.assignments != null) {
    replicas = checkedAssignments(state, req.assignments, adding, rf, had);
  } else {
    if (rf > live.length) {
      fail(
        ErrorCode.INVALID_REPLICATION_FACTOR,
        `topic ${req.name} has replication factor ${rf} but only ${live.length} brokers are live`,
      );
    }
    const leaders = leaderCounts(state);
    const held = replicaCounts(state);
    const order = live
      .map((b) => b.id)
      .sort((a, b) => leaders.get(a)! - leaders.get(b)! || held.get(a)! - held.get(b)! || a - b);
    replicas = assignReplicas(order, adding, rf);
  }
  const record: AddPartitionsRecord = {
    type: 'add-partitions',
    topicId: t.id,
    count: req.count,
    partitions: replicas.map((r) => ({ replicas: r })),
  };
  const applied = applyRecord(state, record);
  if (applied.noop !== null) throw new Error(`assertion: planned a no-op: ${applied.noop}`);
  return [record];
}

function checkedAssignments(
  state: MetadataState,
  assignments: readonly (readonly number[])[],
  adding: number,
  rf: number,
  had: number,
): number[][] {
  if (assignments.length !== adding) {
    fail(
      ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      `${assignments.length} replica assignments for ${adding} new partitions`,
    );
  }
  return assignments.map((list, i) => {
    const what = `partition ${had + i}`;
    const problem = replicaListProblem(list, what);
    if (problem !== null) fail(ErrorCode.INVALID_REPLICA_ASSIGNMENT, problem);
    if (list.length !== rf) {
      fail(
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        `${what}: ${list.length} replicas, the topic's replication factor is ${rf}`,
      );
    }
    for (const id of list) {
      const b = state.brokers.get(id);
      if (b === undefined || b.fenced) {
        fail(
          ErrorCode.INVALID_REPLICA_ASSIGNMENT,
          `${what}: broker ${id} is ${b === undefined ? 'not registered' : 'not live'}`,
        );
      }
    }
    return [...list];
  });
}
