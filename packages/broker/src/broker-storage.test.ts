// In-process broker over the real storage package (PartitionLog on the node file system):
// the paths where the broker relies on storage behaviour (reopen on a config change,
// delete-records, retention, offsets by timestamp, restart).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  batchSpans,
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  OffsetSpec,
} from '@streambus/protocol';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { defaultConfig } from './config.js';
import { fetchAll } from './testing/fetch-all.js';
import { RawClient } from './testing/raw-client.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-broker-storage-'));
const open: Array<{ close(): unknown }> = [];
afterAll(async () => {
  for (const o of open) await o.close();
  rmSync(dir, { recursive: true, force: true });
});

function config() {
  const c = defaultConfig();
  return {
    ...c,
    dataDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: 'silent' as const,
  };
}

async function start(): Promise<{ broker: Broker; c: RawClient }> {
  const broker = await Broker.start(config(), { logger: pino({ level: 'silent' }) });
  const c = await RawClient.connect(broker.address.port);
  open.push(broker, { close: () => c.close() });
  return { broker, c };
}

/** The first data record's offset: the partition's first Raft term's no-op is at 0. */
const F = 1;

async function offsets(c: RawClient, topic: string, timestamp: number): Promise<number> {
  const r = await c.request(ApiKey.LIST_OFFSETS, {
    topics: [{ name: topic, partitions: [{ partition: 0, timestamp }] }],
  });
  return r.topics[0]!.partitions[0]!.offset;
}

/** Fetches from `from` to the log end (a fetch may stop at a segment boundary). */
async function readAll(c: RawClient, topic: string, from: number): Promise<string[]> {
  return (await fetchAll(c, topic, from)).map((r) => `${r.offset}:${r.value}`);
}

describe('broker over the storage package', () => {
  it('appends, reopens logs on a config change, deletes records and survives a restart', async () => {
    const { broker, c } = await start();
    const created = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [
        {
          name: 'real',
          partitions: 1,
          replicationFactor: 1,
          configs: { 'segment.bytes': '4096', 'max.message.bytes': '2048' },
        },
      ],
      timeoutMs: 1000,
    });
    expect(created.topics[0]!.errorCode).toBe(0);
    const t0 = Date.now() - 60_000;
    for (let i = 0; i < 20; i++) {
      const batch = encodeRecordBatch([
        { value: Buffer.from(`r${i}`.padEnd(400, '.')), timestamp: t0 + i * 1000 },
      ]);
      const res = await c.request(ApiKey.PRODUCE, {
        acks: -1,
        timeoutMs: 5000,
        topics: [{ name: 'real', partitions: [{ partition: 0, records: batch }] }],
      });
      expect(res.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, baseOffset: F + i });
    }
    expect(await offsets(c, 'real', t0 + 5500)).toBe(F + 6);
    const byTime = await c.request(ApiKey.LIST_OFFSETS, {
      topics: [{ name: 'real', partitions: [{ partition: 0, timestamp: t0 + 5500 }] }],
    });
    expect(byTime.topics[0]!.partitions[0]).toMatchObject({ offset: F + 6, timestamp: t0 + 6000 });
    // 20 x ~470 B over 4 KiB segments: one fetch crosses the segment boundaries up to maxBytes.
    const one = await c.request(ApiKey.FETCH, {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1 << 20,
      topics: [
        {
          name: 'real',
          partitions: [{ partition: 0, fetchOffset: F, partitionMaxBytes: 1 << 20 }],
        },
      ],
    });
    const got = one.topics[0]!.partitions[0]!;
    expect(got.highWatermark).toBe(F + 20);
    const batches = [...batchSpans(got.records)];
    for (const b of batches) decodeRecordBatch(got.records, b.position);
    expect(batches).toHaveLength(20);
    const altered = await c.request(ApiKey.ALTER_CONFIGS, {
      topics: [{ name: 'real', configs: { durability: 'interval', 'flush.ms': '20' } }],
    });
    expect(altered.topics[0]!.errorCode).toBe(0);
    const after = await c.request(ApiKey.PRODUCE, {
      acks: -1,
      timeoutMs: 5000,
      topics: [
        {
          name: 'real',
          partitions: [
            { partition: 0, records: encodeRecordBatch([{ value: Buffer.from('after') }]) },
          ],
        },
      ],
    });
    // After the 20 (or after the reopened replica's new term's no-op, when the reopen ran first).
    const afterAt = after.topics[0]!.partitions[0]!.baseOffset;
    expect([F + 20, F + 21]).toContain(afterAt);
    const del = await c.request(ApiKey.DELETE_RECORDS, {
      topics: [{ name: 'real', partitions: [{ partition: 0, offset: F + 10 }] }],
      timeoutMs: 1000,
    });
    expect(del.topics[0]!.partitions[0]).toMatchObject({ errorCode: 0, lowWatermark: F + 10 });
    const f = await c.request(ApiKey.FETCH, {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1 << 20,
      topics: [
        {
          name: 'real',
          partitions: [{ partition: 0, fetchOffset: 2, partitionMaxBytes: 1 << 20 }],
        },
      ],
    });
    expect(f.topics[0]!.partitions[0]!.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    await broker.close();
    c.close();

    const second = await start();
    expect(await offsets(second.c, 'real', OffsetSpec.EARLIEST)).toBe(F + 10);
    expect(await offsets(second.c, 'real', OffsetSpec.LATEST)).toBeGreaterThan(afterAt);
    const values = await readAll(second.c, 'real', F + 10);
    expect(values).toHaveLength(11);
    expect(values[0]).toMatch(new RegExp(`^${F + 10}:r10\\.`));
    expect(values.at(-1)).toBe(`${afterAt}:after`);
    const described = await second.c.request(ApiKey.DESCRIBE_CONFIGS, { topics: ['real'] });
    const durability = described.topics[0]!.configs.find((e) => e.name === 'durability');
    expect(durability).toMatchObject({ value: 'interval', isDefault: false });
  });
});
