// In-process tests of Broker (a cluster of one) over real TCP on 127.0.0.1 with raw frames. Its
// files are on the storage package's MemoryFileSystem so these tests cover the broker's own
// logic; the real disk is covered by broker-storage.test.ts and the process test.
//
// Offsets: a fresh partition's first data record is at FIRST, since the leader's no-op entry of
// its first Raft term is a control batch at offset 0 (docs/replication.md); consumers skip it.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  BatchField,
  batchSpans,
  crc32c,
  decodeRecordBatch,
  decodeResponse,
  ErrorCode,
  encodeFrame,
  encodeRecordBatch,
  FrameFlag,
  isStreamBusError,
  OffsetSpec,
} from '@streambus/protocol';
import {
  type FileHandle,
  type FileSystem,
  ForwardingFileSystem,
  MemoryFileSystem,
  type OpenMode,
} from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { type BrokerConfig, defaultConfig } from './config.js';
import { RawClient } from './testing/raw-client.js';

const silent = pino({ level: 'silent' });
/** The offset of a fresh partition's first data record (the term's no-op is at 0). */
const FIRST = 1;
const dirs: string[] = [];
const brokers: Broker[] = [];
const clients: RawClient[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sb-broker-'));
  dirs.push(d);
  return d;
}

function testConfig(
  overrides: Partial<BrokerConfig> = {},
  limits: Partial<BrokerConfig['limits']> = {},
): BrokerConfig {
  const base = defaultConfig();
  return {
    ...base,
    dataDir: tempDir(),
    listen: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    ...overrides,
    limits: { ...base.limits, ...limits },
  };
}

async function startBroker(
  config: BrokerConfig,
  fileSystem: FileSystem = new MemoryFileSystem(),
): Promise<Broker> {
  const broker = await Broker.start(config, { logger: silent, fileSystem });
  brokers.push(broker);
  return broker;
}

async function client(broker: Broker): Promise<RawClient> {
  const c = await RawClient.connect(broker.address.port);
  clients.push(c);
  return c;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function values(n: number, prefix = 'v'): Buffer {
  return encodeRecordBatch(
    Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`${prefix}${i}`) })),
  );
}

async function createTopic(
  c: RawClient,
  name: string,
  partitions = 1,
  configs: Record<string, string> = {},
) {
  const res = await c.request(ApiKey.CREATE_TOPICS, {
    topics: [{ name, partitions, replicationFactor: 1, configs }],
    timeoutMs: 1000,
  });
  expect(res.topics[0]).toMatchObject({ name, errorCode: 0 });
}

function produce(c: RawClient, topic: string, records: Buffer, acks: -1 | 1 = 1, partition = 0) {
  return c.request(ApiKey.PRODUCE, {
    acks,
    timeoutMs: 5000,
    topics: [{ name: topic, partitions: [{ partition, records }] }],
  });
}

function fetch(
  c: RawClient,
  topic: string,
  fetchOffset: number,
  opts: { maxWaitMs?: number; minBytes?: number; maxBytes?: number } = {},
) {
  return c.request(ApiKey.FETCH, {
    maxWaitMs: opts.maxWaitMs ?? 0,
    minBytes: opts.minBytes ?? 0,
    maxBytes: opts.maxBytes ?? 1024 * 1024,
    topics: [
      {
        name: topic,
        partitions: [
          { partition: 0, fetchOffset, partitionMaxBytes: opts.maxBytes ?? 1024 * 1024 },
        ],
      },
    ],
  });
}

/** The data records of `bytes` (control batches skipped, as consumers do). */
function decodeAll(bytes: Uint8Array): Array<{ offset: number; value: string }> {
  const out: Array<{ offset: number; value: string }> = [];
  for (const { position } of batchSpans(bytes)) {
    const { header, records } = decodeRecordBatch(bytes, position);
    if ((header.attributes & 0x20) !== 0) continue;
    for (const r of records)
      out.push({ offset: r.offset, value: Buffer.from(r.value!).toString() });
  }
  return out;
}

async function latestOf(c: RawClient, topic: string): Promise<number> {
  const r = await c.request(ApiKey.LIST_OFFSETS, {
    topics: [{ name: topic, partitions: [{ partition: 0, timestamp: OffsetSpec.LATEST }] }],
  });
  return r.topics[0]!.partitions[0]!.offset;
}

async function until(cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('broker APIs', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker(testConfig());
  });

  it('negotiates versions and describes the cluster', async () => {
    const c = await client(broker);
    const v = await c.request(ApiKey.API_VERSIONS, {});
    expect(v.apis.map((a) => a.apiKey).sort((a, b) => a - b)).toEqual(
      Object.values(ApiKey).sort((a, b) => a - b),
    );
    const bad = await c.sendRaw(ApiKey.METADATA, { topics: null }, { apiVersion: 9 });
    expect(bad.flags & FrameFlag.ERROR).toBeTruthy();
    await expect(
      Promise.resolve().then(() => decodeResponse(ApiKey.METADATA, bad)),
    ).rejects.toMatchObject({
      code: ErrorCode.UNSUPPORTED_VERSION,
    });
    const md = await c.request(ApiKey.METADATA, { topics: null });
    expect(md.brokers).toEqual([
      { nodeId: 1, host: '127.0.0.1', port: broker.address.port, rack: null },
    ]);
    const unknown = await c.request(ApiKey.METADATA, { topics: ['nope'] });
    expect(unknown.topics[0]!.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  it('creates, describes, alters and deletes topics with specific errors', async () => {
    const c = await client(broker);
    await createTopic(c, 'admin-t', 3, { 'retention.ms': '60000' });
    const res = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [
        { name: 'admin-t', partitions: 1, replicationFactor: 1, configs: {} },
        { name: 'bad name', partitions: 1, replicationFactor: 1, configs: {} },
        { name: 'rf3', partitions: 1, replicationFactor: 3, configs: {} },
        {
          name: 'badcfg',
          partitions: 1,
          replicationFactor: -1,
          configs: { durability: 'sometimes' },
        },
        { name: 'zero', partitions: 0, replicationFactor: 1, configs: {} },
      ],
      timeoutMs: 1000,
    });
    expect(res.topics.map((t) => t.errorCode)).toEqual([
      ErrorCode.TOPIC_ALREADY_EXISTS,
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      ErrorCode.INVALID_REPLICATION_FACTOR,
      ErrorCode.INVALID_CONFIG,
      ErrorCode.INVALID_PARTITIONS,
    ]);
    expect(res.topics[3]!.errorMessage).toMatch(
      /^durability: expected one of always, interval, none/,
    );
    const md = await c.request(ApiKey.METADATA, { topics: ['admin-t'] });
    expect(md.topics[0]!.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    const altered = await c.request(ApiKey.ALTER_CONFIGS, {
      topics: [{ name: 'admin-t', configs: { 'retention.ms': null, 'max.message.bytes': '2048' } }],
    });
    expect(altered.topics[0]!.errorCode).toBe(0);
    const described = await c.request(ApiKey.DESCRIBE_CONFIGS, { topics: ['admin-t', 'ghost'] });
    const configs = Object.fromEntries(described.topics[0]!.configs.map((e) => [e.name, e]));
    expect(configs['max.message.bytes']).toMatchObject({ value: '2048', isDefault: false });
    expect(configs['retention.ms']).toMatchObject({ isDefault: true });
    expect(configs.partitions).toMatchObject({ value: '3', readOnly: true });
    expect(described.topics[1]!.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    const tooBig = await produce(c, 'admin-t', values(300));
    expect(tooBig.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    const del = await c.request(ApiKey.DELETE_TOPICS, {
      topics: ['admin-t', 'admin-t'],
      timeoutMs: 1000,
    });
    expect(del.topics.map((t) => t.errorCode)).toEqual([0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]);
    await createTopic(c, 'admin-t', 1);
    const fresh = await fetch(c, 'admin-t', 0);
    expect(fresh.topics[0]!.partitions[0]!.errorCode).toBe(0);
    expect(fresh.topics[0]!.partitions[0]!.highWatermark).toBeLessThanOrEqual(FIRST);
    expect(decodeAll(fresh.topics[0]!.partitions[0]!.records)).toEqual([]);
  });

  it('produces with acks 1, all and 0, and fetches the same batches back', async () => {
    const c = await client(broker);
    await createTopic(c, 'pf');
    const r1 = await produce(c, 'pf', values(3, 'a'), 1);
    expect(r1.topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: FIRST,
      logStartOffset: 0,
    });
    const r2 = await produce(c, 'pf', values(2, 'b'), -1);
    expect(r2.topics[0]!.partitions[0]!.baseOffset).toBe(FIRST + 3);
    c.sendNoResponse(ApiKey.PRODUCE, {
      acks: 0,
      timeoutMs: 1000,
      topics: [{ name: 'pf', partitions: [{ partition: 0, records: values(1, 'c') }] }],
    });
    // The acks=0 record is never answered: a long-poll at its offset wakes when it lands.
    const f = await fetch(c, 'pf', FIRST + 5, { maxWaitMs: 2000, minBytes: 1 });
    expect(decodeAll(f.topics[0]!.partitions[0]!.records)).toEqual([
      { offset: FIRST + 5, value: 'c0' },
    ]);
    const all = decodeAll((await fetch(c, 'pf', 0)).topics[0]!.partitions[0]!.records);
    expect(all).toEqual(
      ['a0', 'a1', 'a2', 'b0', 'b1', 'c0'].map((value, i) => ({ offset: FIRST + i, value })),
    );
    expect(f.topics[0]!.partitions[0]!.highWatermark).toBe(FIRST + 6);
    const fromMiddle = await fetch(c, 'pf', FIRST + 3, { maxBytes: 1 });
    expect(decodeAll(fromMiddle.topics[0]!.partitions[0]!.records).map((r) => r.offset)).toEqual([
      FIRST + 3,
      FIRST + 4,
    ]);
    const outOfRange = await fetch(c, 'pf', 99);
    expect(outOfRange.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    const unknown = await produce(c, 'nope', values(1));
    expect(unknown.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  it('rejects a bad batch with a specific error and appends nothing of it', async () => {
    const c = await client(broker);
    await createTopic(c, 'bad');
    const good = values(2);
    const corrupt = values(2);
    corrupt[corrupt.length - 1]! ^= 0xff;
    const res = await produce(c, 'bad', Buffer.concat([good, corrupt]));
    expect(res.topics[0]!.partitions[0]).toMatchObject({
      errorCode: ErrorCode.CORRUPT_MESSAGE,
      baseOffset: -1,
    });
    const lo = await c.request(ApiKey.LIST_OFFSETS, {
      topics: [{ name: 'bad', partitions: [{ partition: 0, timestamp: OffsetSpec.LATEST }] }],
    });
    expect(lo.topics[0]!.partitions[0]!.offset).toBeLessThanOrEqual(FIRST);
    const garbage = await produce(c, 'bad', Buffer.from('not a batch at all'));
    expect(garbage.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.CORRUPT_MESSAGE);
  });

  it('refuses a batch whose records contradict its header (valid CRC), only in its partition', async () => {
    const c = await client(broker);
    await createTopic(c, 'framing', 2);
    // One record inside, the header (CRC fixed) claiming two: before record walking it was
    // stored, and every fetch of the partition failed to decode from then on.
    const lying = values(1, 'a record long enough for two-');
    lying.writeInt32BE(2, BatchField.RECORD_COUNT);
    lying.writeInt32BE(1, BatchField.LAST_OFFSET_DELTA);
    lying.writeUInt32BE(crc32c(lying, 0, BatchField.ATTRIBUTES, lying.length), BatchField.CRC);
    const res = await c.request(ApiKey.PRODUCE, {
      acks: 1,
      timeoutMs: 5000,
      topics: [
        {
          name: 'framing',
          partitions: [
            { partition: 0, records: Buffer.concat([values(2, 'ok'), lying]) },
            { partition: 1, records: values(2, 'p1-') },
          ],
        },
      ],
    });
    const [p0, p1] = res.topics[0]!.partitions;
    expect(p0).toMatchObject({ partition: 0, errorCode: ErrorCode.INVALID_RECORD, baseOffset: -1 });
    expect(p0!.errorMessage).toMatch(/batch 1: the header declares 2 records/);
    expect(p1).toMatchObject({ partition: 1, errorCode: 0, baseOffset: FIRST });
    // Nothing of partition 0's set was appended; the next good batch starts at FIRST, decodes.
    expect(
      (await produce(c, 'framing', values(1, 'after'))).topics[0]!.partitions[0],
    ).toMatchObject({ errorCode: 0, baseOffset: FIRST });
    expect(decodeAll((await fetch(c, 'framing', 0)).topics[0]!.partitions[0]!.records)).toEqual([
      { offset: FIRST, value: 'after0' },
    ]);
  });

  it('answers a produce naming several topics per topic and partition, in request order', async () => {
    const c = await client(broker);
    await createTopic(c, 'multi-a', 2);
    await createTopic(c, 'multi-b', 1);
    const res = await c.request(ApiKey.PRODUCE, {
      acks: 1,
      timeoutMs: 5000,
      topics: [
        {
          name: 'multi-a',
          partitions: [
            { partition: 1, records: values(1, 'a1-') },
            { partition: 0, records: values(2, 'a0-') },
          ],
        },
        { name: 'multi-none', partitions: [] },
        { name: 'multi-missing', partitions: [{ partition: 0, records: values(1) }] },
        { name: 'multi-b', partitions: [{ partition: 0, records: values(3, 'b-') }] },
      ],
    });
    expect(
      res.topics.map((t) => [t.name, t.partitions.map((p) => [p.partition, p.errorCode])]),
    ).toEqual([
      [
        'multi-a',
        [
          [1, 0],
          [0, 0],
        ],
      ],
      ['multi-none', []],
      ['multi-missing', [[0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]]],
      ['multi-b', [[0, 0]]],
    ]);
    expect(decodeAll((await fetch(c, 'multi-b', 0)).topics[0]!.partitions[0]!.records)).toEqual([
      { offset: FIRST, value: 'b-0' },
      { offset: FIRST + 1, value: 'b-1' },
      { offset: FIRST + 2, value: 'b-2' },
    ]);
  });

  it('answers a retried idempotent batch with its original offset and refuses a gap', async () => {
    const c = await client(broker);
    await createTopic(c, 'idem');
    const init = await c.request(ApiKey.INIT_PRODUCER_ID, {});
    const pid = init.producerId;
    const b0 = encodeRecordBatch([{ value: Buffer.from('x') }, { value: Buffer.from('y') }], {
      producerId: pid,
      producerEpoch: 0,
      baseSequence: 0,
    });
    const b1 = encodeRecordBatch([{ value: Buffer.from('z') }], {
      producerId: pid,
      producerEpoch: 0,
      baseSequence: 2,
    });
    await produce(c, 'idem', values(1));
    expect(
      (await produce(c, 'idem', Buffer.from(b0), -1)).topics[0]!.partitions[0]!.baseOffset,
    ).toBe(FIRST + 1);
    expect(
      (await produce(c, 'idem', Buffer.from(b1), -1)).topics[0]!.partitions[0]!.baseOffset,
    ).toBe(FIRST + 3);
    const retry = await produce(c, 'idem', Buffer.from(b0), -1);
    expect(retry.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, baseOffset: FIRST + 1 });
    const gap = encodeRecordBatch([{ value: Buffer.from('g') }], {
      producerId: pid,
      producerEpoch: 0,
      baseSequence: 7,
    });
    const gapRes = await produce(c, 'idem', gap, -1);
    expect(gapRes.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(gapRes.topics[0]!.partitions[0]!.errorMessage).toMatch(/sequence 7 does not follow 2/);
    const all = decodeAll((await fetch(c, 'idem', 0)).topics[0]!.partitions[0]!.records);
    expect(all.map((r) => r.value)).toEqual(['v0', 'x', 'y', 'z']);
    const bumped = await c.request(ApiKey.INIT_PRODUCER_ID, { producerId: pid, producerEpoch: 0 });
    expect(bumped).toMatchObject({ producerId: pid, producerEpoch: 1 });
    const other = await c.request(ApiKey.INIT_PRODUCER_ID, {});
    expect(other.producerId).not.toBe(pid);
  });

  it('long-polls until data arrives, and until maxWaitMs when none does', async () => {
    const c = await client(broker);
    const p = await client(broker);
    await createTopic(c, 'lp');
    const started = Date.now();
    const waiting = fetch(c, 'lp', FIRST, { maxWaitMs: 5000, minBytes: 1 });
    await new Promise((r) => setTimeout(r, 100));
    await produce(p, 'lp', values(2, 'w'));
    const res = await waiting;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(decodeAll(res.topics[0]!.partitions[0]!.records).map((r) => r.value)).toEqual([
      'w0',
      'w1',
    ]);
    const t0 = Date.now();
    const empty = await fetch(c, 'lp', FIRST + 2, { maxWaitMs: 250, minBytes: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(empty.topics[0]!.partitions[0]!.records.length).toBe(0);
  });

  it('lists offsets and deletes records', async () => {
    const c = await client(broker);
    await createTopic(c, 'lo');
    const t1 = Date.now() - 10_000;
    await produce(c, 'lo', encodeRecordBatch([{ value: Buffer.from('old'), timestamp: t1 }]));
    await produce(
      c,
      'lo',
      encodeRecordBatch([{ value: Buffer.from('new'), timestamp: t1 + 5000 }]),
    );
    const lo = await c.request(ApiKey.LIST_OFFSETS, {
      topics: [
        {
          name: 'lo',
          partitions: [
            { partition: 0, timestamp: OffsetSpec.EARLIEST },
            { partition: 0, timestamp: OffsetSpec.LATEST },
            { partition: 0, timestamp: t1 + 1000 },
            { partition: 0, timestamp: t1 + 60_000 },
            { partition: 5, timestamp: OffsetSpec.LATEST },
          ],
        },
      ],
    });
    expect(lo.topics[0]!.partitions.map((p) => [p.errorCode, p.offset, p.timestamp])).toEqual([
      [0, 0, -1],
      [0, FIRST + 2, -1],
      [0, FIRST + 1, t1 + 5000], // the found record's timestamp, as Kafka answers
      [0, -1, -1],
      [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1],
    ]);
    const del = await c.request(ApiKey.DELETE_RECORDS, {
      topics: [{ name: 'lo', partitions: [{ partition: 0, offset: FIRST + 1 }] }],
      timeoutMs: 1000,
    });
    expect(del.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, lowWatermark: FIRST + 1 });
    const tooFar = await c.request(ApiKey.DELETE_RECORDS, {
      topics: [{ name: 'lo', partitions: [{ partition: 0, offset: 10 }] }],
      timeoutMs: 1000,
    });
    expect(tooFar.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect((await fetch(c, 'lo', 0)).topics[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.OFFSET_OUT_OF_RANGE,
    );
  });

  it('answers pipelined requests in order', async () => {
    const c = await client(broker);
    await createTopic(c, 'pipe');
    const pending = [];
    for (let i = 0; i < 100; i++) {
      pending.push(
        i % 3 === 0
          ? c.sendRaw(ApiKey.API_VERSIONS, {})
          : c.sendRaw(ApiKey.PRODUCE, {
              acks: 1,
              timeoutMs: 1000,
              topics: [
                { name: 'pipe', partitions: [{ partition: 0, records: values(1, `p${i}-`) }] },
              ],
            }),
      );
    }
    await Promise.all(pending);
    const ids = c.frames.map((f) => f.correlationId);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const offsets = c.frames
      .filter((f) => f.apiKey === ApiKey.PRODUCE)
      .map((f) => decodeResponse(ApiKey.PRODUCE, f).topics[0]!.partitions[0]!.baseOffset);
    expect(offsets).toEqual(offsets.map((_, i) => FIRST + i));
  });

  it('serves metrics, liveness and readiness over HTTP', async () => {
    const c = await client(broker);
    await createTopic(c, 'metrics-t');
    await produce(c, 'metrics-t', values(4));
    const base = `http://127.0.0.1:${broker.httpAddress!.port}`;
    expect((await globalThis.fetch(`${base}/live`)).status).toBe(200);
    expect((await globalThis.fetch(`${base}/ready`)).status).toBe(200);
    expect((await globalThis.fetch(`${base}/nope`)).status).toBe(404);
    const text = await (await globalThis.fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/streambus_requests_total\{api="produce"\} \d+/);
    expect(text).toMatch(/streambus_request_duration_seconds_bucket\{le="0.001",api="produce"\}/);
    expect(text).toContain(
      `streambus_partition_log_end_offset{topic="metrics-t",partition="0"} ${FIRST + 4}`,
    );
    expect(text).toMatch(
      /streambus_partition_log_size_bytes\{topic="metrics-t",partition="0"\} \d+/,
    );
    expect(text).toMatch(/streambus_connections \d+/);
    expect(text).toMatch(/streambus_network_bytes_in_total \d+/);
    expect(text).toContain('streambus_fsync_duration_seconds');
  });
});

describe('hostile and broken connections', () => {
  let broker: Broker;
  beforeAll(async () => {
    const config = testConfig(
      {},
      { frameBytesMax: 64 * 1024, inflightBytesMax: 1024 * 1024, idleTimeoutMs: 400 },
    );
    config.defaults.maxMessageBytes = 32 * 1024;
    broker = await startBroker(config);
  });

  async function stillServes(): Promise<void> {
    const c = await client(broker);
    const v = await c.request(ApiKey.API_VERSIONS, {});
    expect(v.errorCode).toBe(0);
  }

  it('closes a connection that sends garbage, and only that one', async () => {
    const bystander = await client(broker);
    const c = await client(broker);
    c.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(4)));
    await c.closed;
    expect((await bystander.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    await stillServes();
  });

  it('answers an oversized frame with FRAME_TOO_LARGE echoing its header, then closes', async () => {
    const c = await client(broker);
    const header = Buffer.alloc(14);
    header.writeUInt32BE(10 * 1024 * 1024, 0);
    header.writeUInt16BE(ApiKey.PRODUCE, 4);
    header.writeUInt32BE(4242, 8);
    c.socket.write(header);
    await c.closed;
    expect(c.frames).toHaveLength(1);
    expect(c.frames[0]).toMatchObject({ correlationId: 4242, apiKey: ApiKey.PRODUCE });
    expect(() => decodeResponse(ApiKey.PRODUCE, c.frames[0]!)).toThrow(
      expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }),
    );
    await stillServes();
  });

  it('keeps the connection after a malformed body or an unknown API', async () => {
    const c = await client(broker);
    c.socket.write(
      encodeFrame(
        { apiKey: ApiKey.METADATA, apiVersion: 0, correlationId: 7, flags: 0 },
        Buffer.from([0xc1, 0xc1]),
      ),
    );
    c.socket.write(
      encodeFrame({ apiKey: 999, apiVersion: 0, correlationId: 8, flags: 0 }, Buffer.alloc(0)),
    );
    await waitFor(() => c.frames.length === 2);
    const codes = c.frames.map((f) => {
      try {
        decodeResponse(f.apiKey as 1, f);
        return 0;
      } catch (err) {
        return isStreamBusError(err) ? err.code : -1;
      }
    });
    expect(codes).toEqual([ErrorCode.INVALID_REQUEST, ErrorCode.UNKNOWN_API_KEY]);
    expect((await c.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
  });

  it('reaps a truncated frame left hanging and a half-open connection', async () => {
    const truncated = await client(broker);
    const frame = encodeFrame(
      { apiKey: ApiKey.API_VERSIONS, apiVersion: 0, correlationId: 1, flags: 0 },
      Buffer.alloc(100),
    );
    truncated.socket.write(frame.subarray(0, 40));
    const halfOpen = await client(broker);
    halfOpen.socket.end(frame.subarray(0, 20));
    await Promise.all([truncated.closed, halfOpen.closed]);
    await stillServes();
  });
});

describe('bounds', () => {
  it('stops reading a connection at inflightRequestsMax (back-pressure)', async () => {
    const broker = await startBroker(testConfig({}, { inflightRequestsMax: 2 }));
    const c = await client(broker);
    const observer = await client(broker);
    await createTopic(observer, 'bp-wait');
    await createTopic(observer, 'bp-other');
    const polls = [
      fetch(c, 'bp-wait', FIRST, { maxWaitMs: 700, minBytes: 1 }),
      fetch(c, 'bp-wait', FIRST, { maxWaitMs: 700, minBytes: 1 }),
    ];
    await new Promise((r) => setTimeout(r, 50));
    const third = produce(c, 'bp-other', values(1));
    await new Promise((r) => setTimeout(r, 300));
    const latest = () =>
      observer.request(ApiKey.LIST_OFFSETS, {
        topics: [
          { name: 'bp-other', partitions: [{ partition: 0, timestamp: OffsetSpec.LATEST }] },
        ],
      });
    expect((await latest()).topics[0]!.partitions[0]!.offset).toBe(FIRST); // not read yet
    await Promise.all(polls);
    expect((await third).topics[0]!.partitions[0]!.errorCode).toBe(0);
    expect((await latest()).topics[0]!.partitions[0]!.offset).toBe(FIRST + 1);
  });

  it('keeps serving others while a client does not read its responses', async () => {
    const broker = await startBroker(
      testConfig(
        // max.message.bytes must leave the request framing room below the frame limit.
        { defaults: { ...defaultConfig().defaults, maxMessageBytes: 512 * 1024 } },
        { inflightBytesMax: 1024 * 1024, frameBytesMax: 1024 * 1024 },
      ),
    );
    const admin = await client(broker);
    await createTopic(admin, 'slow');
    const big = encodeRecordBatch(
      Array.from({ length: 100 }, () => ({ value: Buffer.alloc(5000, 1) })),
    );
    await produce(admin, 'slow', big);
    const slow = await client(broker);
    slow.socket.pause();
    for (let i = 0; i < 400; i++) {
      slow.socket.write(
        (await import('@streambus/protocol')).encodeRequest(ApiKey.FETCH, 1000 + i, {
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: 1024 * 1024,
          topics: [
            {
              name: 'slow',
              partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: 1024 * 1024 }],
            },
          ],
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    expect((await admin.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
    // 400 x 500 KB of responses were asked for; the broker must not have produced them all.
    const sent = Number((await broker.metrics.bytesOut.get()).values[0]?.value ?? 0);
    expect(sent).toBeLessThan(100 * 1024 * 1024);
  });

  it('refuses connections beyond connectionsMax and serves the others', async () => {
    const broker = await startBroker(testConfig({}, { connectionsMax: 3 }));
    const kept = [await client(broker), await client(broker), await client(broker)];
    await Promise.all(kept.map((c) => c.request(ApiKey.API_VERSIONS, {})));
    const extra = await client(broker);
    await extra.closed;
    expect((await kept[0]!.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    const text = await broker.metrics.registry.metrics();
    expect(text).toMatch(/streambus_connections_rejected_total 1/);
    expect(text).toMatch(/streambus_connections 3/);
  });

  it('times out a request that cannot finish (acks=all while the fsync never completes)', async () => {
    const fs = new GatedSyncFileSystem(new MemoryFileSystem());
    const broker = await startBroker(testConfig({}, { requestTimeoutMs: 300 }), fs);
    const c = await client(broker);
    await createTopic(c, 'slowack', 1);
    await until(async () => (await latestOf(c, 'slowack')) === FIRST);
    fs.hold();
    const frame = await c.sendRaw(ApiKey.PRODUCE, {
      acks: -1,
      timeoutMs: 1000,
      topics: [{ name: 'slowack', partitions: [{ partition: 0, records: values(1) }] }],
    });
    expect(() => decodeResponse(ApiKey.PRODUCE, frame)).toThrow(
      expect.objectContaining({ code: ErrorCode.REQUEST_TIMED_OUT }),
    );
    expect((await c.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    fs.release();
  });
});

describe('restart and shutdown', () => {
  it('keeps topics and producer state across a restart', async () => {
    const fs = new MemoryFileSystem();
    const config = testConfig();
    const b1 = await startBroker(config, fs);
    const c1 = await client(b1);
    await createTopic(c1, 'durable-meta', 2, { 'retention.bytes': '1000000' });
    const pid = (await c1.request(ApiKey.INIT_PRODUCER_ID, {})).producerId;
    const batch = encodeRecordBatch([{ value: Buffer.from('once') }], {
      producerId: pid,
      producerEpoch: 0,
      baseSequence: 0,
    });
    expect(
      (await produce(c1, 'durable-meta', Buffer.from(batch), -1, 1)).topics[0]!.partitions[0]!
        .baseOffset,
    ).toBe(FIRST);
    c1.close();
    await b1.close();
    const b2 = await startBroker({ ...config, listen: { host: '127.0.0.1', port: 0 } }, fs);
    const c2 = await client(b2);
    const md = await c2.request(ApiKey.METADATA, { topics: null });
    expect(md.topics.map((t) => [t.name, t.partitions.length])).toEqual([['durable-meta', 2]]);
    const retry = await produce(c2, 'durable-meta', Buffer.from(batch), -1, 1);
    expect(retry.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, baseOffset: FIRST });
    const lo = await c2.request(ApiKey.LIST_OFFSETS, {
      topics: [
        { name: 'durable-meta', partitions: [{ partition: 1, timestamp: OffsetSpec.LATEST }] },
      ],
    });
    // Partition 1 holds the one record, once (and its terms' no-ops).
    expect(lo.topics[0]!.partitions[0]!.offset).toBeGreaterThan(FIRST);
    const p1 = await c2.request(ApiKey.FETCH, {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1 << 20,
      topics: [
        {
          name: 'durable-meta',
          partitions: [{ partition: 1, fetchOffset: 0, partitionMaxBytes: 1 << 20 }],
        },
      ],
    });
    expect(decodeAll(p1.topics[0]!.partitions[0]!.records)).toEqual([
      { offset: FIRST, value: 'once' },
    ]);
    const next = (await c2.request(ApiKey.INIT_PRODUCER_ID, {})).producerId;
    expect(next).toBeGreaterThan(pid);
  });

  it('flushes at shutdown so acks=all waiting for an interval flush is answered', async () => {
    const broker = await startBroker(testConfig());
    const c = await client(broker);
    await createTopic(c, 'flush-at-close', 1, { durability: 'interval', 'flush.ms': '86400000' });
    const pending = produce(c, 'flush-at-close', values(3), -1);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await broker.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await pending).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: FIRST,
    });
  });

  it('answers a parked fetch and refuses new work when closing', async () => {
    const broker = await startBroker(testConfig());
    const c = await client(broker);
    await createTopic(c, 'closing');
    const parked = fetch(c, 'closing', FIRST, { maxWaitMs: 10_000, minBytes: 1 });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await broker.close();
    const res = await parked;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(res.topics[0]!.partitions[0]!.records.length).toBe(0);
    await c.closed;
  });
});

/**
 * A file system whose every operation waits while `holding` (a start-up the test stretches).
 */
class GatedFileSystem extends ForwardingFileSystem {
  holding = false;
  private held: Array<() => void> = [];
  private gate(): Promise<void> | undefined {
    return this.holding ? new Promise<void>((resolve) => this.held.push(resolve)) : undefined;
  }
  release(): void {
    this.holding = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    await this.gate();
    const handle = await this.inner.open(path, mode);
    const sync = handle.sync.bind(handle);
    return Object.assign(Object.create(handle) as FileHandle, {
      sync: async (): Promise<void> => {
        await this.gate();
        await sync();
      },
    });
  }
  override async mkdir(dir: string): Promise<void> {
    await this.gate();
    return this.inner.mkdir(dir);
  }
  override async syncDir(dir: string): Promise<void> {
    await this.gate();
    return this.inner.syncDir(dir);
  }
  override async rename(from: string, to: string): Promise<void> {
    await this.gate();
    return this.inner.rename(from, to);
  }
}

describe('a client connecting while the broker starts', () => {
  it('is held until the broker is ready, and its first request is answered, not lost', async () => {
    // A free port, so the client can dial it before start() resolves.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const fs = new GatedFileSystem(new MemoryFileSystem());
    let ready = false;
    const starting = startBroker(testConfig({ listen: { host: '127.0.0.1', port } }), fs).then(
      (b) => {
        ready = true;
        return b;
      },
    );
    starting.catch(() => undefined);
    let c: RawClient | null = null;
    const deadline = Date.now() + 10_000;
    while (c === null && Date.now() < deadline) {
      c = await RawClient.connect(port).catch(() => null);
      if (c === null) await new Promise((r) => setTimeout(r, 2));
    }
    expect(c).not.toBeNull();
    clients.push(c!);
    // The listener is up; hold the rest of the start-up so the request meets a held socket.
    fs.holding = true;
    const answer = c!.request(ApiKey.API_VERSIONS, {
      clientSoftwareName: 'test',
      clientSoftwareVersion: '0',
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(ready).toBe(false);
    fs.release();
    await starting;
    const res = await Promise.race([
      answer,
      new Promise<null>((r) => setTimeout(() => r(null), 5_000)),
    ]);
    expect(res).not.toBeNull();
    expect(res!.errorCode).toBe(0);
  });
});

/**
 * A file system whose fsyncs of partition segment files the test can hold: writes land at once
 * (readable), but while held no segment fsync completes until `release()`.
 */
class GatedSyncFileSystem extends ForwardingFileSystem {
  private holding = false;
  private held: Array<() => void> = [];

  /** From now on, segment fsyncs wait for `release`. */
  hold(): void {
    this.holding = true;
  }

  /** Lets every held fsync complete, and later ones run at once. */
  release(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const resolve of held) resolve();
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const handle = await this.inner.open(path, mode);
    if (!path.includes('/topics/') || !path.endsWith('.log')) return handle;
    const sync = handle.sync.bind(handle);
    return Object.assign(Object.create(handle) as FileHandle, {
      sync: async (): Promise<void> => {
        if (this.holding) await new Promise<void>((resolve) => this.held.push(resolve));
        await sync();
      },
    });
  }
}

describe('high watermark and acks under each durability policy', () => {
  const fs = new GatedSyncFileSystem(new MemoryFileSystem());
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker(testConfig(), fs);
  });

  it("'always': nothing undurable is fetched or reported; acks=1 answers once written; long-polls wake when durability advances", async () => {
    const c = await client(broker);
    const c2 = await client(broker);
    await createTopic(c, 'hw-always', 1, { durability: 'always' });
    await until(async () => (await latestOf(c, 'hw-always')) === FIRST);
    fs.hold();
    // acks=1 is answered while the fsync is still pending.
    const r1 = await produce(c, 'hw-always', values(3, 'a'), 1);
    expect(r1.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, baseOffset: FIRST });
    // Not durable: not served, not the high watermark, not found by time.
    const f0 = await fetch(c, 'hw-always', 0);
    expect(f0.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, highWatermark: FIRST });
    expect(decodeAll(f0.topics[0]!.partitions[0]!.records)).toEqual([]);
    const lo = await c.request(ApiKey.LIST_OFFSETS, {
      topics: [
        {
          name: 'hw-always',
          partitions: [
            { partition: 0, timestamp: OffsetSpec.LATEST },
            { partition: 0, timestamp: 1 },
          ],
        },
      ],
    });
    expect(lo.topics[0]!.partitions.map((p) => p.offset)).toEqual([FIRST, -1]);
    // A long-poll parks; an acks=all produce waits for the fsync.
    const polled = fetch(c2, 'hw-always', FIRST, { maxWaitMs: 5000, minBytes: 1 });
    let allAnswered = false;
    const all = produce(c, 'hw-always', values(2, 'b'), -1).then((r) => {
      allAnswered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(allAnswered).toBe(false);
    fs.release();
    const woke = await polled;
    const part = woke.topics[0]!.partitions[0]!;
    expect(part.highWatermark).toBeGreaterThan(FIRST);
    expect(
      decodeAll(part.records)
        .map((r) => r.value)
        .slice(0, 3),
    ).toEqual(['a0', 'a1', 'a2']);
    expect((await all).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: FIRST + 3,
    });
    const now = (await fetch(c, 'hw-always', 0)).topics[0]!.partitions[0]!;
    expect(now.highWatermark).toBe(FIRST + 5);
    expect(decodeAll(now.records).map((r) => r.value)).toEqual(['a0', 'a1', 'a2', 'b0', 'b1']);
    // Durable up to FIRST + 5; a further write is cut off at the durable end in a fetch.
    fs.hold();
    await produce(c, 'hw-always', values(1, 'c'), 1);
    const cut = await fetch(c, 'hw-always', 0);
    expect(cut.topics[0]!.partitions[0]!.highWatermark).toBe(FIRST + 5);
    expect(decodeAll(cut.topics[0]!.partitions[0]!.records)).toHaveLength(5);
    fs.release();
  });

  it("'none': the written end is the high watermark (served before any fsync)", async () => {
    const c = await client(broker);
    await createTopic(c, 'hw-none', 1, { durability: 'none' });
    await produce(c, 'hw-none', values(2, 'n'), 1);
    const f = await fetch(c, 'hw-none', 0);
    expect(f.topics[0]!.partitions[0]!.highWatermark).toBe(FIRST + 2);
    expect(decodeAll(f.topics[0]!.partitions[0]!.records).map((r) => r.value)).toEqual([
      'n0',
      'n1',
    ]);
  });
});

// Its own broker: the hostile block's 400 ms idle timeout closes connections opened early while a
// loaded machine is still opening the rest, and the test then waits on a closed socket.
describe('many connections', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startBroker(testConfig());
  });

  it('serves hundreds of concurrent connections', async () => {
    const admin = await client(broker);
    await createTopic(admin, 'many', 4);
    const conns = await Promise.all(Array.from({ length: 300 }, () => client(broker)));
    const results = await Promise.all(
      conns.map((c, i) =>
        c.request(ApiKey.PRODUCE, {
          acks: 1,
          timeoutMs: 5000,
          topics: [
            { name: 'many', partitions: [{ partition: i % 4, records: values(2, `c${i}-`) }] },
          ],
        }),
      ),
    );
    expect(results.every((r) => r.topics[0]!.partitions[0]!.errorCode === 0)).toBe(true);
    const lo = await admin.request(ApiKey.LIST_OFFSETS, {
      topics: [
        {
          name: 'many',
          partitions: [0, 1, 2, 3].map((partition) => ({
            partition,
            timestamp: OffsetSpec.LATEST,
          })),
        },
      ],
    });
    expect(lo.topics[0]!.partitions.reduce((n, p) => n + p.offset - FIRST, 0)).toBe(600);
  });
});
