// A damaged partition does not take the broker down (in-process broker over the real storage
// package): it is offline (metadata, /ready, metrics, KAFKA_STORAGE_ERROR to produce, fetch and
// list-offsets), the damage is logged at warn with its offsets and counted, the other partitions
// serve, and RepairPartition brings it back stating the offsets lost. Also: partition limits
// checked up front, atomic topic creation, and startup with a partition that cannot open.
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  batchSpans,
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  OffsetSpec,
  StreamBusError,
} from '@streambus/protocol';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker, type BrokerOptions } from './broker.js';
import { type BrokerConfig, defaultConfig } from './config.js';
import { BrokerMetrics } from './metrics.js';
import { openStoragePartitionLog } from './storage-log.js';
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
  const broker = await Broker.start(config(dataDir, options.limits), { ...options, logger });
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

/** A topic `t` with 2 partitions, 20 batches of 2 records in partition 0 over several segments. */
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
  await broker.close();
  c.close();
  open.length = 0;
  const pdir = join(dataDir, 'topics', '1', '0');
  if (!corrupt) return { dataDir, pdir, file: '' };
  const first = readdirSync(pdir)
    .filter((n) => n.endsWith('.log'))
    .sort()[0]!;
  // Flip a byte inside the second batch (offsets 2..3) of the first, sealed segment.
  const file = join(pdir, first);
  const data = readFileSync(file);
  const second = [...batchSpans(data)][1]!.position;
  data[second + 100]! ^= 0xff;
  writeFileSync(file, data);
  return { dataDir, pdir, file };
}

describe('damaged partitions', () => {
  it('are offline at startup while the rest serves; repair --skip brings them back', async () => {
    const { dataDir, pdir, file } = await seeded();
    // As after kill -9: no fresh producer-state snapshot, so the startup replay reads the log.
    unlinkSync(`${pdir}.producers.json`);
    const { c, lines, http } = await start(dataDir);

    // The other partition serves.
    expect((await produce(c, 't', 1, 'more')).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: 2,
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
    expect(warn).toMatchObject({
      level: 40,
      topic: 't',
      partition: 0,
      segment: file,
      fromOffset: 2,
      toOffset: 3,
    });
    expect(lines.some((l) => l.msg?.toString().startsWith('partition offline'))).toBe(true);

    // Dry run: the same report, nothing changes, still offline.
    const dry = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'skip',
      dryRun: true,
    });
    expect(dry).toMatchObject({
      errorCode: 0,
      dryRun: true,
      lost: [{ fromOffset: 2, toOffset: 3 }],
      offsetsLost: 2,
      online: false,
    });
    expect((await latest(c, 't', 0)).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);

    const fixed = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'skip',
      dryRun: false,
    });
    expect(fixed).toMatchObject({
      errorCode: 0,
      lost: [{ fromOffset: 2, toOffset: 3 }],
      offsetsLost: 2,
      logEndOffsetBefore: 40,
      logEndOffsetAfter: 40,
      online: true,
      offlineReason: null,
    });
    expect(await latest(c, 't', 0)).toMatchObject({ errorCode: 0, offset: 40 });
    // A fetch into the gap gets the empty gap batch and moves past it; later offsets are kept.
    const gap = (await fetchAt(c, 't', 0, 2)).topics[0]!.partitions[0]!;
    expect(gap.errorCode).toBe(0);
    const [gapBatch, nextBatch] = [...batchSpans(gap.records)];
    const first = decodeRecordBatch(gap.records, gapBatch!.position);
    expect(first.header).toMatchObject({ baseOffset: 2, lastOffsetDelta: 1, recordCount: 0 });
    const next = decodeRecordBatch(gap.records, nextBatch!.position);
    expect(Buffer.from(next.records[0]!.value!).toString()).toMatch(/^v2\./);
    expect(next.records[0]!.offset).toBe(4);
    expect((await produce(c, 't', 0, 'after')).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: 40,
    });
    expect(await (await fetch(`${http}/metrics`)).text()).toMatch(
      /^streambus_partitions_offline 0$/m,
    );
  });

  it('go offline when a read meets damage, logged once; repair --truncate states the offsets lost', async () => {
    const { dataDir } = await seeded();
    // A clean shutdown: the snapshot is fresh, the damage is found by the first read.
    const { c, lines } = await start(dataDir);
    expect((await fetchAt(c, 't', 0, 0)).topics[0]!.partitions[0]!.errorCode).toBe(0);
    const bad = (await fetchAt(c, 't', 0, 2)).topics[0]!.partitions[0]!;
    expect(bad.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect((await fetchAt(c, 't', 0, 0)).topics[0]!.partitions[0]!.errorCode).toBe(
      ErrorCode.KAFKA_STORAGE_ERROR,
    );
    expect(lines.filter((l) => l.msg === 'corrupt data in a partition log')).toEqual([
      expect.objectContaining({ detectedBy: 'read', fromOffset: 2, partition: 0 }),
    ]);
    const fixed = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 0,
      mode: 'truncate',
      dryRun: false,
    });
    expect(fixed).toMatchObject({
      errorCode: 0,
      lost: [{ fromOffset: 2, toOffset: 39 }],
      offsetsLost: 38,
      logEndOffsetAfter: 2,
      online: true,
    });
    expect(await latest(c, 't', 0)).toMatchObject({ errorCode: 0, offset: 2 });
    expect((await produce(c, 't', 0, 'again')).topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: 2,
    });
    const unknown = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 'nope',
      partition: 0,
      mode: 'truncate',
      dryRun: true,
    });
    expect(unknown.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  it('a torn active tail cut by recovery is logged at warn with offsets and bytes, and counted', async () => {
    const { dataDir, pdir } = await seeded(false);
    const active = readdirSync(pdir)
      .filter((n) => n.endsWith('.log'))
      .sort()
      .at(-1)!;
    // A whole batch (offsets 40-41, kept: it passes its checks) and a torn one (42-43, cut)
    // appended after the last batch, as a crash in the middle of a write leaves them.
    const tail = encodeRecordBatch([{ value: Buffer.from('torn') }, { value: Buffer.from('x') }]);
    tail.writeUInt32BE(40, 4);
    const torn = Buffer.from(tail);
    torn.writeUInt32BE(42, 4);
    appendFileSync(join(pdir, active), Buffer.concat([tail, torn.subarray(0, 30)]));
    const { c, lines, http } = await start(dataDir);
    const cut = lines.find((l) => String(l.msg).startsWith('log recovery truncated'));
    expect(cut).toMatchObject({
      level: 40,
      topic: 't',
      partition: 0,
      segment: join(pdir, active),
      fromOffset: 42,
      toOffset: null,
      bytes: 30,
      durability: 'always',
      mayHaveBeenServed: false,
    });
    expect(await latest(c, 't', 0)).toMatchObject({ errorCode: 0, offset: 42 });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^streambus_log_damage_events_total\{kind="truncated"\} 1$/m);
    expect(metrics).toMatch(/^streambus_log_damage_bytes_total\{kind="truncated"\} 30$/m);
  });

  it('a partition that cannot open at startup (EMFILE) is offline; the broker starts', async () => {
    const { dataDir, pdir } = await seeded();
    const real = openStoragePartitionLog(new BrokerMetrics(() => []));
    let fail = true;
    const openLog: BrokerOptions['openLog'] = (dir, cfg, o) => {
      if (fail && dir === join(dataDir, 'topics', '1', '1')) {
        return Promise.reject(
          new StreamBusError(
            ErrorCode.KAFKA_STORAGE_ERROR,
            `cannot open ${dir}: EMFILE: too many open files`,
          ),
        );
      }
      return real(dir, cfg, o);
    };
    const { c } = await start(dataDir, { openLog });
    expect(pdir).toBeTruthy();
    const md = await c.request(ApiKey.METADATA, { topics: ['t'] });
    expect(md.topics[0]!.partitions[1]).toMatchObject({ errorCode: ErrorCode.KAFKA_STORAGE_ERROR });
    expect(md.topics[0]!.partitions[1]!.errorMessage).toContain('EMFILE');
    fail = false;
    // With nothing damaged, a repair is a reopen.
    const r = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 1,
      mode: 'truncate',
      dryRun: false,
    });
    expect(r).toMatchObject({ errorCode: 0, damages: [], offsetsLost: 0, online: true });
    expect(await latest(c, 't', 1)).toMatchObject({ errorCode: 0, offset: 2 });
    // A config change that reopens the logs and fails for one leaves that one answering the storage
    // error (a later request, or a repair, reopens it).
    fail = true;
    const altered = await c.request(ApiKey.ALTER_CONFIGS, {
      topics: [{ name: 't', configs: { durability: 'interval' } }],
    });
    expect(altered.topics[0]!.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect((await latest(c, 't', 1)).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    fail = false;
    const back = await c.request(ApiKey.REPAIR_PARTITION, {
      topic: 't',
      partition: 1,
      mode: 'skip',
      dryRun: false,
    });
    expect(back).toMatchObject({ errorCode: 0, online: true });
    expect(await latest(c, 't', 1)).toMatchObject({ errorCode: 0, offset: 2 });
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

  it('is atomic: a create failing half-way leaves nothing behind, and the broker restarts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-atomic-'));
    dirs.push(dataDir);
    const real = openStoragePartitionLog(new BrokerMetrics(() => []));
    let opened = 0;
    const openLog: BrokerOptions['openLog'] = (dir, cfg, o) => {
      if (++opened === 4) {
        return Promise.reject(
          new StreamBusError(
            ErrorCode.KAFKA_STORAGE_ERROR,
            `open ${dir}: EMFILE: too many open files`,
          ),
        );
      }
      return real(dir, cfg, o);
    };
    const first = await start(dataDir, { openLog });
    const res = await first.c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: 'wide', partitions: 6, replicationFactor: 1, configs: {} }],
      timeoutMs: 1000,
    });
    expect(res.topics[0]).toMatchObject({ errorCode: ErrorCode.KAFKA_STORAGE_ERROR });
    expect(res.topics[0]!.errorMessage).toContain('EMFILE');
    expect(readdirSync(join(dataDir, 'topics'))).toEqual([]);
    expect(JSON.parse(readFileSync(join(dataDir, 'metadata.json'), 'utf8')).topics).toEqual([]);
    const md = await first.c.request(ApiKey.METADATA, { topics: ['wide'] });
    expect(md.topics[0]!.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    await first.broker.close();
    // A half-made topic from a crash (a directory no topic owns) is removed at startup.
    const second = await start(dataDir);
    const again = await second.c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: 'wide', partitions: 6, replicationFactor: 1, configs: {} }],
      timeoutMs: 1000,
    });
    expect(again.topics[0]!.errorCode).toBe(0);
    await second.broker.close();
    mkdirSync(join(dataDir, 'topics', '99', '0'), { recursive: true });
    writeFileSync(join(dataDir, 'topics', '99', '0', '00000000000000000000.log'), '');
    const third = await start(dataDir);
    expect(readdirSync(join(dataDir, 'topics'))).toEqual(['1']);
    expect((await latest(third.c, 'wide', 5)).errorCode).toBe(0);
  });
});
