// The limits.* settings that are dynamic (ops/dynamic-config.ts) take effect on a running broker
// without a restart, on connections already open; the static ones are refused naming the key.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKey, decodeRecordBatch, ErrorCode, encodeRecordBatch } from '@streambus/protocol';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../broker.js';
import { defaultConfig } from '../config.js';
import { RawClient } from '../testing/raw-client.js';

const silent = pino({ level: process.env.SB_TEST_LOG ?? 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('dynamic limits', () => {
  it('limits.fetchBytesMax and limits.inflightRequestsMax change at runtime; limits.frameBytesMax is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-dynlimits-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const broker = await Broker.start(
      {
        ...defaultConfig(),
        nodeId: 1,
        peers: [],
        dataDir: dir,
        listen: { host: '127.0.0.1', port: 0 },
        http: null,
        logLevel: 'silent' as const,
      },
      { logger: silent },
    );
    cleanups.push(() => broker.close());
    const c = await RawClient.connect(broker.address.port);
    cleanups.push(() => c.close());
    await until('topic creation', async () => {
      const r = await c.request(ApiKey.CREATE_TOPICS, {
        topics: [{ name: 'd', partitions: 1, replicationFactor: -1, configs: {} }],
        timeoutMs: 5000,
      });
      const e = r.topics[0]!;
      return e.errorCode === 0 || e.errorCode === ErrorCode.TOPIC_ALREADY_EXISTS ? e : undefined;
    });
    const produce = (value: string) =>
      c.request(ApiKey.PRODUCE, {
        acks: -1,
        timeoutMs: 5000,
        topics: [
          {
            name: 'd',
            partitions: [
              { partition: 0, records: encodeRecordBatch([{ value: Buffer.from(value) }]) },
            ],
          },
        ],
      });
    const first = await until('produce', async () => {
      const p = (await produce('a'.repeat(2048))).topics[0]!.partitions[0]!;
      return p.errorCode === 0 ? p : undefined;
    });
    for (const v of ['b', 'c']) {
      expect((await produce(v.repeat(2048))).topics[0]!.partitions[0]!.errorCode).toBe(0);
    }
    /** The batches one fetch from the first data batch returns. */
    const batches = async () => {
      const f = await c.request(ApiKey.FETCH, {
        maxWaitMs: 0,
        minBytes: 0,
        maxBytes: 1 << 20,
        topics: [
          {
            name: 'd',
            partitions: [
              { partition: 0, fetchOffset: first.baseOffset, partitionMaxBytes: 1 << 20 },
            ],
          },
        ],
      });
      const p = f.topics[0]!.partitions[0]!;
      expect(p.errorCode).toBe(0);
      let n = 0;
      for (let pos = 0; pos < p.records.length; n++) {
        pos += 12 + decodeRecordBatch(p.records, pos).header.batchLength;
      }
      return n;
    };
    const alter = (configs: Record<string, string | null>) =>
      c.request(ApiKey.ALTER_BROKER_CONFIG, { brokerId: -1, configs });
    expect(await batches()).toBe(3);
    // Lowered to 1 KiB: a fetch on this same connection now returns the first batch only (a first
    // batch above the cap still passes, as in Kafka).
    expect((await alter({ 'limits.fetchBytesMax': '1024' })).errorCode).toBe(0);
    expect(broker.config.limits.fetchBytesMax).toBe(1024);
    expect(await batches()).toBe(1);
    expect((await alter({ 'limits.fetchBytesMax': null })).errorCode).toBe(0);
    expect(await batches()).toBe(3);
    // In-flight bound of every connection, the open ones included (they read the live limits).
    expect((await alter({ 'limits.inflightRequestsMax': '8' })).errorCode).toBe(0);
    expect(broker.config.limits.inflightRequestsMax).toBe(8);
    const d = await c.request(ApiKey.DESCRIBE_BROKER_CONFIG, {});
    expect(d.entries.find((e) => e.key === 'limits.inflightRequestsMax')).toMatchObject({
      value: '8',
      source: 'dynamic-cluster',
    });
    expect(await batches()).toBe(3);
    // A limit that sizes what was built at start stays static, refused naming the key.
    await expect(alter({ 'limits.frameBytesMax': '1048576' })).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
      message: expect.stringMatching(/limits\.frameBytesMax: not a dynamic setting/),
    });
    await expect(alter({ 'limits.requestTimeoutMs': '5' })).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
      message: expect.stringMatching(/limits\.requestTimeoutMs/),
    });
    expect(broker.config.limits.frameBytesMax).toBe(defaultConfig().limits.frameBytesMax);
  }, 30_000);
});
