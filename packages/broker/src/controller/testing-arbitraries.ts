// fast-check generators of metadata records for the controller's property tests (tests only; not
// exported from the package). Ids, names, epochs and ticks come from small domains so that random
// sequences hit each other: a heartbeat often names a registered broker with its epoch, a
// partition change often names an existing partition.
import assert from 'node:assert/strict';
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import fc from 'fast-check';
import type { MetadataRecord } from './metadata-records.js';
import {
  apply,
  brokersInOrder,
  EMPTY_METADATA_STATE,
  type MetadataState,
  topicsInOrder,
} from './metadata-state.js';

const brokerId = fc.integer({ min: 0, max: 4 });
const epoch = fc.integer({ min: 0, max: 8 });
const topicId = fc.integer({ min: 0, max: 8 });
const topicName = fc.constantFrom('t1', 't2', 't3', 'a.b', 'a_b');
const configKey = fc.constantFrom('retention.ms', 'segment.bytes', 'durability');
const configValue = fc.constantFrom('1000', '-1', 'always', 'x');
const replicas = fc.uniqueArray(brokerId, { minLength: 1, maxLength: 3 });

const partitionChange = replicas.chain((reps) =>
  fc.subarray(reps, { minLength: 1 }).chain((isr) =>
    fc.record({
      type: fc.constant('partition-change' as const),
      topicId,
      partition: fc.integer({ min: 0, max: 3 }),
      leader: fc.constantFrom(-1, ...isr),
      leaderEpoch: fc.integer({ min: 0, max: 4 }),
      replicas: fc.constant(reps),
      isr: fc.constant(isr),
    }),
  ),
);

/** One well-formed record (it passes recordProblem), likely to relate to its neighbours. */
export const metadataRecord: fc.Arbitrary<MetadataRecord> = fc.oneof(
  fc.record({
    type: fc.constant('cluster-bootstrap' as const),
    clusterId: fc.constantFrom('c1', 'c2'),
  }),
  fc.record(
    {
      type: fc.constant('register-broker' as const),
      brokerId,
      host: fc.constantFrom('h1', 'h2'),
      port: fc.integer({ min: 1, max: 65535 }),
      incarnation: fc.constantFrom('i1', 'i2', 'i3'),
      brokerEpoch: epoch,
      // Version 2: a broker with a Kafka listener (the key absent: one without, version 1).
      kafka: fc.record({
        host: fc.constantFrom('k1', 'k2'),
        port: fc.integer({ min: 1, max: 65535 }),
      }),
    },
    { requiredKeys: ['type', 'brokerId', 'host', 'port', 'incarnation', 'brokerEpoch'] },
  ),
  fc.record({
    type: fc.constant('broker-heartbeat' as const),
    brokerId,
    brokerEpoch: epoch,
    tick: fc.integer({ min: 0, max: 40 }),
  }),
  fc.record({ type: fc.constant('fence-broker' as const), brokerId, brokerEpoch: epoch }),
  fc.record({ type: fc.constant('unfence-broker' as const), brokerId, brokerEpoch: epoch }),
  fc.record({
    type: fc.constant('create-topic' as const),
    topicId,
    name: topicName,
    partitions: fc.array(
      replicas.map((r) => ({ replicas: r })),
      { minLength: 1, maxLength: 3 },
    ),
    configs: fc
      .uniqueArray(configKey, { maxLength: 2 })
      .chain((keys) =>
        fc.tuple(...keys.sort().map((key) => configValue.map((value) => ({ key, value })))),
      ),
  }),
  fc.record({ type: fc.constant('delete-topic' as const), topicId }),
  fc.record({
    type: fc.constant('alter-topic-config' as const),
    topicId,
    changes: fc
      .uniqueArray(configKey, { minLength: 1, maxLength: 3 })
      .chain((keys) =>
        fc.tuple(
          ...keys.sort().map((key) => fc.option(configValue).map((value) => ({ key, value }))),
        ),
      ),
  }),
  partitionChange,
  fc.record({
    type: fc.constant('allocate-producer-ids' as const),
    brokerId,
    firstProducerId: fc.integer({ min: 0, max: 6 }).map((n) => n * 10),
    count: fc.constant(10),
  }),
  fc
    .tuple(
      topicId,
      fc.integer({ min: 1, max: 3 }),
      fc.array(
        replicas.map((r) => ({ replicas: r })),
        { minLength: 1, maxLength: 2 },
      ),
    )
    .map(([id, had, partitions]) => ({
      type: 'add-partitions' as const,
      topicId: id,
      count: had + partitions.length,
      partitions,
    })),
);

/**
 * Rewrites `r` to fit `state` (an existing broker with its epoch, the next topic id, an existing
 * partition with the right next leader epoch, the next producer id), so that a random log
 * applies often enough to exercise every rule, not only the rejections.
 */
export function steerRecord(state: MetadataState, r: MetadataRecord, pick: number): MetadataRecord {
  const brokers = brokersInOrder(state);
  const topics = topicsInOrder(state);
  const broker = brokers.length > 0 ? brokers[pick % brokers.length]! : undefined;
  const topic = topics.length > 0 ? topics[pick % topics.length]! : undefined;
  const onBrokers = (ids: readonly number[]): number[] => {
    if (brokers.length === 0) return [...ids];
    const n = Math.min(ids.length, brokers.length);
    return Array.from({ length: n }, (_, i) => brokers[(pick + i) % brokers.length]!.id);
  };
  switch (r.type) {
    case 'cluster-bootstrap':
      return r;
    case 'register-broker':
      return { ...r, brokerEpoch: state.brokerEpochNext };
    case 'broker-heartbeat':
      if (!broker) return r;
      return {
        ...r,
        brokerId: broker.id,
        brokerEpoch: broker.brokerEpoch,
        tick: Math.max(broker.lastHeartbeatTick, state.tickLast) + (pick % 5),
      };
    case 'fence-broker':
    case 'unfence-broker':
      return broker ? { ...r, brokerId: broker.id, brokerEpoch: broker.brokerEpoch } : r;
    case 'create-topic':
      return {
        ...r,
        topicId: state.topicIdNext,
        partitions: r.partitions.map((p) => ({ replicas: onBrokers(p.replicas) })),
      };
    case 'delete-topic':
    case 'alter-topic-config':
      return topic ? { ...r, topicId: topic.id } : r;
    case 'partition-change': {
      if (!topic) return r;
      const partition = pick % topic.partitions.length;
      const current = topic.partitions[partition]!;
      const replicas = onBrokers(r.replicas);
      const isr = replicas.slice(0, Math.max(1, r.isr.length));
      const leader = r.leader === -1 ? -1 : isr[pick % isr.length]!;
      const leaderEpoch = current.leaderEpoch + (leader === current.leader ? 0 : 1);
      return { ...r, topicId: topic.id, partition, replicas, isr, leader, leaderEpoch };
    }
    case 'allocate-producer-ids':
      return broker ? { ...r, brokerId: broker.id, firstProducerId: state.producerIdNext } : r;
    case 'add-partitions':
      if (!topic) return r;
      return {
        ...r,
        topicId: topic.id,
        count: topic.partitions.length + r.partitions.length,
        partitions: r.partitions.map((p) => ({ replicas: onBrokers(p.replicas) })),
      };
    case 'reassign-partition':
    case 'complete-reassignment':
    case 'unregister-broker':
    case 'alter-broker-config':
    case 'set-controller-voters':
    case 'cancel-reassignment':
      return r;
  }
}

/**
 * A metadata log: a bootstrap, some registrations, then random records of which about two in
 * three are steered to fit the state reached so far (and so mostly apply).
 */
export const metadataLog: fc.Arbitrary<MetadataRecord[]> = fc
  .tuple(
    fc.uniqueArray(brokerId, { minLength: 1, maxLength: 5 }),
    fc.array(fc.tuple(metadataRecord, fc.nat(), fc.integer({ min: 0, max: 2 })), {
      minLength: 5,
      maxLength: 80,
    }),
  )
  .map(([ids, steps]) => {
    const log: MetadataRecord[] = [{ type: 'cluster-bootstrap', clusterId: 'c1' }];
    ids.forEach((id, i) => {
      log.push({
        type: 'register-broker',
        brokerId: id,
        host: 'h1',
        port: 9000 + id,
        incarnation: 'i1',
        brokerEpoch: i + 1,
      });
    });
    let state = log.reduce(apply, EMPTY_METADATA_STATE);
    for (const [record, pick, mode] of steps) {
      const r = mode === 0 ? record : steerRecord(state, record, pick);
      log.push(r);
      state = apply(state, r);
    }
    return log;
  });

/**
 * The decoder-fuzz check: decoding `bytes` either fails with CORRUPT_DATA (and nothing else) or
 * gives a value that re-encodes to the very same bytes (the codec is canonical). Returns the
 * decoded value, or null when it was refused.
 */
export function expectCanonicalOrCorrupt<T>(
  bytes: Uint8Array,
  decode: (bytes: Uint8Array) => T,
  encode: (value: T) => Uint8Array,
): T | null {
  let value: T;
  try {
    value = decode(bytes);
  } catch (err) {
    if (!isStreamBusError(err, ErrorCode.CORRUPT_DATA)) throw err;
    return null;
  }
  assert.deepEqual(
    Buffer.from(encode(value)),
    Buffer.from(bytes),
    'decoded value re-encodes differently',
  );
  return value;
}
