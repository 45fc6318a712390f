// The Kafka listener of an in-process cluster-path broker (a cluster of one), driven with the
// raw Kafka client: ApiVersions (v3 flexible answer, v4 fallback), what is advertised, Metadata
// with the advertised Kafka addresses, acks=0, Fetch bytes identical to the native listener's,
// long-poll, and refused requests: each closes its own connection only, logged with the client
// id, and the broker keeps serving. Plus a fuzz run of random and mutated golden frames.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ApiKey, ErrorCode, encodeRecordBatch, kafka } from '@streambus/protocol';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from '../broker.js';
import { defaultConfig } from '../config.js';
import { RawClient } from '../testing/raw-client.js';
import { KAFKA_LISTENER_RANGES } from './advertised.js';
import { KafkaRawClient } from './kafka-raw-client.js';

const GOLDEN = fileURLToPath(new URL('../../../protocol/testdata/kafka/', import.meta.url));

const logLines: Array<Record<string, unknown>> = [];
const logger = pino(
  { level: 'warn' },
  new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logLines.push(JSON.parse(line));
      done();
    },
  }),
);

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function batch(values: string[]) {
  return encodeRecordBatch(values.map((v) => ({ value: Buffer.from(v) })));
}

describe('the Kafka listener', () => {
  let broker: Broker;
  let dir: string;
  let port: number;
  const open: KafkaRawClient[] = [];
  const client = async (id = 'listener-test') => {
    const c = await KafkaRawClient.connect(port, id);
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-kafka-listener-'));
    broker = await Broker.start(
      {
        ...defaultConfig(),
        dataDir: dir,
        listen: { host: '127.0.0.1', port: 0 },
        http: null,
        logLevel: 'warn',
        kafka: {
          listen: { host: '127.0.0.1', port: 0 },
          advertised: { host: 'kafka-1.example', port: 19092 },
          brokers: [{ id: 2, host: 'kafka-2.example', port: 19093 }],
        },
        groups: {
          ...defaultConfig().groups,
          offsetsTopicPartitions: 2,
          offsetsTopicReplicationFactor: 1,
          initialRebalanceDelayMs: 100,
        },
      },
      { logger },
    );
    port = broker.kafkaAddress!.port;
    const c = await client();
    await until('the topic', async () => {
      const r = await c.request('CreateTopics', 3, {
        topics: [
          { name: 't', numPartitions: 2, replicationFactor: -1, assignments: [], configs: [] },
        ],
        timeoutMs: 5000,
        validateOnly: false,
      });
      const code = r.topics[0]!.errorCode;
      return code === 0 || code === ErrorCode.TOPIC_ALREADY_EXISTS ? true : undefined;
    });
    await until('leaders', async () => {
      const md = await c.request('Metadata', 4, {
        topics: [{ name: 't' }],
        allowAutoTopicCreation: false,
      });
      return md.topics[0]!.partitions.every((p) => p.leaderId === 1) ? true : undefined;
    });
  });
  afterAll(async () => {
    for (const c of open) await c.close().catch(() => {});
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers ApiVersions v3 (flexible) with exactly the advertised set', async () => {
    const c = await client();
    const r = await c.request('ApiVersions', 3, {
      clientSoftwareName: 'test',
      clientSoftwareVersion: '1',
    });
    expect(r.errorCode).toBe(0);
    expect(r.apiKeys).toEqual(kafka.apiVersionsEntries(KAFKA_LISTENER_RANGES));
    const keys = r.apiKeys.map((a) => a.apiKey);
    // librdkafka's probes (§1.3): Produce from 0, FindCoordinator and InitProducerId from 0.
    expect(r.apiKeys.find((a) => a.apiKey === kafka.ApiKey.Produce)).toMatchObject({
      minVersion: 0,
      maxVersion: 7,
    });
    expect(keys).toContain(kafka.ApiKey.FindCoordinator);
    // Not implemented, so not advertised: SASL (no security yet).
    for (const k of [kafka.ApiKey.SaslHandshake, kafka.ApiKey.SaslAuthenticate]) {
      expect(keys).not.toContain(k);
    }
    // The group APIs, on the group coordinator, at the §1.2 ranges.
    expect(r.apiKeys.find((a) => a.apiKey === kafka.ApiKey.JoinGroup)).toMatchObject({
      minVersion: 0,
      maxVersion: 5,
    });
    expect(keys).toContain(kafka.ApiKey.OffsetCommit);
    const v2 = await c.request('ApiVersions', 2, {
      clientSoftwareName: '',
      clientSoftwareVersion: '',
    });
    expect(v2.apiKeys).toEqual(r.apiKeys);
  });

  it('answers ApiVersions above v3 with error 35 in a v0 body, and the connection stays up', async () => {
    const c = await client();
    const frame = Buffer.alloc(4 + 10);
    frame.writeInt32BE(10, 0);
    frame.writeInt16BE(kafka.ApiKey.ApiVersions, 4);
    frame.writeInt16BE(9, 6);
    frame.writeInt32BE(77, 8);
    frame.writeInt16BE(-1, 12);
    const answer = await c.sendFrame(frame, 77);
    const body = kafka.decodeResponse('ApiVersions', 0, answer).body;
    expect(body.errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
    expect(body.apiKeys).toEqual([{ apiKey: 18, minVersion: 0, maxVersion: 3 }]);
    expect(
      (await c.request('ApiVersions', 0, { clientSoftwareName: '', clientSoftwareVersion: '' }))
        .errorCode,
    ).toBe(0);
  });

  it("Metadata lists the brokers' advertised Kafka addresses and this node as controller", async () => {
    const c = await client();
    const md = await c.request('Metadata', 4, { topics: null, allowAutoTopicCreation: false });
    expect(md.brokers).toEqual([{ nodeId: 1, host: 'kafka-1.example', port: 19092, rack: null }]);
    expect(md.controllerId).toBe(1);
    const t = md.topics.find((x) => x.name === 't')!;
    expect(t.partitions.map((p) => [p.partitionIndex, p.leaderId, p.errorCode])).toEqual([
      [0, 1, 0],
      [1, 1, 0],
    ]);
    const none = await c.request('Metadata', 1, { topics: [], allowAutoTopicCreation: true });
    expect(none.topics).toEqual([]);
    const unknown = await c.request('Metadata', 4, {
      topics: [{ name: 'nope' }],
      allowAutoTopicCreation: false,
    });
    expect(unknown.topics[0]!.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  it('produces at every acks; acks=0 gets no answer and the next request still does', async () => {
    const c = await client();
    const produce = (acks: number, v: string) => ({
      transactionalId: null,
      acks,
      timeoutMs: 5000,
      topics: [{ name: 't', partitions: [{ index: 0, records: batch([v]) }] }],
    });
    const one = await c.request('Produce', 7, produce(1, 'acks1'));
    expect(one.responses[0]!.partitions[0]!.errorCode).toBe(0);
    c.send('Produce', 7, produce(0, 'acks0'));
    const all = await c.request('Produce', 3, produce(-1, 'acksAll'));
    const p = all.responses[0]!.partitions[0]!;
    expect(p.errorCode).toBe(0);
    expect(p.baseOffset).toBe(one.responses[0]!.partitions[0]!.baseOffset + 2);
    const bad = await c.request('Produce', 7, produce(2, 'x'));
    expect(bad.responses[0]!.partitions[0]!.errorCode).toBe(ErrorCode.INVALID_REQUIRED_ACKS);
    const unknown = await c.request('Produce', 7, {
      ...produce(1, 'x'),
      topics: [{ name: 'nope', partitions: [{ index: 0, records: batch(['x']) }] }],
    });
    expect(unknown.responses[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
  });

  it('Fetch returns the same record bytes as the native listener, never null records', async () => {
    const c = await client();
    const r = await c.request('Produce', 7, {
      transactionalId: null,
      acks: -1,
      timeoutMs: 5000,
      topics: [{ name: 't', partitions: [{ index: 1, records: batch(['f1', 'f2', 'f3']) }] }],
    });
    const base = r.responses[0]!.partitions[0]!.baseOffset;
    const fetchReq = (offset: number, maxWaitMs = 0) => ({
      replicaId: -1,
      maxWaitMs,
      minBytes: 1,
      maxBytes: 1 << 20,
      isolationLevel: 1,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [
        {
          topic: 't',
          partitions: [
            {
              partition: 1,
              currentLeaderEpoch: -1,
              fetchOffset: offset,
              logStartOffset: -1,
              partitionMaxBytes: 1 << 20,
            },
          ],
        },
      ],
      forgottenTopicsData: [],
      rackId: '',
    });
    const k = (await c.request('Fetch', 11, fetchReq(base))).responses[0]!.partitions[0]!;
    expect(k.errorCode).toBe(0);
    expect(k.abortedTransactions).toEqual([]); // read_committed: a list, no aborted batches
    const n = await RawClient.connect(broker.address.port);
    try {
      const nf = await n.request(ApiKey.FETCH, {
        maxWaitMs: 0,
        minBytes: 1,
        maxBytes: 1 << 20,
        topics: [
          {
            name: 't',
            partitions: [{ partition: 1, fetchOffset: base, partitionMaxBytes: 1 << 20 }],
          },
        ],
      });
      expect(
        Buffer.from(k.records!).equals(Buffer.from(nf.topics[0]!.partitions[0]!.records)),
      ).toBe(true);
    } finally {
      await n.close();
    }
    expect(k.highWatermark).toBe(base + 3);
    expect(k.lastStableOffset).toBe(base + 3);
    // Long-poll: nothing past the end, so it waits about maxWaitMs and answers empty bytes.
    const started = Date.now();
    const empty = (await c.request('Fetch', 11, fetchReq(base + 3, 300))).responses[0]!
      .partitions[0]!;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(empty.records).not.toBeNull();
    expect(empty.records!.length).toBe(0);
    // Out of range is the Kafka code, for that partition.
    const far = (await c.request('Fetch', 4, fetchReq(base + 1000))).responses[0]!.partitions[0]!;
    expect(far.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  });

  it('admin APIs: configs (replace-all and incremental), DeleteRecords, DescribeCluster, CreatePartitions', async () => {
    const c = await client();
    await until('topic cfg', async () => {
      const r = await c.request('CreateTopics', 4, {
        topics: [
          {
            name: 'cfg',
            numPartitions: 1,
            replicationFactor: -1,
            assignments: [],
            configs: [{ name: 'retention.ms', value: '60000' }],
          },
        ],
        timeoutMs: 5000,
        validateOnly: false,
      });
      const code = r.topics[0]!.errorCode;
      return code === 0 || code === ErrorCode.TOPIC_ALREADY_EXISTS ? true : undefined;
    });
    const describe = async () => {
      const r = await c.request('DescribeConfigs', 2, {
        resources: [{ resourceType: 2, resourceName: 'cfg', configurationKeys: null }],
        includeSynonyms: false,
      });
      expect(r.results[0]!.errorCode).toBe(0);
      return new Map(r.results[0]!.configs.map((e) => [e.name, e]));
    };
    let cfg = await describe();
    expect(cfg.get('retention.ms')).toMatchObject({ value: '60000', configSource: 1 });
    expect(cfg.get('segment.bytes')!.configSource).toBe(5); // a default
    // Incremental: SET one key, the other override stays.
    const inc = await c.request('IncrementalAlterConfigs', 0, {
      resources: [
        {
          resourceType: 2,
          resourceName: 'cfg',
          configs: [{ name: 'retention.bytes', configOperation: 0, value: '1048576' }],
        },
      ],
      validateOnly: false,
    });
    expect(inc.responses[0]!.errorCode).toBe(0);
    cfg = await describe();
    expect(cfg.get('retention.ms')!.value).toBe('60000');
    expect(cfg.get('retention.bytes')!.value).toBe('1048576');
    // AlterConfigs replaces the whole set: retention.ms goes back to its default.
    const alt = await c.request('AlterConfigs', 1, {
      resources: [
        {
          resourceType: 2,
          resourceName: 'cfg',
          configs: [{ name: 'retention.bytes', value: '2097152' }],
        },
      ],
      validateOnly: false,
    });
    expect(alt.responses[0]!.errorCode).toBe(0);
    cfg = await describe();
    expect(cfg.get('retention.bytes')!.value).toBe('2097152');
    expect(cfg.get('retention.ms')!.configSource).toBe(5);
    const badKey = await c.request('AlterConfigs', 0, {
      resources: [
        { resourceType: 2, resourceName: 'cfg', configs: [{ name: 'no.such', value: '1' }] },
      ],
      validateOnly: false,
    });
    expect(badKey.responses[0]!.errorCode).toBe(ErrorCode.INVALID_CONFIG);
    const broker4 = await c.request('DescribeConfigs', 0, {
      resources: [{ resourceType: 4, resourceName: '1', configurationKeys: null }],
      includeSynonyms: false,
    });
    expect(broker4.results[0]!.errorCode).toBe(ErrorCode.INVALID_REQUEST);
    // DeleteRecords moves the log start (at a batch boundary here: the native path's unit);
    // ListOffsets earliest then answers it.
    const produce = (v: string[]) =>
      c.request('Produce', 7, {
        transactionalId: null,
        acks: -1,
        timeoutMs: 5000,
        topics: [{ name: 'cfg', partitions: [{ index: 0, records: batch(v) }] }],
      });
    await produce(['a', 'b']);
    const second = (await produce(['c', 'd'])).responses[0]!.partitions[0]!.baseOffset;
    const del = await c.request('DeleteRecords', 1, {
      topics: [{ name: 'cfg', partitions: [{ partitionIndex: 0, offset: second }] }],
      timeoutMs: 5000,
    });
    expect(del.topics[0]!.partitions[0]).toEqual({
      partitionIndex: 0,
      lowWatermark: second,
      errorCode: 0,
    });
    const earliest = await c.request('ListOffsets', 1, {
      replicaId: -1,
      isolationLevel: 0,
      topics: [{ name: 'cfg', partitions: [{ partitionIndex: 0, timestamp: -2 }] }],
    });
    expect(earliest.topics[0]!.partitions[0]!.offset).toBe(second);
    // DescribeCluster: the Kafka addresses, this node as controller.
    const dc = await c.request('DescribeCluster', 0, { includeClusterAuthorizedOperations: false });
    expect(dc.errorCode).toBe(0);
    expect(dc.brokers).toEqual([{ brokerId: 1, host: 'kafka-1.example', port: 19092, rack: null }]);
    expect(dc.controllerId).toBe(1);
    // CreatePartitions: Kafka's own checks, validateOnly, then a real increase (v1 and the
    // flexible v3), with assignments chosen by the controller or given by the client.
    const grow = (
      version: number,
      topics: { name: string; count: number; assignments: { brokerIds: number[] }[] | null }[],
      validateOnly = false,
    ) => c.request('CreatePartitions', version, { topics, timeoutMs: 5000, validateOnly });
    const cp = await grow(1, [
      { name: 'cfg', count: 1, assignments: null },
      { name: 'cfg2', count: 3, assignments: null },
      { name: 'cfg', count: 3, assignments: [{ brokerIds: [7] }, { brokerIds: [1] }] },
      { name: 'cfg', count: 2, assignments: [{ brokerIds: [1, 1] }] },
      { name: 'cfg', count: 3, assignments: [{ brokerIds: [1] }] },
      { name: '__consumer_offsets', count: 60, assignments: null },
    ]);
    expect(cp.results.map((r) => r.errorCode)).toEqual([
      ErrorCode.INVALID_PARTITIONS,
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      ErrorCode.INVALID_TOPIC_EXCEPTION,
    ]);
    expect(cp.results[2]!.errorMessage).toMatch(/broker 7 is not registered/);
    const partitionsOf = async (name: string) =>
      (await c.request('Metadata', 4, { topics: [{ name }], allowAutoTopicCreation: false }))
        .topics[0]!.partitions;
    const dry = await grow(3, [{ name: 'cfg', count: 3, assignments: null }], true);
    expect(dry.results).toEqual([{ name: 'cfg', errorCode: 0, errorMessage: null }]);
    expect(await partitionsOf('cfg')).toHaveLength(1);
    const real = await grow(3, [{ name: 'cfg', count: 3, assignments: null }]);
    expect(real.results).toEqual([{ name: 'cfg', errorCode: 0, errorMessage: null }]);
    const given = await grow(1, [{ name: 'cfg', count: 4, assignments: [{ brokerIds: [1] }] }]);
    expect(given.results[0]!.errorCode).toBe(0);
    const parts = await partitionsOf('cfg');
    expect(parts.map((p) => [p.partitionIndex, p.replicaNodes])).toEqual([
      [0, [1]],
      [1, [1]],
      [2, [1]],
      [3, [1]],
    ]);
    // A new partition takes records at once (it elected its leader before the answer).
    const intoNew = await c.request('Produce', 7, {
      transactionalId: null,
      acks: -1,
      timeoutMs: 5000,
      topics: [{ name: 'cfg', partitions: [{ index: 3, records: batch(['new']) }] }],
    });
    expect(intoNew.responses[0]!.partitions[0]).toMatchObject({ errorCode: 0, baseOffset: 1 });
    const again = await grow(0, [{ name: 'cfg', count: 4, assignments: null }]);
    expect(again.results[0]!.errorCode).toBe(ErrorCode.INVALID_PARTITIONS);
    // DeleteTopics
    const dt = await c.request('DeleteTopics', 1, {
      topicNames: ['cfg', 'cfg-none'],
      timeoutMs: 5000,
    });
    expect(dt.responses.map((r) => r.errorCode)).toEqual([0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]);
  });

  it('an idempotent batch resent on a new connection after the first dropped is stored once', async () => {
    const c1 = await client('idem');
    const pid = await c1.request('InitProducerId', 1, {
      transactionalId: null,
      transactionTimeoutMs: 60_000,
    });
    expect(pid.errorCode).toBe(0);
    const records = encodeRecordBatch(
      ['i1', 'i2'].map((v) => ({ value: Buffer.from(v) })),
      { producerId: pid.producerId, producerEpoch: pid.producerEpoch, baseSequence: 0 },
    );
    const body = {
      transactionalId: null,
      acks: -1,
      timeoutMs: 5000,
      topics: [{ name: 't', partitions: [{ index: 0, records }] }],
    };
    // The first attempt is written and the connection dropped before its answer is read.
    c1.socket.write(c1.encode('Produce', 7, body).frame);
    c1.socket.destroy();
    const c2 = await client('idem');
    const retry = await until('the retry', async () => {
      const r = (await c2.request('Produce', 7, body)).responses[0]!.partitions[0]!;
      return r.errorCode === 0 ? r : undefined;
    });
    const again = (await c2.request('Produce', 7, body)).responses[0]!.partitions[0]!;
    expect(again).toMatchObject({ errorCode: 0, baseOffset: retry.baseOffset });
    const p = await c2.fetchPartition('t', 0, retry.baseOffset);
    let stored = 0;
    for (let pos = 0; pos + 61 <= p.records!.length; ) {
      const view = Buffer.from(p.records!.buffer, p.records!.byteOffset + pos);
      stored += view.readInt32BE(57);
      pos += 12 + view.readInt32BE(8);
    }
    expect(stored).toBe(2);
  });

  it('a frame over limits.frameBytesMax closes that connection, before it is buffered', async () => {
    const c = await client('big');
    const huge = Buffer.alloc(12);
    huge.writeInt32BE(200 * 1024 * 1024, 0); // 200 MiB declared; frameBytesMax is 16 MiB
    huge.writeInt16BE(kafka.ApiKey.Metadata, 4);
    huge.writeInt16BE(4, 6);
    huge.writeInt32BE(9, 8);
    await expect(c.sendFrame(huge, 9)).rejects.toThrow('connection closed');
    const other = await client();
    const v = await other.request('ApiVersions', 1, {
      clientSoftwareName: '',
      clientSoftwareVersion: '',
    });
    expect(v.errorCode).toBe(0);
  });

  it("FindCoordinator answers the coordinator's advertised Kafka address", async () => {
    const c = await client();
    const r = await until('a coordinator', async () => {
      const x = await c.request('FindCoordinator', 2, { key: 'g', keyType: 0 });
      return x.errorCode === 0 ? x : undefined;
    });
    expect(r).toMatchObject({ nodeId: 1, host: 'kafka-1.example', port: 19092 });
    const v0 = await c.request('FindCoordinator', 0, { key: 'g', keyType: 0 });
    expect(v0).toMatchObject({ errorCode: 0, nodeId: 1, port: 19092 });
    // Transactions are not supported: no transaction coordinator.
    const txn = await c.request('FindCoordinator', 1, { key: 'tx', keyType: 1 });
    expect(txn.errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
  });

  it('JoinGroup below v4 gets a member id at once (no MEMBER_ID_REQUIRED round trip); v5 gets 79 first', async () => {
    const c = await client('old-joiner');
    const join = (version: number, memberId: string) =>
      c.request('JoinGroup', version, {
        groupId: `old-${version}`,
        sessionTimeoutMs: 10_000,
        rebalanceTimeoutMs: 10_000,
        memberId,
        groupInstanceId: null,
        protocolType: 'consumer',
        protocols: [{ name: 'range', metadata: Buffer.from([0, 1]) }],
      });
    const v3 = await until('a coordinator for v3', async () => {
      const r = await join(3, '');
      // Retriable while __consumer_offsets is created and its partitions get leaders.
      const retriable: number[] = [
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
      ];
      return retriable.includes(r.errorCode) ? undefined : r;
    });
    expect(v3.errorCode).toBe(0);
    expect(v3.memberId).toMatch(/^old-joiner-/);
    expect(v3.leader).toBe(v3.memberId);
    const first = await join(5, '');
    expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    const second = await join(5, first.memberId);
    expect(second).toMatchObject({ errorCode: 0, memberId: first.memberId });
    const hb = await c.request('Heartbeat', 3, {
      groupId: 'old-5',
      generationId: second.generationId,
      memberId: second.memberId,
      groupInstanceId: null,
    });
    // The leader has not synced yet: Kafka answers REBALANCE_IN_PROGRESS (or 0 once stable).
    expect([0, ErrorCode.REBALANCE_IN_PROGRESS]).toContain(hb.errorCode);
    const leave = await c.request('LeaveGroup', 1, { groupId: 'old-5', memberId: second.memberId });
    expect(leave.errorCode).toBe(0);
  });

  it('a refused request closes its own connection only, logged with the client id', async () => {
    const good = await client('bystander');
    const cases: Array<{ name: string; frame: () => Buffer }> = [
      {
        name: 'Produce v2 (magic 0/1 message sets)',
        frame: () => {
          const f = Buffer.alloc(4 + 8 + 2 + 7);
          f.writeInt32BE(f.length - 4, 0);
          f.writeInt16BE(0, 4);
          f.writeInt16BE(2, 6);
          f.writeInt32BE(5, 8);
          f.writeInt16BE(3, 12);
          f.write('bad', 14);
          return f;
        },
      },
      {
        name: 'an API that is not advertised (SaslHandshake)',
        frame: () =>
          kafka.encodeRequest(
            'SaslHandshake',
            { apiVersion: 1, correlationId: 5, clientId: 'bad' },
            { mechanism: 'PLAIN' },
          ),
      },
      {
        name: 'a truncated Metadata body',
        frame: () => {
          const f = kafka.encodeRequest(
            'Metadata',
            { apiVersion: 4, correlationId: 5, clientId: 'bad' },
            {
              topics: [{ name: 'abc' }],
              allowAutoTopicCreation: false,
            },
          );
          const cut = f.subarray(0, f.length - 3);
          cut.writeInt32BE(cut.length - 4, 0);
          return Buffer.from(cut);
        },
      },
    ];
    for (const k of cases) {
      logLines.length = 0;
      const bad = await client('bad');
      await expect(bad.sendFrame(k.frame(), 5), k.name).rejects.toThrow('connection closed');
      const line = logLines.find((l) => l.msg === 'closing connection: request refused');
      expect(line, k.name).toBeDefined();
      expect(line!.clientId).toBe('bad');
      const v = await good.request('ApiVersions', 2, {
        clientSoftwareName: '',
        clientSoftwareVersion: '',
      });
      expect(v.errorCode).toBe(0);
    }
  });

  it('random bytes and mutated golden frames never crash the broker', async () => {
    const golden = readdirSync(GOLDEN)
      .filter((f) => f.endsWith('.bin') && !f.endsWith('.response.bin'))
      .map((f) => readFileSync(join(GOLDEN, f)));
    const send = (bytes: Buffer) =>
      new Promise<void>((resolve) => {
        const s = connect({ host: '127.0.0.1', port });
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('connect', () => {
          s.write(bytes);
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 15);
        });
        s.on('close', () => resolve());
      });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }).map((u) => Buffer.from(u)),
          fc
            .tuple(
              fc.integer({ min: 0, max: golden.length - 1 }),
              fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
                minLength: 1,
                maxLength: 6,
              }),
            )
            .map(([i, flips]) => {
              const g = Buffer.from(golden[i]!);
              for (const [pos, val] of flips) g[4 + (pos % Math.max(1, g.length - 4))] = val;
              return g;
            }),
        ),
        async (bytes) => {
          await send(bytes);
        },
      ),
      { numRuns: 150 },
    );
    const c = await client();
    const v = await c.request('ApiVersions', 3, {
      clientSoftwareName: 'after',
      clientSoftwareVersion: 'fuzz',
    });
    expect(v.errorCode).toBe(0);
    const md = await c.request('Metadata', 4, {
      topics: [{ name: 't' }],
      allowAutoTopicCreation: false,
    });
    expect(md.topics[0]!.errorCode).toBe(0);
  });
});
