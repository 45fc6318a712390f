// What a broker derives from the controller's applied metadata state (controller/
// metadata-state.ts), as pure functions:
//   - `planReplicas(prev, next, self)`: which partition replicas this broker must open, close
//     (and delete), or reconfigure after a step of the metadata log. The broker reacts to applied
//     records through this plan, never inline in an admin request.
//   - `metadataFromState` / `describeClusterFromState`: the Metadata and DescribeCluster answers
//     every broker gives, identical on every broker that applied the same log.
//   - `withRaftLeaders`: the Metadata answer corrected by what this broker's own replicas know
//     of a partition's Raft leader in a term the state has not recorded yet.
// The state is copy-on-write: a topic whose TopicState object did not change is skipped, so a
// plan costs O(topics) reference checks plus the work of the topics that changed.

import type { DescribeClusterResponse } from '@streambus/protocol';
import { ErrorCode, type MetadataResponse } from '@streambus/protocol';
import type { ConfigEntry } from './controller/metadata-records.js';
import {
  brokersInOrder,
  isLive,
  leaderCounts,
  liveBrokers,
  type MetadataState,
  replicaCounts,
  type TopicState,
  topicByName,
} from './controller/metadata-state.js';

export interface HeldReplica {
  readonly topicId: number;
  readonly topic: string;
  readonly partition: number;
  /** The partition's replicas (the Raft group's initial voters), preferred leader first. */
  readonly replicas: readonly number[];
  readonly configs: readonly ConfigEntry[];
}

export interface ReplicaPlan {
  /** Assigned to this broker now and not before: open (creating the directory when new). */
  readonly open: HeldReplica[];
  /** Held before and not any more (topic deleted, or replica moved away): close, delete data. */
  readonly close: HeldReplica[];
  /** Topics held here whose config overrides changed. */
  readonly reconfigure: Array<{ topicId: number; topic: string; configs: readonly ConfigEntry[] }>;
}

function held(t: TopicState, self: number): HeldReplica[] {
  const out: HeldReplica[] = [];
  t.partitions.forEach((p, i) => {
    if (p.replicas.includes(self)) {
      out.push({
        topicId: t.id,
        topic: t.name,
        partition: i,
        // A replica joining by reassignment starts as a learner: its initial voters are the
        // replicas it joins, without the ones being added (controller/reassignment.ts).
        replicas:
          p.reassignment === undefined
            ? p.replicas
            : p.replicas.filter((id) => !p.reassignment!.adding.includes(id)),
        configs: t.configs,
      });
    }
  });
  return out;
}

function sameConfigs(a: readonly ConfigEntry[], b: readonly ConfigEntry[]): boolean {
  return a.length === b.length && a.every((e, i) => e.key === b[i]?.key && e.value === b[i]?.value);
}

export function planReplicas(prev: MetadataState, next: MetadataState, self: number): ReplicaPlan {
  const plan: ReplicaPlan = { open: [], close: [], reconfigure: [] };
  if (prev.topics === next.topics) return plan;
  for (const [id, before] of prev.topics) {
    const after = next.topics.get(id);
    if (after === before) continue;
    if (after === undefined) {
      plan.close.push(...held(before, self));
      continue;
    }
    const was = new Set(held(before, self).map((h) => h.partition));
    const now = held(after, self);
    const nowSet = new Set(now.map((h) => h.partition));
    for (const h of held(before, self)) if (!nowSet.has(h.partition)) plan.close.push(h);
    for (const h of now) if (!was.has(h.partition)) plan.open.push(h);
    if (now.length > 0 && !sameConfigs(before.configs, after.configs)) {
      plan.reconfigure.push({ topicId: id, topic: after.name, configs: after.configs });
    }
  }
  for (const [id, after] of next.topics) {
    if (!prev.topics.has(id)) plan.open.push(...held(after, self));
  }
  return plan;
}

/** Every replica `self` holds in `state` (start-up: open them all). */
export function heldReplicas(state: MetadataState, self: number): HeldReplica[] {
  const out: HeldReplica[] = [];
  for (const t of [...state.topics.values()].sort((a, b) => a.id - b.id))
    out.push(...held(t, self));
  return out;
}

/**
 * The Metadata answer from the state: `names` (null: every topic), live brokers only (a fenced
 * broker is not offered to clients), a partition without a leader answered LEADER_NOT_AVAILABLE
 * (retriable: the client refreshes).
 */
export function metadataFromState(
  state: MetadataState,
  names: readonly string[] | null,
  controllerId: number,
): MetadataResponse {
  const wanted = names ?? [...state.topicIdsByName.keys()].sort();
  const topics: MetadataResponse['topics'] = wanted.map((name) => {
    const t = topicByName(state, name);
    if (t === undefined) {
      return {
        errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        errorMessage: `unknown topic ${name}`,
        name,
        partitions: [],
      };
    }
    return {
      errorCode: 0,
      name,
      partitions: t.partitions.map((p, i) => ({
        ...(p.leader === -1
          ? {
              errorCode: ErrorCode.LEADER_NOT_AVAILABLE,
              errorMessage: `partition ${name}-${i} has no live in-sync replica to lead it`,
            }
          : { errorCode: 0 }),
        partition: i,
        leaderId: p.leader,
        leaderEpoch: p.leaderEpoch,
        replicas: [...p.replicas],
        isr: [...p.isr],
      })),
    };
  });
  return {
    clusterId: state.clusterId ?? '',
    controllerId,
    brokers: liveBrokers(state).map((b) => ({
      nodeId: b.id,
      host: b.host,
      port: b.port,
      rack: null,
    })),
    topics,
  };
}

/** What this broker's replica of a partition knows of the partition's Raft leader. */
export interface RaftLeaderView {
  readonly leaderId: number;
  /** The leader's term (the leader epoch it reports). */
  readonly leaderEpoch: number;
}

/**
 * The Metadata answer, with each partition whose replica here knows a Raft leader of a LATER
 * term than the state's leader epoch naming that leader and term (errorCode 0). The state
 * learns of a new leader only from its report, applied after a controller commit (and after a
 * controller election when the controller went down with the leader); meanwhile a client
 * routed by the state is sent to the old leader, which refuses. A follower knows the new leader
 * from its first append, so a client refreshing after NOT_LEADER_OR_FOLLOWER is sent to the
 * real leader within one round, whatever the controller is doing. Only a live broker (in the
 * answer's broker list, so a client can reach it) that is a replica in the state is named;
 * `local` answers for its own leadership only once its term committed (rule 1 of
 * leader-reports.ts). A later term is always the fresher fact: an older one is never taken.
 */
export function withRaftLeaders(
  answer: MetadataResponse,
  state: MetadataState,
  local: (topicId: number, partition: number) => RaftLeaderView | null,
): MetadataResponse {
  let changed = false;
  const topics = answer.topics.map((t) => {
    const ts = t.errorCode === 0 ? topicByName(state, t.name) : undefined;
    if (ts === undefined) return t;
    let topicChanged = false;
    const partitions = t.partitions.map((p) => {
      const v = local(ts.id, p.partition);
      if (
        v === null ||
        v.leaderId <= 0 ||
        v.leaderEpoch <= p.leaderEpoch ||
        !p.replicas.includes(v.leaderId) ||
        !isLive(state, v.leaderId)
      ) {
        return p;
      }
      topicChanged = true;
      return {
        errorCode: 0,
        partition: p.partition,
        leaderId: v.leaderId,
        leaderEpoch: v.leaderEpoch,
        replicas: p.replicas,
        isr: p.isr,
      };
    });
    if (!topicChanged) return t;
    changed = true;
    return { ...t, partitions };
  });
  return changed ? { ...answer, topics } : answer;
}

/** The DescribeCluster answer: every registered broker, live or not. */
export function describeClusterFromState(
  state: MetadataState,
  controllerId: number,
  voters: readonly number[],
): DescribeClusterResponse {
  const replicas = replicaCounts(state);
  const leaders = leaderCounts(state);
  return {
    errorCode: 0,
    clusterId: state.clusterId ?? '',
    controllerId,
    brokers: brokersInOrder(state).map((b) => ({
      nodeId: b.id,
      host: b.host,
      port: b.port,
      rack: null,
      live: !b.fenced,
      fenced: b.fenced,
      isVoter: voters.includes(b.id),
      replicaCount: replicas.get(b.id) ?? 0,
      leaderCount: leaders.get(b.id) ?? 0,
    })),
  };
}
