// A damaged partition does not take the broker down (in-process broker, a cluster of one, over
// the real storage package): its replica is offline (metadata, /ready, metrics,
// KAFKA_STORAGE_ERROR to produce, fetch and list-offsets), the damage is logged at warn with its
// offsets and counted, the other partitions serve, and RepairPartition brings it back stating the
// offsets lost, its Raft state consistent with the repaired log (it leads, appends, restarts).
// Also: partition limits checked up front, and startup with a partition that cannot open.
//
// Offsets: each term's leader no-op is a control batch taking one offset (docs/replication.md),
// so the data batches are located by reading the log, not assumed to start at 0.
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  batchSpans,
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  OffsetSpec,
  readBatchHeader,
} from '@streambus/protocol';
import { FaultyFileSystem, NodeFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker, type BrokerOptions } from './broker.js';
import { type BrokerConfig, defaultConfig } from './config.js';
import { RawClient } from './testing/raw-client.js';
import { testResources } from './testing/test-resources.js';

const { dirs, open } = testResources({ afterEach, afterAll });

function config(dataDir: string, limits: Partial<BrokerConfig['limits']> = {}): BrokerConfig {
  const c = defaultConfig();
  return {
    ...c,
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    logLevel: 'warn',
    limits: { ...c.limits, ...limits },
  };
}

async function start(
  dataDir: string,
  options: BrokerOptions & { limits?: Partial<BrokerConfig['limits']> } = {},
) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const broker = await Broker.start(config(dataDir, options.limits), {
    ...options,
    logger,
  });
  const c = await RawClient.connect(broker.address.port);
  open.push(broker, { close: () => c.close() });
  const http = `http://127.0.0.1:${broker.httpAddress!.port}`;
  return { broker, c, lines, http };
}

function produce(c: RawClient, topic: string, partition: number, value: string) {
  return c.request(ApiKey.PRODUCE, {
    acks: -1,
    timeoutMs: 5000,
    topics: [
      {
        name: topic,
        partitions: [
          {
            partition,
            records: encodeRecordBatch([
              { value: Buffer.from(value.padEnd(300, '.')) },
              { value: Buffer.from('x') },
            ]),
          },
        ],
      },
    ],
  });
}

function fetchAt(c: RawClient, topic: string, partition: number, fetchOffset: number) {
  return c.request(ApiKey.FETCH, {
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes: 1 << 20,
    topics: [{ name: topic, partitions: [{ partition, fetchOffset, partitionMaxBytes: 1 << 20 }] }],
  });
}

async function latest(c: RawClient, topic: string, partition: number) {
  const r = await c.request(ApiKey.LIST_OFFSETS, {
    topics: [{ name: topic, partitions: [{ partition, timestamp: OffsetSpec.LATEST }] }],
  });
  return r.topics[0]!.partitions[0]!;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The partition's latest offset once it serves (the repaired replica elects itself). */
function servingAt(c: RawClient, topic: string, partition: number, offset: number) {
  return until(`${topic}-${partition} at ${offset}`, async () => {
    const l = await latest(c, topic, partition);
    return l.errorCode === 0 && l.offset === offset ? l : undefined;
  });
}

/**
 * A topic `t` with 2 partitions, 20 data batches of 2 records in partition 0 over several
 * segments (after the term's no-op at offset 0), one in partition 1. Then one data batch in the
 * middle of the first, sealed segment gets a byte flipped: `damaged` is its offset range.
 */
async function seeded(corrupt = true) {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-damage-'));
  dirs.push(dataDir);
  const { broker, c } = await start(dataDir);
  const created = await c.request(ApiKey.CREATE_TOPICS, {
    topics: [
      {
        name: 't',
        partitions: 2,
        replicationFactor: 1,
        configs: { 'segment.bytes': '2048', 'max.message.bytes': '1024' },
      },
    ],
    timeoutMs: 1000,
  });
  expect(created.topics[0]!.errorCode).toBe(0);
  for (let i = 0; i < 20; i++)
    expect((await produce(c, 't', 0, `v${i}`)).topics[0]!.partitions[0]!.errorCode).toBe(0);
  expect((await produce(c, 't', 1, 'other')).topics[0]!.partitions[0]!.errorCode).toBe(0);
  const end0 = (await latest(c, 't', 0)).offset;
  const end1 = (await latest(c, 't', 1)).offset;
  await broker.close();
  c.close();
  open.length = 0;
  const pdir = join(dataDir, 'topics', '1', '0');
  const none = { fromOffset: -1, toOffset: -1 };
  if (!corrupt) return { dataDir, pdir, file: '', damaged: none, end0, end1 };
  const first = readdirSync(pdir)
    .filter((n) => n.endsWith('.log'))
    .sort()[0]!;
  // Flip a byte inside the third batch (the second data batch) of the first, sealed segment.
  const file = join(pdir, first);
  const data = readFileSync(file);
  const spans = [...batchSpans(data)];
  expect(spans.length).toBeGreaterThan(3);
  const at = spans[2]!.position;
  const h = readBatchHeader(data, at);
  expect(h.recordCount).toBe(2);
  const damaged = { fromOffset: h.baseOffset, toOffset: h.baseOffset + h.lastOffsetDelta };
  data[at + 100]! ^= 0xff;
  writeFileSync(file, data);
  return { dataDir, pdir, file, damaged, end0, end1 };
}

describe('damaged partitions', () => {
  it('are offline at startup while the rest serves; repair --truncate brings them back, leading and appending', async () => {
    const { dataDir, file, damaged, end0, end1 } = await seeded();
    const { c, lines, http } = await start(dataDir);

    // The other partition serves (its new term's no-op first, then this batch).
    await servingAt(c, 't', 1, end1 + 1);
    expect((await produce(c, 't', 1, 'more')).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: end1 + 1,
    });
    // The damaged one answers KAFKA_STORAGE_ERROR naming the reason and the repair command.
    const p0 = (await produce(c, 't', 0, 'no')).topics[0]!.partitions[0]!;
    expect(p0.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect(p0.errorMessage).toContain('streambus partition repair t 0');
    expect((await fetchAt(c, 't', 0, 0)).topics[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect((await latest(c, 't', 0)).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    const md = await c.request(ApiKey.METADATA, { topics: ['t'] });
    expect(md.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([
      ErrorCode.KAFKA_STORAGE_ERROR,
      0,
    ]);
    expect(md.topics[0]!.partitions[0]!.errorMessage).toContain(file);

    const ready = await fetch(`${http}/ready`);
    expect(ready.status).toBe(200);
    const detail = (await ready.json()) as {
      offlinePartitionCount: number;
      offlinePartitions: Array<Record<string, unknown>>;
    };
    expect(detail.offlinePartitionCount).toBe(1);
    expect(detail.offlinePartitions[0]).toMatchObject({ topic: 't', partition: 0 });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^streambus_partitions_offline 1$/m);
    expect(metrics).toMatch(/^streambus_log_damage_events_total\{kind="corruption"\} 1$/m);

    const warn = lines.find((l) => l.msg === 'corrupt data in a partition log');
    expect(warn).toMatchObject({ level: 40, topic: 't', partition: 0, segment: file, ...damaged });
    expect(lines.some((l) => l.msg?.toString().startsWith('partition offline'))).toBe(true);

    // Dry run of skip: the report, nothing changes, still offline.
    const dry = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'skip',
      dryRun: true,
    });
    expect(dry).toMatchObject({
      errorCode: 0,
      dryRun: true,
      lost: [damaged],
      offsetsLost: 2,
      online: false,
    });
    expect((await latest(c, 't', 0)).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    // A real skip would leave a gap batch in a Raft log: refused, naming the way out.
    const skip = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'skip',
      dryRun: false,
    });
    expect(skip.errorCode).toBe(ErrorCode.INVALID_REQUEST);
    expect(skip.errorMessage).toContain('--truncate');
    expect((await latest(c, 't', 0)).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);

    const fixed = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'truncate',
      dryRun: false,
    });
    expect(fixed).toMatchObject({
      errorCode: 0,
      lost: [{ fromOffset: damaged.fromOffset, toOffset: end0 - 1 }],
      offsetsLost: end0 - damaged.fromOffset,
      logEndOffsetBefore: end0,
      logEndOffsetAfter: damaged.fromOffset,
      online: true,
      offlineReason: null,
    });
    // The replica leads again (a new term: its no-op takes the next offset) and appends there.
    await servingAt(c, 't', 0, damaged.fromOffset + 1);
    expect((await produce(c, 't', 0, 'after')).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: damaged.fromOffset + 1,
    });
    const back = (await fetchAt(c, 't', 0, 0)).topics[0]!.partitions[0]!;
    const values = [...batchSpans(back.records)].flatMap((s) =>
      decodeRecordBatch(back.records, s.position).records.map((r) =>
        r.value === null ? '' : Buffer.from(r.value).toString().replace(/\.+$/, ''),
      ),
    );
    expect(values.filter((v) => v.startsWith('v') || v.startsWith('after'))).toEqual([
      'v0',
      'after',
    ]);
    expect(await (await fetch(`${http}/metrics`)).text()).toMatch(
      /^streambus_partitions_offline 0$/m,
    );
  });

  it('go offline when a read meets damage, logged once; repair --truncate states the offsets lost', async () => {
    const { dataDir, damaged, end0 } = await seeded();
    // A clean shutdown: recovery has nothing to verify, the damage is found by a read (the
    // fetch's, or already the replica's own first read of its recent entries as it leads).
    const { c, lines, broker } = await start(dataDir);
    const bad = (await fetchAt(c, 't', 0, damaged.fromOffset)).topics[0]!.partitions[0]!;
    expect(bad.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect((await fetchAt(c, 't', 0, 0)).topics[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect(lines.filter((l) => l.msg === 'corrupt data in a partition log')).toEqual([
      expect.objectContaining({ detectedBy: 'read', fromOffset: damaged.fromOffset, partition: 0 }),
    ]);
    const fixed = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'truncate',
      dryRun: false,
    });
    // The restart's no-op may or may not have landed before the damage was met.
    expect([end0, end0 + 1]).toContain(fixed.logEndOffsetBefore);
    expect(fixed).toMatchObject({
      errorCode: 0,
      lost: [{ fromOffset: damaged.fromOffset, toOffset: fixed.logEndOffsetBefore - 1 }],
      offsetsLost: fixed.logEndOffsetBefore - damaged.fromOffset,
      logEndOffsetAfter: damaged.fromOffset,
      online: true,
    });
    await servingAt(c, 't', 0, damaged.fromOffset + 1);
    expect((await produce(c, 't', 0, 'again')).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: damaged.fromOffset + 1,
    });
    // The repaired replica's Raft state and log agree across a restart.
    await broker.close();
    c.close();
    const again = await start(dataDir);
    await servingAt(again.c, 't', 0, damaged.fromOffset + 4);
    const unknown = await again.c.request(ApiKey.REPAIR_PARTITION, {
      topic: 'nope',
      partition: 0,
      mode: 'truncate',
      dryRun: true,
    });
    expect(unknown.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  it('a torn active tail cut by recovery is logged at warn with offsets and bytes, and counted', async () => {
    const { dataDir, pdir, end0 } = await seeded(false);
    const active = readdirSync(pdir)
      .filter((n) => n.endsWith('.log'))
      .sort()
      .at(-1)!;
    // The first 30 bytes of a batch after the last one, as a crash in the middle of a write
    // leaves them.
    const torn = encodeRecordBatch([{ value: Buffer.from('torn') }, { value: Buffer.from('x') }]);
    torn.writeUInt32BE(end0, 4);
    appendFileSync(join(pdir, active), torn.subarray(0, 30));
    const { c, lines, http } = await start(dataDir);
    const cut = lines.find((l) => String(l.msg).startsWith('log recovery truncated'));
    expect(cut).toMatchObject({
      level: 40,
      topic: 't',
      partition: 0,
      segment: join(pdir, active),
      fromOffset: end0,
      toOffset: null,
      bytes: 30,
      durability: 'always',
      mayHaveBeenServed: false,
    });
    await servingAt(c, 't', 0, end0 + 1);
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^streambus_log_damage_events_total\{kind="truncated"\} 1$/m);
    expect(metrics).toMatch(/^streambus_log_damage_bytes_total\{kind="truncated"\} 30$/m);
  });

  it('a partition that cannot open at startup (EACCES) is offline; the broker starts', async () => {
    const { dataDir, end1 } = await seeded(false);
    const p1 = join(dataDir, 'topics', '1', '1');
    let fail = true;
    const fileSystem = new FaultyFileSystem(new NodeFileSystem());
    fileSystem.inject = (op, path) =>
      fail && op === 'open' && path.startsWith(`${p1}/`) ? { code: 'EACCES' } : null;
    const { c } = await start(dataDir, { fileSystem });
    const md = await c.request(ApiKey.METADATA, { topics: ['t'] });
    expect(md.topics[0]!.partitions[1]).toMatchObject({ errorCode: ErrorCode.KAFKA_STORAGE_ERROR });
    expect(md.topics[0]!.partitions[1]!.errorMessage).toContain('EACCES');
    await servingAt(c, 't', 0, (await latest(c, 't', 0)).offset);
    fail = false;
    // With nothing damaged, a repair is a reopen.
    const r = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 1,
      mode: 'truncate',
      dryRun: false,
    });
    expect(r).toMatchObject({ errorCode: 0, damages: [], offsetsLost: 0, online: true });
    await servingAt(c, 't', 1, end1 + 1);
    // A config change that reopens the replicas and fails for one leaves that one offline: the
    // change itself is committed (it is the controller's), its effect here is a reaction.
    fail = true;
    const altered = await c.request(ApiKey.ALTER_CONFIGS, {
      topics: [{ name: 't', configs: { durability: 'interval' } }],
    });
    expect(altered.topics[0]!.errorCode).toBe(0);
    await until('partition 1 offline', async () => {
      const l = await latest(c, 't', 1);
      return l.errorCode === ErrorCode.KAFKA_STORAGE_ERROR ? l : undefined;
    });
    fail = false;
    const back = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 1,
      mode: 'truncate',
      dryRun: false,
    });
    expect(back).toMatchObject({ errorCode: 0, online: true });
    await servingAt(c, 't', 1, end1 + 2);
    const described = await c.request(ApiKey.DESCRIBE_CONFIGS, { topics: ['t'] });
    expect(described.topics[0]!.configs).toContainEqual(
      expect.objectContaining({ name: 'durability', value: 'interval' }),
    );
  });
});

describe('topic creation', () => {
  it('refuses partition counts over the limits up front, making nothing', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-limits-'));
    dirs.push(dataDir);
    const { c } = await start(dataDir, { limits: { partitionsPerTopicMax: 8, partitionsMax: 10 } });
    const create = (name: string, partitions: number, validateOnly = false) =>
      c.request(ApiKey.CREATE_TOPICS, {
        topics: [{ name, partitions, replicationFactor: 1, configs: {} }],
        timeoutMs: 1000,
        validateOnly,
      });
    const wide = (await create('wide', 9)).topics[0]!;
    expect(wide.errorCode).toBe(ErrorCode.INVALID_PARTITIONS);
    expect(wide.errorMessage).toContain('limits.partitionsPerTopicMax (8)');
    expect((await create('a', 6)).topics[0]!.errorCode).toBe(0);
    const over = (await create('b', 5, true)).topics[0]!;
    expect(over.errorCode).toBe(ErrorCode.POLICY_VIOLATION);
    expect(over.errorMessage).toContain('limits.partitionsMax (10; 6 exist)');
    expect((await create('b', 5)).topics[0]!.errorCode).toBe(ErrorCode.POLICY_VIOLATION);
    expect((await create('b', 4)).topics[0]!.errorCode).toBe(0);
    expect(readdirSync(join(dataDir, 'topics')).sort()).toEqual(['1', '2']);
  });

  it('a partition whose replica cannot open at creation is offline, the rest serve, and a restart opens it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-atomic-'));
    dirs.push(dataDir);
    let fail = true;
    const p3 = join(dataDir, 'topics', '1', '3');
    const fileSystem = new FaultyFileSystem(new NodeFileSystem());
    fileSystem.inject = (op, path) =>
      fail && op === 'open' && path.startsWith(`${p3}/`) ? { code: 'EACCES' } : null;
    const first = await start(dataDir, { fileSystem });
    const res = await first.c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: 'wide', partitions: 6, replicationFactor: 1, configs: {} }],
      timeoutMs: 1000,
    });
    expect(res.topics[0]!.errorCode).toBe(0);
    const md = await first.c.request(ApiKey.METADATA, { topics: ['wide'] });
    expect(md.topics[0]!.partitions.map((p) => p.errorCode)).toEqual([
      0,
      0,
      0,
      ErrorCode.KAFKA_STORAGE_ERROR,
      0,
      0,
    ]);
    expect((await produce(first.c, 'wide', 3, 'x')).topics[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect((await produce(first.c, 'wide', 5, 'x')).topics[0]!.partitions[0]!.errorCode).toBe(0);
    await first.broker.close();
    fail = false;
    const second = await start(dataDir);
    await servingAt(second.c, 'wide', 3, 1);
    expect((await produce(second.c, 'wide', 3, 'y')).topics[0]!.partitions[0]!.errorCode).toBe(0);
  });
});
