import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeRecord,
  encodeRecord,
  formatRecord,
  type MetadataRecord,
  recordProblem,
} from './metadata-records.js';
import { expectCanonicalOrCorrupt, metadataRecord } from './testing-arbitraries.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A registration without a Kafka address (version 1). */
const REGISTER_V1: MetadataRecord = {
  type: 'register-broker',
  brokerId: 300,
  host: 'h',
  port: 9092,
  incarnation: 'i',
  brokerEpoch: 7,
};

function expectCorrupt(bytes: Uint8Array, message?: RegExp): void {
  let thrown: unknown;
  try {
    decodeRecord(bytes);
  } catch (err) {
    thrown = err;
  }
  expect(isStreamBusError(thrown, ErrorCode.CORRUPT_DATA), String(thrown)).toBe(true);
  if (message) expect((thrown as Error).message).toMatch(message);
}

describe('metadata record codec', () => {
  it('pins the version-1 bytes (golden)', () => {
    // Changing these bytes breaks committed logs: add a version instead.
    expect(hex(encodeRecord({ type: 'cluster-bootstrap', clusterId: 'c1' }))).toBe('0101026331');
    expect(
      hex(
        encodeRecord({
          type: 'partition-change',
          topicId: 3,
          partition: 1,
          leader: -1,
          leaderEpoch: 2,
          replicas: [1, 2],
          isr: [2],
        }),
      ),
    ).toBe('0109030101020201020102');
    expect(hex(encodeRecord(REGISTER_V1))).toBe('0102ac0201688447016907');
    // add-partitions (tag 15): topic 3 grows to 3 partitions, new ones on [1,2] and [2,1].
    const grow: MetadataRecord = {
      type: 'add-partitions',
      topicId: 3,
      count: 3,
      partitions: [{ replicas: [1, 2] }, { replicas: [2, 1] }],
    };
    expect(hex(encodeRecord(grow))).toBe('010f030302020102020201');
    expect(formatRecord(grow)).toBe('add-partitions id=3 count=3 replicas=[1,2][2,1]');
  });

  it('a registration with a Kafka address is version 2; one without stays version 1', () => {
    const v1 = REGISTER_V1;
    // null and absent both mean "no Kafka listener": the version-1 bytes pinned above.
    expect(hex(encodeRecord({ ...v1, kafka: null }))).toBe('0102ac0201688447016907');
    const v2: MetadataRecord = { ...v1, kafka: { host: 'k', port: 19092 } };
    expect(hex(encodeRecord(v2))).toBe('0202ac0201688447016907016b949501');
    expect(decodeRecord(encodeRecord(v2))).toEqual(v2);
    // A version-1 record (written before issue 11) decodes without a Kafka address.
    expect(decodeRecord(Buffer.from('0102ac0201688447016907', 'hex'))).toEqual(v1);
    expect(formatRecord(v2)).toBe(
      'register-broker broker=300 addr=h:9092 incarnation=i epoch=7 kafka=k:19092',
    );
    expect(recordProblem({ ...v1, kafka: { host: '', port: 1 } })).toMatch(/Kafka host is empty/);
    expect(recordProblem({ ...v1, kafka: { host: 'k', port: 0 } })).toMatch(/Kafka port 0/);
    // Version 2 without the address (cut short) is truncated, not a registration without one.
    expectCorrupt(Buffer.from('0202ac0201688447016907', 'hex'), /Kafka host length: truncated/);
  });

  it('round-trips every record type', () => {
    fc.assert(
      fc.property(metadataRecord, (r) => {
        const bytes = encodeRecord(r);
        const back = decodeRecord(bytes);
        expect(back).toEqual(r);
        expect(hex(encodeRecord(back))).toBe(hex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses to encode a malformed record', () => {
    const bad: MetadataRecord[] = [
      { type: 'cluster-bootstrap', clusterId: '' },
      {
        type: 'register-broker',
        brokerId: 1,
        host: 'h',
        port: 0,
        incarnation: 'i',
        brokerEpoch: 1,
      },
      {
        type: 'create-topic',
        topicId: 1,
        name: '..',
        partitions: [{ replicas: [1] }],
        configs: [],
      },
      {
        type: 'create-topic',
        topicId: 1,
        name: 't',
        partitions: [{ replicas: [1, 1] }],
        configs: [],
      },
      { type: 'create-topic', topicId: 1, name: 't', partitions: [], configs: [] },
      {
        type: 'create-topic',
        topicId: 1,
        name: 't',
        partitions: [{ replicas: [1] }],
        configs: [
          { key: 'b', value: '1' },
          { key: 'a', value: '1' },
        ],
      },
      {
        type: 'partition-change',
        topicId: 1,
        partition: 0,
        leader: 3,
        leaderEpoch: 0,
        replicas: [1, 2],
        isr: [1],
      },
      {
        type: 'partition-change',
        topicId: 1,
        partition: 0,
        leader: 1,
        leaderEpoch: 0,
        replicas: [1],
        isr: [1, 2],
      },
      { type: 'allocate-producer-ids', brokerId: 1, firstProducerId: 0, count: 0 },
      {
        type: 'allocate-producer-ids',
        brokerId: 1,
        firstProducerId: Number.MAX_SAFE_INTEGER,
        count: 2,
      },
      { type: 'alter-topic-config', topicId: 1, changes: [] },
      { type: 'add-partitions', topicId: 1, count: 2, partitions: [] },
      { type: 'add-partitions', topicId: 1, count: 1, partitions: [{ replicas: [1] }] },
      { type: 'add-partitions', topicId: 1, count: 3, partitions: [{ replicas: [1, 1] }] },
    ];
    for (const r of bad) {
      expect(recordProblem(r), formatRecord(r)).not.toBeNull();
      expect(() => encodeRecord(r)).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
      );
    }
  });

  it('names what is wrong with specific garbage', () => {
    expectCorrupt(new Uint8Array([]), /record version: truncated/);
    expectCorrupt(new Uint8Array([3, 1]), /version 3 is not supported/);
    // Version 2 differs only for a register-broker with a Kafka address: anything else is
    // written at version 1, and the same record at version 2 is not canonical.
    expectCorrupt(new Uint8Array([2, 1, 2, 0x63, 0x31]), /not in its canonical version/);
    expectCorrupt(new Uint8Array([1, 99]), /unknown metadata record tag 99/);
    expectCorrupt(new Uint8Array([1, 1, 2, 0x63, 0x31, 0]), /trailing bytes/);
    expectCorrupt(new Uint8Array([1, 7, 0x80, 0x00]), /non-minimal varint/);
    expectCorrupt(new Uint8Array([1, 1, 2, 0xff, 0xfe]), /not valid UTF-8/);
    expectCorrupt(new Uint8Array([1, 1, 0]), /cluster id '' is not valid/);
    expectCorrupt(new Uint8Array([1, 6, 1, 1, 0x74, 0xff, 0xff, 0x03]), /partitions/);
  });

  it('decoder fuzz: random bytes decode to a valid record or throw CORRUPT_DATA', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
        // Most random bytes die at the version byte: also try them behind a valid header.
        for (const bytes of [
          tail,
          Uint8Array.from([1, ...tail]),
          Uint8Array.from([1, 6, ...tail]),
          Uint8Array.from([2, 2, ...tail]),
        ]) {
          checkDecodeTotal(bytes);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decoder fuzz: mutated valid encodings decode to a valid record or throw CORRUPT_DATA', () => {
    fc.assert(
      fc.property(
        metadataRecord,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: -3, max: 3 }),
        (r, flips, resize) => {
          const bytes = Array.from(encodeRecord(r));
          for (const [at, v] of flips) bytes[at % bytes.length] = v;
          if (resize < 0) bytes.length = Math.max(0, bytes.length + resize);
          else for (let i = 0; i < resize; i++) bytes.push(0x80);
          checkDecodeTotal(Uint8Array.from(bytes));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

function checkDecodeTotal(bytes: Uint8Array): void {
  const record = expectCanonicalOrCorrupt(bytes, decodeRecord, encodeRecord);
  if (record !== null) expect(recordProblem(record)).toBeNull();
}
