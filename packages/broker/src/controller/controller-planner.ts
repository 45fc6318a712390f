// The controller leader's planner (issue 9): given the applied metadata state and a request,
// the records to propose to the metadata log. Pure and deterministic (no clock: the current tick
// is passed in; no randomness: the replica assignor's start is derived from the state). A request
// that cannot be honoured throws a typed StreamBusError before anything is proposed; whatever is
// returned applies cleanly, record after record, to the state it was planned on (asserted here:
// the planner applies its own records as it goes, so later records of one plan see earlier ones).
// It does not propose, wait for commit or answer anyone: the controller shell does (not wired yet),
// and because the state can move between planning and commit, `applyRecord` re-checks everything.
//
// Rules:
//   1. Replica assignment (create topic) is Kafka's rack-unaware round robin
//      (`AdminUtils.assignReplicasToBrokers`, KIP-36 without racks) over the live, unfenced
//      brokers ordered by (leaders, replicas, id) ascending instead of from a random start: the
//      least-loaded broker leads partition 0, so leader counts stay within 1 of each other over any
//      sequence of creations on a fixed set of brokers, and replicas of a partition are distinct.
//   2. Replication factor -1 means min(3, live brokers); above the live brokers (or REPLICAS_MAX)
//      it is INVALID_REPLICATION_FACTOR (38). Names follow Kafka's rules and may not collide with
//      an existing name when '.' and '_' are identified (Kafka's metric-name collision rule):
//      INVALID_TOPIC_EXCEPTION (17). Partitions 1..partitionsPerTopicMax: INVALID_PARTITIONS (37);
//      the cluster-wide total above partitionsTotalMax: POLICY_VIOLATION (44). Config keys and
//      values are checked one by one (INVALID_CONFIG, 40); checks that need the broker defaults
//      (max.message.bytes against segment.bytes) stay with the broker's resolveTopicConfig.
//   3. A broker whose last heartbeat is more than `sessionTicks` ticks old is fenced; a broker
//      that shuts down in a controlled way is fenced at once (planControlledShutdown). A fenced or
//      re-registered broker leaves every ISR (the last member stays listed); where it led, the
//      leader becomes -1 at the SAME leader epoch. The controller never picks a partition leader
//      itself: each partition's Raft group elects one, and the recorded leader epoch is always a
//      Raft term some replica really led in, so the group's next leader (a later term) or the
//      same one reporting again (the same term, the partition leaderless) is recorded at once
//      (planIsrChange). Picking leaders here, with invented epochs, put the state ahead of the
//      groups' terms, and a real leader's reports were refused until its term overtook them
//      (seconds to tens of seconds after a full restart). A fenced broker that heartbeats again
//      is unfenced; it leads again only when its group elects it.
//   4. Producer-id blocks start at the state's producerIdNext: contiguous, never overlapping, and
//      they survive a snapshot because producerIdNext is in it.
//   5. Preferred-leader balancing (`preferredLeaderMoves`, a query): the partitions whose leader
//      is not replicas[0] although replicas[0] is live and in the ISR. The brokers leading them
//      hand the Raft leadership over (TimeoutNow); the state follows from the new leader's
//      report, as for any election.
import assert from 'node:assert/strict';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { checkTopicName, TOPIC_CONFIG_KEYS } from '../topic-config.js';
import {
  CONFIG_ENTRIES_MAX,
  type ConfigEntry,
  type CreateTopicRecord,
  type MetadataRecord,
  PARTITIONS_MAX,
  type PartitionChangeRecord,
  PRODUCER_ID_BLOCK_MAX,
  REPLICAS_MAX,
  recordProblem,
} from './metadata-records.js';
import {
  applyRecord,
  isLive,
  leaderCounts,
  liveBrokers,
  type MetadataState,
  type PartitionState,
  partitionCount,
  replicaCounts,
  topicByName,
  topicsInOrder,
} from './metadata-state.js';

export interface PlannerLimits {
  readonly partitionsPerTopicMax: number;
  readonly partitionsTotalMax: number;
}

export const DEFAULT_PLANNER_LIMITS: PlannerLimits = {
  partitionsPerTopicMax: 10_000,
  partitionsTotalMax: 100_000,
};

/** The default replication factor cap (issue 9: min(3, live brokers)). */
export const DEFAULT_REPLICATION_FACTOR_MAX = 3;

function fail(code: number, message: string): never {
  throw new StreamBusError(code, message);
}

/** Records of one plan, applied to a working state as they are added. */
class Plan {
  readonly records: MetadataRecord[] = [];
  constructor(public state: MetadataState) {}

  add(record: MetadataRecord): void {
    assert.equal(recordProblem(record), null, `planner built a malformed ${record.type}`);
    const result = applyRecord(this.state, record);
    assert.equal(result.noop, null, `planner built a no-op ${record.type}: ${result.noop}`);
    this.state = result.state;
    this.records.push(record);
  }
}

function requireBootstrapped(state: MetadataState): void {
  if (state.clusterId === null) fail(ErrorCode.INVALID_REQUEST, 'the cluster is not bootstrapped');
}

export function planBootstrap(state: MetadataState, clusterId: string): MetadataRecord[] {
  if (state.clusterId === clusterId) return [];
  if (state.clusterId !== null) {
    fail(ErrorCode.INVALID_REQUEST, `the cluster is already bootstrapped as ${state.clusterId}`);
  }
  const plan = new Plan(state);
  plan.add({ type: 'cluster-bootstrap', clusterId });
  return plan.records;
}

// ---- brokers ----

export interface RegisterBrokerRequest {
  readonly brokerId: number;
  readonly host: string;
  readonly port: number;
  readonly incarnation: string;
}

/**
 * Registers a broker (fenced until its first heartbeat). The same incarnation again is a
 * duplicate request and plans nothing; a new incarnation of a registered broker is a restart:
 * the old one leaves every ISR it was in (rule 3).
 */
export function planRegisterBroker(
  state: MetadataState,
  req: RegisterBrokerRequest,
): MetadataRecord[] {
  requireBootstrapped(state);
  const existing = state.brokers.get(req.brokerId);
  if (existing !== undefined && existing.incarnation === req.incarnation) return [];
  const record: MetadataRecord = {
    type: 'register-broker',
    ...req,
    brokerEpoch: state.brokerEpochNext,
  };
  const problem = recordProblem(record);
  if (problem !== null) fail(ErrorCode.INVALID_REQUEST, `broker registration: ${problem}`);
  const plan = new Plan(state);
  plan.add(record);
  if (existing !== undefined) planBrokerLoss(plan, req.brokerId);
  return plan.records;
}

export interface HeartbeatRequest {
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

function registeredBroker(state: MetadataState, brokerId: number, brokerEpoch: number) {
  const broker = state.brokers.get(brokerId);
  if (broker === undefined) {
    fail(ErrorCode.BROKER_ID_NOT_REGISTERED, `broker ${brokerId} is not registered`);
  }
  if (broker.brokerEpoch !== brokerEpoch) {
    fail(
      ErrorCode.STALE_BROKER_EPOCH,
      `broker ${brokerId} sent epoch ${brokerEpoch}, registered epoch is ${broker.brokerEpoch}`,
    );
  }
  return broker;
}

function checkTick(state: MetadataState, nowTick: number): void {
  // The controller's clock resumes at the state's last tick when it takes over (invariant).
  assert.ok(
    Number.isSafeInteger(nowTick) && nowTick >= state.tickLast,
    `tick ${nowTick} is before the metadata log's last tick ${state.tickLast}`,
  );
}

/** A heartbeat at `nowTick`; a fenced broker is unfenced and takes back leaderless partitions. */
export function planHeartbeat(
  state: MetadataState,
  req: HeartbeatRequest,
  nowTick: number,
): MetadataRecord[] {
  checkTick(state, nowTick);
  const broker = registeredBroker(state, req.brokerId, req.brokerEpoch);
  const plan = new Plan(state);
  plan.add({
    type: 'broker-heartbeat',
    brokerId: broker.id,
    brokerEpoch: broker.brokerEpoch,
    tick: Math.max(nowTick, broker.lastHeartbeatTick),
  });
  if (broker.fenced) {
    plan.add({ type: 'unfence-broker', brokerId: broker.id, brokerEpoch: broker.brokerEpoch });
  }
  return plan.records;
}

/**
 * A broker that shuts down in a controlled way (SIGTERM) is fenced now, not after its session
 * runs out, and leaves every ISR (rule 3); its leaderships were handed over before it asked.
 * A broker already fenced plans nothing (a retried request).
 */
export function planControlledShutdown(
  state: MetadataState,
  req: HeartbeatRequest,
): MetadataRecord[] {
  const broker = registeredBroker(state, req.brokerId, req.brokerEpoch);
  if (broker.fenced) return [];
  const plan = new Plan(state);
  plan.add({ type: 'fence-broker', brokerId: broker.id, brokerEpoch: broker.brokerEpoch });
  planBrokerLoss(plan, broker.id);
  return plan.records;
}

/** Fences every live broker whose last heartbeat is more than `sessionTicks` old (rule 3). */
export function planFenceExpired(
  state: MetadataState,
  nowTick: number,
  sessionTicks: number,
): MetadataRecord[] {
  checkTick(state, nowTick);
  assert.ok(Number.isSafeInteger(sessionTicks) && sessionTicks > 0, 'sessionTicks must be > 0');
  const plan = new Plan(state);
  for (const b of liveBrokers(state)) {
    if (nowTick - b.lastHeartbeatTick > sessionTicks) {
      plan.add({ type: 'fence-broker', brokerId: b.id, brokerEpoch: b.brokerEpoch });
      planBrokerLoss(plan, b.id);
    }
  }
  return plan.records;
}

/** Takes `brokerId` (already fenced or re-registered in plan.state) out of every ISR. */
function planBrokerLoss(plan: Plan, brokerId: number): void {
  forEachPartition(plan.state, (topicId, partition, p) => {
    if (!p.isr.includes(brokerId)) return;
    const rest = p.isr.filter((id) => id !== brokerId);
    if (rest.length === 0) {
      // Last in-sync replica: keep it listed so it, and only it, can lead again.
      if (p.leader !== -1) plan.add(change(topicId, partition, p, { leader: -1, isr: p.isr }));
      return;
    }
    // The leader (another ISR member, or none) stays; where the lost broker led, the partition
    // is leaderless at the same epoch until its Raft group's leader reports (rule 3).
    const leader = p.leader === brokerId ? -1 : p.leader;
    plan.add(change(topicId, partition, p, { leader, isr: rest }));
  });
}

function forEachPartition(
  state: MetadataState,
  fn: (topicId: number, partition: number, p: PartitionState) => void,
): void {
  for (const t of topicsInOrder(state)) {
    for (let i = 0; i < t.partitions.length; i++) fn(t.id, i, t.partitions[i]!);
  }
}

/** A partition change; the leader epoch stays (only Raft terms are recorded, rule 3). */
function change(
  topicId: number,
  partition: number,
  p: PartitionState,
  next: { leader: number; isr: readonly number[] },
): PartitionChangeRecord {
  return {
    type: 'partition-change',
    topicId,
    partition,
    leader: next.leader,
    leaderEpoch: p.leaderEpoch,
    replicas: p.replicas,
    isr: next.isr,
  };
}

// ---- topics ----

export interface CreateTopicRequest {
  readonly name: string;
  readonly partitions: number;
  /** -1: min(3, live brokers). */
  readonly replicationFactor: number;
  readonly configs?: Readonly<Record<string, string>>;
}

/**
 * Kafka's rack-unaware assignment over `brokers` in the given order (rule 1): partition p's first
 * replica is brokers[p mod n]; follower j is shifted by 1 + (shift + j) mod (n - 1), the shift
 * growing by one every n partitions so followers spread too. Replicas of a partition are distinct
 * when replicationFactor <= n.
 */
export function assignReplicas(
  brokers: readonly number[],
  partitions: number,
  replicationFactor: number,
): number[][] {
  const n = brokers.length;
  assert.ok(replicationFactor >= 1 && replicationFactor <= n, 'replication factor out of range');
  const out: number[][] = [];
  let shift = 0;
  for (let p = 0; p < partitions; p++) {
    if (p > 0 && p % n === 0) shift++;
    const first = p % n;
    const replicas = [brokers[first]!];
    for (let j = 0; j < replicationFactor - 1; j++) {
      replicas.push(brokers[(first + 1 + ((shift + j) % (n - 1))) % n]!);
    }
    out.push(replicas);
  }
  return out;
}

function configProblem(key: string, value: string | null): string | null {
  const spec = TOPIC_CONFIG_KEYS[key];
  if (spec === undefined) {
    return `${key}: unknown topic config (allowed: ${Object.keys(TOPIC_CONFIG_KEYS).join(', ')})`;
  }
  if (value !== null && spec.parse(value) === null) {
    return `${key}: expected ${spec.allowed}, got '${value}'`;
  }
  return null;
}

/** The entries by ascending key, each key and value checked: INVALID_CONFIG naming the first bad one. */
function checkedConfigEntries<V extends string | null>(
  configs: Readonly<Record<string, V>>,
  what: string,
): Array<[string, V]> {
  const entries = Object.entries(configs).sort(([a], [b]) => (a < b ? -1 : 1));
  if (entries.length > CONFIG_ENTRIES_MAX) {
    fail(ErrorCode.INVALID_CONFIG, `${entries.length} ${what}, at most ${CONFIG_ENTRIES_MAX}`);
  }
  for (const [k, v] of entries) {
    const problem = configProblem(k, v);
    if (problem !== null) fail(ErrorCode.INVALID_CONFIG, problem);
  }
  return entries;
}

function collisionKey(name: string): string {
  return name.replaceAll('.', '_');
}

export function planCreateTopic(
  state: MetadataState,
  req: CreateTopicRequest,
  limits: PlannerLimits = DEFAULT_PLANNER_LIMITS,
): MetadataRecord[] {
  requireBootstrapped(state);
  checkTopicName(req.name);
  if (topicByName(state, req.name) !== undefined) {
    fail(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${req.name} already exists`);
  }
  const key = collisionKey(req.name);
  for (const name of state.topicIdsByName.keys()) {
    if (collisionKey(name) === key) {
      fail(
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        `topic name '${req.name}' collides with existing topic '${name}' ('.' and '_' are treated alike)`,
      );
    }
  }
  const perTopicMax = Math.min(limits.partitionsPerTopicMax, PARTITIONS_MAX);
  if (!Number.isSafeInteger(req.partitions) || req.partitions < 1 || req.partitions > perTopicMax) {
    fail(
      ErrorCode.INVALID_PARTITIONS,
      `partitions must be in 1..${perTopicMax}, got ${req.partitions}`,
    );
  }
  const total = partitionCount(state);
  if (total + req.partitions > limits.partitionsTotalMax) {
    fail(
      ErrorCode.POLICY_VIOLATION,
      `the cluster has ${total} partitions; ${req.partitions} more exceed partitionsTotalMax (${limits.partitionsTotalMax})`,
    );
  }
  const live = liveBrokers(state);
  if (live.length === 0) {
    fail(ErrorCode.INVALID_REPLICATION_FACTOR, 'no live brokers to place replicas on');
  }
  const rf =
    req.replicationFactor === -1
      ? Math.min(DEFAULT_REPLICATION_FACTOR_MAX, live.length)
      : req.replicationFactor;
  if (!Number.isSafeInteger(rf) || rf < 1 || rf > live.length || rf > REPLICAS_MAX) {
    fail(
      ErrorCode.INVALID_REPLICATION_FACTOR,
      `replication factor ${rf} needs 1..${Math.min(live.length, REPLICAS_MAX)} (live brokers: ${live.length})`,
    );
  }
  const entries = checkedConfigEntries(req.configs ?? {}, 'config overrides');
  const leaders = leaderCounts(state);
  const replicas = replicaCounts(state);
  const order = live
    .map((b) => b.id)
    .sort(
      (a, b) => leaders.get(a)! - leaders.get(b)! || replicas.get(a)! - replicas.get(b)! || a - b,
    );
  const configs: ConfigEntry[] = entries.map(([k, v]) => ({ key: k, value: v }));
  const record: CreateTopicRecord = {
    type: 'create-topic',
    topicId: state.topicIdNext,
    name: req.name,
    partitions: assignReplicas(order, req.partitions, rf).map((r) => ({ replicas: r })),
    configs,
  };
  const plan = new Plan(state);
  plan.add(record);
  return plan.records;
}

function requireTopic(state: MetadataState, name: string) {
  const topic = topicByName(state, name);
  if (topic === undefined) {
    fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`);
  }
  return topic;
}

export function planDeleteTopic(state: MetadataState, name: string): MetadataRecord[] {
  const topic = requireTopic(state, name);
  const plan = new Plan(state);
  plan.add({ type: 'delete-topic', topicId: topic.id });
  return plan.records;
}

/** AlterConfigs: a null value removes the override. Nothing to change plans nothing. */
export function planAlterTopicConfig(
  state: MetadataState,
  name: string,
  changes: Readonly<Record<string, string | null>>,
): MetadataRecord[] {
  const topic = requireTopic(state, name);
  const entries = checkedConfigEntries(changes, 'config changes');
  if (entries.length === 0) return [];
  const plan = new Plan(state);
  plan.add({
    type: 'alter-topic-config',
    topicId: topic.id,
    changes: entries.map(([k, v]) => ({ key: k, value: v })),
  });
  return plan.records;
}

// ---- partitions ----

export interface IsrReport {
  readonly topicId: number;
  readonly partition: number;
  /** The reporting leader and the epoch it leads in. */
  readonly leader: number;
  readonly leaderEpoch: number;
  /** Derived from the partition's Raft progress by its leader. */
  readonly isr: readonly number[];
}

/**
 * An ISR reported by a partition's leader (Kafka's AlterPartition). Only the current leader in
 * its current epoch may report; fenced brokers are not admitted; the leader stays in its ISR.
 */
export function planIsrChange(state: MetadataState, report: IsrReport): MetadataRecord[] {
  const topic = state.topics.get(report.topicId);
  const p = topic?.partitions[report.partition];
  if (p === undefined) {
    fail(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `partition ${report.topicId}/${report.partition} does not exist`,
    );
  }
  // A partition's replicas form a Raft group that elects its own leader; the leader epoch it
  // reports is its Raft term, of which there is one leader at most. So a report from a live
  // replica with an epoch above the state's is that group's new leader (the state observes it),
  // and so is one at the state's epoch while the partition is leaderless: the leader recorded in
  // that term was lost (fenced, restarted) and the one reporting is the only one that term has.
  const newLeader =
    report.leaderEpoch > p.leaderEpoch || (report.leaderEpoch === p.leaderEpoch && p.leader === -1);
  if (newLeader && p.replicas.includes(report.leader) && isLive(state, report.leader)) {
    for (const id of report.isr) {
      if (!p.replicas.includes(id)) {
        fail(ErrorCode.INVALID_REQUEST, `isr member ${id} is not a replica of the partition`);
      }
    }
    const isr = p.replicas.filter(
      (id) => id === report.leader || (report.isr.includes(id) && isLive(state, id)),
    );
    return [
      {
        type: 'partition-change',
        topicId: report.topicId,
        partition: report.partition,
        leader: report.leader,
        leaderEpoch: report.leaderEpoch,
        replicas: p.replicas,
        isr,
      },
    ];
  }
  if (p.leader === -1) {
    fail(
      ErrorCode.LEADER_NOT_AVAILABLE,
      `partition ${report.topicId}/${report.partition} has no leader that could report its ISR`,
    );
  }
  if (p.leader !== report.leader || p.leaderEpoch !== report.leaderEpoch) {
    fail(
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
      `broker ${report.leader} epoch ${report.leaderEpoch} does not lead ${report.topicId}/${report.partition} (leader ${p.leader} epoch ${p.leaderEpoch})`,
    );
  }
  for (const id of report.isr) {
    if (!p.replicas.includes(id)) {
      fail(ErrorCode.INVALID_REQUEST, `isr member ${id} is not a replica of the partition`);
    }
  }
  // Assignment order, duplicates dropped, fenced members left out, the leader always in.
  const isr = p.replicas.filter(
    (id) => id === p.leader || (report.isr.includes(id) && isLive(state, id)),
  );
  if (isr.length === p.isr.length && isr.every((id, i) => p.isr[i] === id)) return [];
  const plan = new Plan(state);
  plan.add(change(report.topicId, report.partition, p, { leader: p.leader, isr }));
  return plan.records;
}

export interface PreferredLeaderMove {
  readonly topicId: number;
  readonly topic: string;
  readonly partition: number;
  /** The current leader, who hands over. */
  readonly from: number;
  /** The preferred leader (replicas[0]), live and in the ISR. */
  readonly to: number;
}

/** Partitions whose preferred leader is live and in sync but does not lead (rule 5). */
export function preferredLeaderMoves(state: MetadataState, movesMax = 1000): PreferredLeaderMove[] {
  const moves: PreferredLeaderMove[] = [];
  for (const t of topicsInOrder(state)) {
    for (let i = 0; i < t.partitions.length && moves.length < movesMax; i++) {
      const p = t.partitions[i]!;
      const preferred = p.replicas[0]!;
      if (p.leader === preferred || p.leader === -1) continue;
      if (!p.isr.includes(preferred) || !isLive(state, preferred)) continue;
      moves.push({ topicId: t.id, topic: t.name, partition: i, from: p.leader, to: preferred });
    }
  }
  return moves;
}

// ---- producer ids ----

export function planAllocateProducerIds(
  state: MetadataState,
  brokerId: number,
  count: number,
): MetadataRecord[] {
  if (!state.brokers.has(brokerId)) {
    fail(ErrorCode.BROKER_ID_NOT_REGISTERED, `broker ${brokerId} is not registered`);
  }
  if (!Number.isSafeInteger(count) || count < 1 || count > PRODUCER_ID_BLOCK_MAX) {
    fail(
      ErrorCode.INVALID_REQUEST,
      `producer-id block of ${count}, expected 1..${PRODUCER_ID_BLOCK_MAX}`,
    );
  }
  if (state.producerIdNext > Number.MAX_SAFE_INTEGER - count + 1) {
    fail(ErrorCode.INVALID_REQUEST, 'producer ids are exhausted');
  }
  const plan = new Plan(state);
  plan.add({
    type: 'allocate-producer-ids',
    brokerId,
    firstProducerId: state.producerIdNext,
    count,
  });
  return plan.records;
}
