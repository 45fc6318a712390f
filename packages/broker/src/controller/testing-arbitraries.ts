// fast-check generators of metadata records for the controller's property tests (tests only; not
// exported from the package). Ids, names, epochs and ticks come from small domains so that random
// sequences hit each other: a heartbeat often names a registered broker with its epoch, a
// partition change often names an existing partition.
import fc from 'fast-check';
import type { MetadataRecord } from './metadata-records.js';

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
  fc.record({
    type: fc.constant('register-broker' as const),
    brokerId,
    host: fc.constantFrom('h1', 'h2'),
    port: fc.integer({ min: 1, max: 65535 }),
    incarnation: fc.constantFrom('i1', 'i2', 'i3'),
    brokerEpoch: epoch,
  }),
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
);

/** A sequence that starts with a bootstrap and registers some brokers, then anything. */
export const metadataLog: fc.Arbitrary<MetadataRecord[]> = fc
  .tuple(
    fc.uniqueArray(brokerId, { minLength: 1, maxLength: 5 }),
    fc.array(metadataRecord, { maxLength: 80 }),
  )
  .map(([ids, rest]) => [
    { type: 'cluster-bootstrap', clusterId: 'c1' } as const,
    ...ids.map(
      (id, i) =>
        ({
          type: 'register-broker',
          brokerId: id,
          host: 'h1',
          port: 9000 + id,
          incarnation: 'i1',
          brokerEpoch: i + 1,
        }) as const,
    ),
    ...rest,
  ]);
