// Upgrade of a data directory written by the single-node broker (issue 9): a real broker process
// on the cluster path (a cluster of one) starts on a copy of test/testdata/single-node-v1/data,
// which the single-node broker wrote (make-single-node-v1.mjs; expected.json is what a client
// read from it then). It imports the directory in place; then every record is served at its old
// offset, log starts and topic configs are the old ones, a producer's retry of a batch it sent
// before the upgrade is deduplicated, new records go after the old ones; after a restart the
// same again. Bounded in time; the process and the temp directory are removed on any outcome.
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import {
  ApiKey,
  decodeRecordBatch,
  ErrorCode,
  OffsetSpec,
  peekBatchSize,
} from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts, requestOnce, waitUntil } from './cluster-harness.js';
import {
  BROKER_MAIN,
  type BrokerProcess,
  ROOT,
  removeDir,
  spawnBrokerProcess,
  tempDir,
} from './harness.js';

const FIXTURE = join(ROOT, 'test/testdata/single-node-v1');

interface Expected {
  topics: Array<{ name: string; partitions: number; configs: Record<string, string> }>;
  partitions: Array<{
    topic: string;
    partition: number;
    logStart: number;
    /** The base offset of the batch holding logStart. */
    batchStart: number;
    logEnd: number;
    records: Array<{ offset: number; key: string | null; value: string }>;
  }>;
  retry: { topic: string; partition: number; batch: string; baseOffset: number };
}

type Rec = Expected['partitions'][number]['records'][number];

/** Every data record from `from` to the high watermark (raw FETCH; control batches skipped). */
async function readFrom(port: number, topic: string, partition: number, from: number) {
  const out: Rec[] = [];
  let offset = from;
  for (;;) {
    const res = await requestOnce(
      '127.0.0.1',
      port,
      ApiKey.FETCH,
      {
        maxWaitMs: 0,
        minBytes: 0,
        maxBytes: 1 << 22,
        topics: [
          {
            name: topic,
            partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 1 << 22 }],
          },
        ],
      },
      5000,
    );
    const p = res.topics[0]!.partitions[0]!;
    if (p.errorCode !== 0) throw new Error(`fetch ${topic}-${partition}@${offset}: ${p.errorCode}`);
    let pos = 0;
    for (let size = peekBatchSize(p.records, pos); size > 0; size = peekBatchSize(p.records, pos)) {
      const batch = decodeRecordBatch(p.records, pos);
      if (!batch.isControl) {
        for (const r of batch.records) {
          if (r.offset < offset) continue;
          out.push({
            offset: r.offset,
            key: r.key === null ? null : Buffer.from(r.key).toString(),
            value: Buffer.from(r.value ?? []).toString(),
          });
        }
      }
      offset = batch.header.baseOffset + batch.header.lastOffsetDelta + 1;
      pos += size;
    }
    if (offset >= p.highWatermark) return { records: out, highWatermark: p.highWatermark };
  }
}

async function earliest(port: number, topic: string, partition: number): Promise<number> {
  const res = await requestOnce(
    '127.0.0.1',
    port,
    ApiKey.LIST_OFFSETS,
    {
      topics: [{ name: topic, partitions: [{ partition, timestamp: OffsetSpec.EARLIEST }] }],
    },
    5000,
  );
  const p = res.topics[0]!.partitions[0]!;
  if (p.errorCode !== 0) throw new Error(`list offsets ${topic}-${partition}: ${p.errorCode}`);
  return p.offset;
}

/** The batch the producer sent last before the upgrade, sent again: its original offset. */
async function retryOldBatch(port: number, retry: Expected['retry']): Promise<number> {
  const res = await requestOnce(
    '127.0.0.1',
    port,
    ApiKey.PRODUCE,
    {
      acks: -1,
      timeoutMs: 5000,
      topics: [
        {
          name: retry.topic,
          partitions: [{ partition: retry.partition, records: Buffer.from(retry.batch, 'base64') }],
        },
      ],
    },
    10_000,
  );
  const p = res.topics[0]!.partitions[0]!;
  expect(p.errorCode).toBe(ErrorCode.NONE);
  return p.baseOffset;
}

describe('a single-node data directory on the cluster path', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('is imported in place: old offsets, configs and producer state; new records; restart', async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8')) as Expected;
    const dir = tempDir('streambus-import-');
    cleanup.push(async () => removeDir(dir));
    cpSync(join(FIXTURE, 'data'), dir, { recursive: true });
    const [port] = await freePorts(1);
    // A cluster of one: --peers naming only itself (also the default without --peers).
    const start = (): Promise<BrokerProcess> =>
      spawnBrokerProcess(
        [
          BROKER_MAIN,
          '--node-id',
          '1',
          '--peers',
          `1@127.0.0.1:${port}`,
          '--listen',
          `127.0.0.1:${port}`,
          '--http',
          '127.0.0.1:0',
          '--data-dir',
          dir,
        ],
        dir,
        30_000,
      );
    let broker = await start();
    cleanup.push(() => broker.kill9());
    expect(broker.output()).toContain('imported the single-node data directory');
    expect(existsSync(join(dir, 'metadata.json'))).toBe(false);
    expect(existsSync(join(dir, 'metadata.json.imported'))).toBe(true);

    const client = new StreamBusClient({ bootstrap: `127.0.0.1:${port}` });
    cleanup.push(() => client.close());
    const checkOld = async (): Promise<void> => {
      for (const want of expected.partitions) {
        const got = await waitUntil(`${want.topic}-${want.partition} served`, 20_000, () =>
          readFrom(port!, want.topic, want.partition, want.logStart),
        );
        expect(got.records.slice(0, want.records.length)).toEqual(want.records);
        // A log start inside a batch moves down to the batch's base (the replicated log starts
        // at a batch boundary, as its delete-records rounds down); elsewhere it is kept.
        expect(await earliest(port!, want.topic, want.partition)).toBe(want.batchStart);
      }
      for (const t of expected.topics) {
        const d = await client.admin().describeTopic(t.name);
        expect(d.partitions.length).toBe(t.partitions);
        for (const [name, value] of Object.entries(t.configs)) {
          expect(d.configs.find((c) => c.name === name)?.value, `${t.name} ${name}`).toBe(value);
        }
      }
      // A retry of a batch sent before the upgrade: deduplicated, its original offset.
      expect(await retryOldBatch(port!, expected.retry)).toBe(expected.retry.baseOffset);
    };
    await checkOld();

    // New records go after the old ones (past the new leader's no-op control batch).
    const producer = client.producer({ acks: 'all', lingerMs: 1 });
    const added = new Map<string, Array<{ offset: number; value: string }>>();
    for (let i = 0; i < 30; i++) {
      const topic = i % 2 === 0 ? 'orders' : 'events';
      const m = await producer.send({ topic, key: `new-${i}`, value: `after-upgrade-${i}` });
      const key = `${topic}-${m.partition}`;
      added.set(key, [
        ...(added.get(key) ?? []),
        { offset: m.offset, value: `after-upgrade-${i}` },
      ]);
    }
    await producer.close();
    const checkAll = async (): Promise<void> => {
      for (const want of expected.partitions) {
        const key = `${want.topic}-${want.partition}`;
        const got = await readFrom(port!, want.topic, want.partition, want.logStart);
        expect(got.records.slice(0, want.records.length)).toEqual(want.records);
        const rest = got.records
          .slice(want.records.length)
          .map((r) => ({ offset: r.offset, value: r.value }));
        expect(rest, key).toEqual(added.get(key) ?? []);
        for (const r of rest) expect(r.offset).toBeGreaterThanOrEqual(want.logEnd);
      }
    };
    await checkAll();

    // Restart: the imported directory is served as a cluster directory; the same again.
    expect(await broker.stop()).toBe(0);
    broker = await start();
    expect(broker.output()).not.toContain('importing the single-node data directory');
    await checkOld();
    await checkAll();
  }, 90_000);
});
