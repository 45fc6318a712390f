import { crc32c, ErrorCode, isStreamBusError } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MetadataRecord } from './metadata-records.js';
import {
  apply,
  applyRecord,
  decodeSnapshot,
  EMPTY_METADATA_STATE,
  encodeSnapshot,
  formatState,
  leaderCounts,
  liveBrokers,
  type MetadataState,
  partitionsOfBroker,
  replicaCounts,
  topicByName,
} from './metadata-state.js';
import { expectCanonicalOrCorrupt, metadataLog } from './testing-arbitraries.js';

// ---- the simple model: the rules of metadata-state.ts, written plainly over mutable maps ----

interface ModelPartition {
  leader: number;
  leaderEpoch: number;
  partitionEpoch: number;
  replicas: number[];
  isr: number[];
}
interface Model {
  clusterId: string | null;
  brokers: Map<
    number,
    {
      host: string;
      port: number;
      inc: string;
      epoch: number;
      fenced: boolean;
      hb: number;
      kafka: string | null;
    }
  >;
  topics: Map<number, { name: string; parts: ModelPartition[]; configs: Map<string, string> }>;
  topicIdNext: number;
  brokerEpochNext: number;
  pidNext: number;
  tickLast: number;
}

function newModel(): Model {
  return {
    clusterId: null,
    brokers: new Map(),
    topics: new Map(),
    topicIdNext: 1,
    brokerEpochNext: 1,
    pidNext: 0,
    tickLast: 0,
  };
}

/** Applies `r` to `m` in place; false when the record is a no-op. */
function modelApply(m: Model, r: MetadataRecord): boolean {
  if (r.type === 'cluster-bootstrap') {
    if (m.clusterId !== null) return false;
    m.clusterId = r.clusterId;
    return true;
  }
  if (m.clusterId === null) return false;
  switch (r.type) {
    case 'register-broker':
      if (r.brokerEpoch < m.brokerEpochNext) return false;
      m.brokers.set(r.brokerId, {
        host: r.host,
        port: r.port,
        inc: r.incarnation,
        epoch: r.brokerEpoch,
        fenced: true,
        hb: m.tickLast,
        kafka: r.kafka != null ? `${r.kafka.host}:${r.kafka.port}` : null,
      });
      m.brokerEpochNext = r.brokerEpoch + 1;
      return true;
    case 'broker-heartbeat': {
      const b = m.brokers.get(r.brokerId);
      if (!b || b.epoch !== r.brokerEpoch || r.tick < b.hb) return false;
      b.hb = r.tick;
      if (r.tick > m.tickLast) m.tickLast = r.tick;
      return true;
    }
    case 'fence-broker':
    case 'unfence-broker': {
      const b = m.brokers.get(r.brokerId);
      const fence = r.type === 'fence-broker';
      if (!b || b.epoch !== r.brokerEpoch || b.fenced === fence) return false;
      b.fenced = fence;
      return true;
    }
    case 'create-topic': {
      for (const t of m.topics.values()) if (t.name === r.name) return false;
      if (r.topicId < m.topicIdNext) return false;
      if (r.partitions.some((p) => p.replicas.some((id) => !m.brokers.has(id)))) return false;
      m.topics.set(r.topicId, {
        name: r.name,
        parts: r.partitions.map((p) => ({
          leader: p.replicas[0]!,
          leaderEpoch: 0,
          partitionEpoch: 0,
          replicas: [...p.replicas],
          isr: [...p.replicas],
        })),
        configs: new Map(r.configs.map((e) => [e.key, e.value])),
      });
      m.topicIdNext = r.topicId + 1;
      return true;
    }
    case 'delete-topic':
      return m.topics.delete(r.topicId);
    case 'alter-topic-config': {
      const t = m.topics.get(r.topicId);
      if (!t) return false;
      for (const c of r.changes) {
        if (c.value === null) t.configs.delete(c.key);
        else t.configs.set(c.key, c.value);
      }
      return true;
    }
    case 'partition-change': {
      const p = m.topics.get(r.topicId)?.parts[r.partition];
      if (!p) return false;
      if (r.replicas.some((id) => !m.brokers.has(id))) return false;
      if (r.leaderEpoch < p.leaderEpoch) return false;
      if (
        r.leader !== p.leader &&
        r.leader !== -1 &&
        p.leader !== -1 &&
        r.leaderEpoch === p.leaderEpoch
      )
        return false;
      Object.assign(p, {
        leader: r.leader,
        leaderEpoch: r.leaderEpoch,
        partitionEpoch: p.partitionEpoch + 1,
        replicas: [...r.replicas],
        isr: [...r.isr],
      });
      return true;
    }
    case 'allocate-producer-ids':
      if (!m.brokers.has(r.brokerId) || r.firstProducerId !== m.pidNext) return false;
      m.pidNext += r.count;
      return true;
    case 'add-partitions': {
      const t = m.topics.get(r.topicId);
      if (!t || t.parts.length + r.partitions.length !== r.count) return false;
      if (r.partitions.some((p) => p.replicas.some((id) => !m.brokers.has(id)))) return false;
      for (const p of r.partitions) {
        t.parts.push({
          leader: p.replicas[0]!,
          leaderEpoch: 0,
          partitionEpoch: 0,
          replicas: [...p.replicas],
          isr: [...p.replicas],
        });
      }
      return true;
    }
    case 'reassign-partition':
    case 'complete-reassignment':
    case 'unregister-broker':
    case 'alter-broker-config':
    case 'set-controller-voters':
    case 'cancel-reassignment':
      // Not generated by the random logs (reassignment.test.ts covers them).
      return false;
  }
}

function projectModel(m: Model) {
  return {
    clusterId: m.clusterId,
    counters: [m.topicIdNext, m.brokerEpochNext, m.pidNext, m.tickLast],
    brokers: [...m.brokers.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, b]) => [id, b.host, b.port, b.inc, b.epoch, b.fenced, b.hb, b.kafka]),
    topics: [...m.topics.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, t]) => [
        id,
        t.name,
        t.parts.map((p) => [p.leader, p.leaderEpoch, p.partitionEpoch, p.replicas, p.isr]),
        [...t.configs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
      ]),
  };
}

function projectState(s: MetadataState) {
  for (const [name, id] of s.topicIdsByName) expect(s.topics.get(id)?.name).toBe(name);
  expect(s.topicIdsByName.size).toBe(s.topics.size);
  return {
    clusterId: s.clusterId,
    counters: [s.topicIdNext, s.brokerEpochNext, s.producerIdNext, s.tickLast],
    brokers: [...s.brokers.values()]
      .sort((a, b) => a.id - b.id)
      .map((b) => [
        b.id,
        b.host,
        b.port,
        b.incarnation,
        b.brokerEpoch,
        b.fenced,
        b.lastHeartbeatTick,
        b.kafka !== null ? `${b.kafka.host}:${b.kafka.port}` : null,
      ]),
    topics: [...s.topics.values()]
      .sort((a, b) => a.id - b.id)
      .map((t) => [
        t.id,
        t.name,
        t.partitions.map((p) => [p.leader, p.leaderEpoch, p.partitionEpoch, p.replicas, p.isr]),
        t.configs.map((e) => [e.key, e.value]),
      ]),
  };
}

function applyAll(state: MetadataState, records: readonly MetadataRecord[]): MetadataState {
  return records.reduce(apply, state);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Cluster c1, broker 1 (fenced), topic t (id 1) with one partition on broker 1. */
function oneTopicState(): MetadataState {
  return applyAll(EMPTY_METADATA_STATE, [
    { type: 'cluster-bootstrap', clusterId: 'c1' },
    { type: 'register-broker', brokerId: 1, host: 'h', port: 1, incarnation: 'i', brokerEpoch: 1 },
    { type: 'create-topic', topicId: 1, name: 't', partitions: [{ replicas: [1] }], configs: [] },
  ]);
}

describe('metadata state machine', () => {
  it('a leader moves between brokers only in a new epoch; a lost leader keeps its epoch', () => {
    const register = (id: number): MetadataRecord => ({
      type: 'register-broker',
      brokerId: id,
      host: 'h',
      port: id,
      incarnation: `i${id}`,
      brokerEpoch: id,
    });
    const base = applyAll(EMPTY_METADATA_STATE, [
      { type: 'cluster-bootstrap', clusterId: 'c1' },
      register(1),
      register(2),
      {
        type: 'create-topic',
        topicId: 1,
        name: 't',
        partitions: [{ replicas: [1, 2] }],
        configs: [],
      },
    ]);
    const to = (leader: number, leaderEpoch: number): MetadataRecord => ({
      type: 'partition-change',
      topicId: 1,
      partition: 0,
      leader,
      leaderEpoch,
      replicas: [1, 2],
      isr: [1, 2],
    });
    expect(applyRecord(base, to(2, 0)).noop).toMatch(/without a new leader epoch/);
    const lost = applyRecord(base, to(-1, 0));
    expect(lost.noop).toBeNull();
    const back = applyRecord(lost.state, to(2, 0));
    expect(back.noop).toBeNull();
    expect(back.state.topics.get(1)!.partitions[0]).toMatchObject({ leader: 2, leaderEpoch: 0 });
  });

  it('apply over a random record sequence matches the model, record by record', () => {
    let applied = 0;
    let rejected = 0;
    fc.assert(
      fc.property(metadataLog, (log) => {
        const m = newModel();
        let s = EMPTY_METADATA_STATE;
        for (const r of log) {
          const before = s;
          const result = applyRecord(s, r);
          const modelApplied = modelApply(m, r);
          expect(result.noop === null, `${r.type}: ${result.noop}`).toBe(modelApplied);
          if (result.noop !== null) {
            expect(result.state).toBe(before);
            expect(result.noop.length).toBeGreaterThan(0);
            rejected++;
          } else applied++;
          s = result.state;
          expect(projectState(s)).toEqual(projectModel(m));
        }
      }),
      { numRuns: 300 },
    );
    // The generators must exercise both sides of the rules, or the property proves little.
    expect(applied).toBeGreaterThan(1000);
    expect(rejected).toBeGreaterThan(1000);
  });

  it('never mutates a state it was given', () => {
    fc.assert(
      fc.property(metadataLog, (log) => {
        const states: MetadataState[] = [];
        const snapshots: string[] = [];
        let s = EMPTY_METADATA_STATE;
        for (const r of log) {
          states.push(s);
          snapshots.push(hex(encodeSnapshot(s)));
          s = apply(s, r);
        }
        for (let i = 0; i < states.length; i++) {
          expect(hex(encodeSnapshot(states[i]!))).toBe(snapshots[i]);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('snapshots round-trip byte for byte, and applying the rest after one gives the same state', () => {
    fc.assert(
      fc.property(metadataLog, fc.nat(), (log, cut) => {
        const k = cut % (log.length + 1);
        const full = applyAll(EMPTY_METADATA_STATE, log);
        const prefix = applyAll(EMPTY_METADATA_STATE, log.slice(0, k));
        const bytes = encodeSnapshot(prefix);
        const restored = decodeSnapshot(bytes);
        expect(hex(encodeSnapshot(restored))).toBe(hex(bytes));
        expect(projectState(restored)).toEqual(projectState(prefix));
        const resumed = applyAll(restored, log.slice(k));
        expect(hex(encodeSnapshot(resumed))).toBe(hex(encodeSnapshot(full)));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a damaged snapshot with CORRUPT_DATA', () => {
    fc.assert(
      fc.property(metadataLog, fc.nat(), fc.integer({ min: 1, max: 255 }), (log, at, xor) => {
        const bytes = encodeSnapshot(applyAll(EMPTY_METADATA_STATE, log));
        const damaged = bytes.slice();
        damaged[at % damaged.length]! ^= xor;
        expect(() => decodeSnapshot(damaged)).toThrow(
          expect.objectContaining({ code: ErrorCode.CORRUPT_DATA }),
        );
        const cut = bytes.subarray(0, at % bytes.length);
        expect(() => decodeSnapshot(cut)).toThrow(
          expect.objectContaining({ code: ErrorCode.CORRUPT_DATA }),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('snapshot decoder fuzz: mutated bodies with a recomputed checksum decode canonically or throw CORRUPT_DATA', () => {
    fc.assert(
      fc.property(
        metadataLog,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        (log, flips) => {
          const bytes = encodeSnapshot(applyAll(EMPTY_METADATA_STATE, log)).slice();
          for (const [at, v] of flips) bytes[9 + (at % (bytes.length - 9))] = v;
          new DataView(bytes.buffer).setUint32(5, crc32c(bytes.subarray(9)), false);
          expectCanonicalOrCorrupt(bytes, decodeSnapshot, encodeSnapshot);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("carries each broker's Kafka address from its registration; a restart replaces it", () => {
    const reg = (incarnation: string, kafka?: { host: string; port: number } | null) =>
      ({
        type: 'register-broker',
        brokerId: 2,
        host: 'h2',
        port: 2,
        incarnation,
        brokerEpoch: 0,
        ...(kafka === undefined ? {} : { kafka }),
      }) as const;
    const at = (s: MetadataState, r: ReturnType<typeof reg>) =>
      apply(s, { ...r, brokerEpoch: s.brokerEpochNext });
    const base = oneTopicState();
    expect(base.brokers.get(1)!.kafka).toBeNull();
    const s1 = at(base, reg('a', { host: 'k2', port: 19092 }));
    expect(s1.brokers.get(2)!.kafka).toEqual({ host: 'k2', port: 19092 });
    expect(formatState(s1)).toContain(
      'broker 2 h2:2 epoch=2 fenced heartbeat=0 leaders=0 replicas=0 kafka=k2:19092',
    );
    // Restarted advertising another address: the new registration's address replaces it.
    const s2 = at(s1, reg('b', { host: 'k2b', port: 29092 }));
    expect(s2.brokers.get(2)!.kafka).toEqual({ host: 'k2b', port: 29092 });
    // Restarted without a Kafka listener (or by an older broker): no address any more.
    const s3 = at(s2, reg('c'));
    expect(s3.brokers.get(2)!.kafka).toBeNull();
    expect(at(s2, reg('c', null)).brokers.get(2)!.kafka).toBeNull();
    // The address survives a snapshot.
    expect(decodeSnapshot(encodeSnapshot(s2)).brokers.get(2)!.kafka).toEqual({
      host: 'k2b',
      port: 29092,
    });
  });

  it('decodes a version-1 snapshot (before Kafka addresses): its brokers have none', () => {
    // Written by the version-1 encoder: cluster c1, broker 1 at h:9092 (incarnation i, epoch
    // 1, fenced), topic t on broker 1.
    const v1 = Buffer.from(
      '53424d5301e2484ce70102633102020000010101688447016901010001010174010200000101010100',
      'hex',
    );
    const s = decodeSnapshot(v1);
    expect(s.brokers.get(1)).toMatchObject({ host: 'h', port: 9092, fenced: true, kafka: null });
    expect(topicByName(s, 't')?.partitions[0]?.leader).toBe(1);
    // Without a Kafka address anywhere it is written at version 1 again, byte for byte; with
    // one, at version 2, and it reads back the same.
    expect(hex(encodeSnapshot(s))).toBe(v1.toString('hex'));
    const withKafka = apply(s, {
      type: 'register-broker',
      brokerId: 1,
      host: 'h',
      port: 9092,
      incarnation: 'j',
      brokerEpoch: s.brokerEpochNext,
      kafka: { host: 'k', port: 19092 },
    });
    const v2 = encodeSnapshot(withKafka);
    expect(v2[4]).toBe(2);
    expect(formatState(decodeSnapshot(v2))).toEqual(formatState(withKafka));
    // Version 2 is only for a state with a Kafka address: the same body at 2 is not canonical.
    // (The version-1 body with broker 1's hasKafka = false after its heartbeat tick, byte 19.)
    const body = Buffer.concat([v1.subarray(9, 9 + 19), Buffer.from([0]), v1.subarray(9 + 19)]);
    const header = Buffer.from([0x53, 0x42, 0x4d, 0x53, 2, 0, 0, 0, 0]);
    header.writeUInt32BE(crc32c(body), 5);
    expect(() => decodeSnapshot(Buffer.concat([header, body]))).toThrow(
      /version 2 is not its canonical version/,
    );
    expect(() =>
      decodeSnapshot(Uint8Array.from([...v1.subarray(0, 4), 3, ...v1.subarray(5)])),
    ).toThrow(/snapshot version 3 is not supported/);
  });

  it('re-checks invariants behind a valid checksum', () => {
    // A snapshot whose bytes are intact but whose content breaks an invariant (here: a replica on
    // a broker that is not registered), as a buggy writer would produce.
    const s = oneTopicState();
    const broken: MetadataState = { ...s, brokers: new Map() };
    let thrown: unknown;
    try {
      decodeSnapshot(encodeSnapshot(broken));
    } catch (err) {
      thrown = err;
    }
    expect(isStreamBusError(thrown, ErrorCode.CORRUPT_DATA)).toBe(true);
    expect((thrown as Error).message).toMatch(/replica 1 is not registered/);
  });

  it('add-partitions grows a topic once (a replay is a no-op) and survives a snapshot', () => {
    const base = applyAll(oneTopicState(), [
      {
        type: 'register-broker',
        brokerId: 2,
        host: 'h',
        port: 2,
        incarnation: 'i',
        brokerEpoch: 2,
      },
    ]);
    const grow: MetadataRecord = {
      type: 'add-partitions',
      topicId: 1,
      count: 3,
      partitions: [{ replicas: [2, 1] }, { replicas: [1, 2] }],
    };
    const grown = applyRecord(base, grow);
    expect(grown.noop).toBeNull();
    const t = topicByName(grown.state, 't')!;
    expect(t.partitions).toHaveLength(3);
    // The old partition is the very same object; the new ones start as created ones do.
    expect(t.partitions[0]).toBe(topicByName(base, 't')!.partitions[0]);
    expect(t.partitions[1]).toEqual({
      leader: 2,
      leaderEpoch: 0,
      partitionEpoch: 0,
      replicas: [2, 1],
      isr: [2, 1],
    });
    expect(partitionsOfBroker(grown.state, 2).map((p) => p.partition)).toEqual([1, 2]);
    // Replayed (or planned against a stale count): a no-op naming why.
    const again = applyRecord(grown.state, grow);
    expect(again.state).toBe(grown.state);
    expect(again.noop).toMatch(/has 3 partitions: 2 more do not make 3/);
    expect(applyRecord(base, { ...grow, topicId: 9 }).noop).toMatch(/topic id 9 does not exist/);
    expect(
      applyRecord(base, { ...grow, partitions: [{ replicas: [7] }, { replicas: [1] }] }).noop,
    ).toMatch(/replica broker 7 is not registered/);
    // The snapshot holds the grown topic; applying the record after it changes nothing.
    const bytes = encodeSnapshot(grown.state);
    const back = decodeSnapshot(bytes);
    expect(projectState(back)).toEqual(projectState(grown.state));
    expect(hex(encodeSnapshot(back))).toBe(hex(bytes));
    expect(applyRecord(back, grow).noop).not.toBeNull();
    expect(formatState(back)).toContain('  2: leader=1 epoch=0/0 replicas=[1,2] isr=[1,2]');
  });

  it('turns a record that does not fit the state into a no-op with a reason', () => {
    const base = oneTopicState();
    const cases: Array<[MetadataRecord, RegExp]> = [
      [{ type: 'cluster-bootstrap', clusterId: 'c2' }, /already bootstrapped as c1/],
      [
        {
          type: 'create-topic',
          topicId: 2,
          name: 't',
          partitions: [{ replicas: [1] }],
          configs: [],
        },
        /topic t already exists/,
      ],
      [
        {
          type: 'create-topic',
          topicId: 1,
          name: 'u',
          partitions: [{ replicas: [1] }],
          configs: [],
        },
        /topic id 1 is below the next id 2/,
      ],
      [
        {
          type: 'create-topic',
          topicId: 2,
          name: 'u',
          partitions: [{ replicas: [7] }],
          configs: [],
        },
        /replica broker 7 is not registered/,
      ],
      [
        { type: 'broker-heartbeat', brokerId: 1, brokerEpoch: 9, tick: 1 },
        /epoch 9 is not the registered 1/,
      ],
      [{ type: 'unfence-broker', brokerId: 2, brokerEpoch: 1 }, /broker 2 is not registered/],
      [{ type: 'fence-broker', brokerId: 1, brokerEpoch: 1 }, /already fenced/],
      [
        {
          type: 'partition-change',
          topicId: 1,
          partition: 1,
          leader: 1,
          leaderEpoch: 1,
          replicas: [1],
          isr: [1],
        },
        /has no partition 1/,
      ],
      [
        { type: 'allocate-producer-ids', brokerId: 1, firstProducerId: 5, count: 5 },
        /starts at 5, not at the next free id 0/,
      ],
      [{ type: 'delete-topic', topicId: 9 }, /topic id 9 does not exist/],
      [{ type: 'cluster-bootstrap', clusterId: 'bad id!' }, /malformed cluster-bootstrap/],
    ];
    for (const [record, reason] of cases) {
      const result = applyRecord(base, record);
      expect(result.state).toBe(base);
      expect(result.noop).toMatch(reason);
    }
    expect(applyRecord(EMPTY_METADATA_STATE, cases[4]![0]).noop).toBe(
      'cluster not bootstrapped yet',
    );
  });

  it('answers queries: topic by name, partitions of a broker, live brokers, leader counts', () => {
    const s = applyAll(EMPTY_METADATA_STATE, [
      { type: 'cluster-bootstrap', clusterId: 'c1' },
      {
        type: 'register-broker',
        brokerId: 1,
        host: 'a',
        port: 1,
        incarnation: 'i',
        brokerEpoch: 1,
      },
      {
        type: 'register-broker',
        brokerId: 2,
        host: 'b',
        port: 2,
        incarnation: 'i',
        brokerEpoch: 2,
      },
      {
        type: 'register-broker',
        brokerId: 3,
        host: 'c',
        port: 3,
        incarnation: 'i',
        brokerEpoch: 3,
      },
      { type: 'unfence-broker', brokerId: 1, brokerEpoch: 1 },
      { type: 'unfence-broker', brokerId: 3, brokerEpoch: 3 },
      {
        type: 'create-topic',
        topicId: 1,
        name: 't',
        partitions: [{ replicas: [1, 2] }, { replicas: [3, 1] }, { replicas: [1, 3] }],
        configs: [{ key: 'retention.ms', value: '5' }],
      },
    ]);
    expect(topicByName(s, 't')?.configs).toEqual([{ key: 'retention.ms', value: '5' }]);
    expect(topicByName(s, 'u')).toBeUndefined();
    expect(liveBrokers(s).map((b) => b.id)).toEqual([1, 3]);
    expect(partitionsOfBroker(s, 1).map((p) => [p.partition, p.isLeader])).toEqual([
      [0, true],
      [1, false],
      [2, true],
    ]);
    expect([...leaderCounts(s)]).toEqual([
      [1, 2],
      [2, 0],
      [3, 1],
    ]);
    expect([...replicaCounts(s)]).toEqual([
      [1, 3],
      [2, 1],
      [3, 2],
    ]);
  });
});
