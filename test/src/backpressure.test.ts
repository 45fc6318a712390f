// The SDK producer against a broker whose disk fsyncs slowly (issue 9: bytes appended but not
// yet fsynced are bounded). An in-process broker runs every file on a SlowSyncFileSystem over a
// MemoryFileSystem with a small `limits.unsyncedBytesMax`: the file system itself measures that
// unsynced bytes pile up while fsyncs are slow, nothing is counted as a storage failure, and
// the producer's one retry layer rides through it: every record is acknowledged and read back
// exactly once, in order. On the replicated path a replica's writes beyond
// `limits.unsyncedBytesMax` wait for the fsync in flight (replica-store.ts, `writeEntries`), so
// the file system never holds more unsynced bytes than the bound.

import { ErrorCode, StreamBusClient } from '@streambus/client';
import { MemoryFileSystem, SlowSyncFileSystem } from '@streambus/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { startInProcessBroker } from './harness.js';

const BOUND = 64 * 1024;
const RECORDS = 600;
const VALUE_BYTES = 1000;

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
});

describe('producer through a slow fsync', () => {
  it('a slow fsync holds the producer back without a storage failure; every record once, in order', async () => {
    const fs = new SlowSyncFileSystem(new MemoryFileSystem(), { syncDelayMs: 0 });
    const broker = await startInProcessBroker(fs, (config) => ({
      ...config,
      limits: { ...config.limits, unsyncedBytesMax: BOUND },
      defaults: { ...config.defaults, maxMessageBytes: BOUND },
    }));
    open.push(broker);
    const bootstrap = `127.0.0.1:${broker.address.port}`;
    const retry = {
      retriesMax: 1000,
      backoffInitialMs: 5,
      backoffMaxMs: 50,
      totalTimeoutMs: 30_000,
    };
    const admin = new StreamBusClient({ bootstrap, retry });
    open.push(admin);
    await admin.admin().createTopics([{ name: 'slow', partitions: 1 }]);
    // Topic creation fsyncs at full speed; from here on every fsync takes 25 ms.
    fs.syncDelayMs = 25;
    fs.unsyncedBytesPeak = fs.unsyncedBytes;

    const clients = [0, 1, 2].map(() => new StreamBusClient({ bootstrap, retry }));
    open.push(...clients);
    const value = (i: number) =>
      Buffer.from(`${String(i).padStart(6, '0')}-${'v'.repeat(VALUE_BYTES)}`);
    const sends: Array<Promise<unknown>> = [];
    for (const [c, client] of clients.entries()) {
      const producer = client.producer({ acks: 'all', lingerMs: 1, batchBytesMax: 16 * 1024 });
      for (let i = c; i < RECORDS; i += clients.length) {
        sends.push(producer.send({ topic: 'slow', value: value(i) }));
      }
      open.push({ close: () => producer.close() });
    }
    const results = await Promise.allSettled(sends);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);

    // Whatever was refused was retriable back-pressure, never a storage failure.
    const refused = await broker.metrics.requestErrors.get();
    for (const v of refused.values.filter((x) => x.value > 0)) {
      expect([
        String(ErrorCode.LOG_BACKPRESSURE),
        String(ErrorCode.REPLICA_PROPOSALS_FULL),
      ]).toContain(String(v.labels.code));
    }
    const storageErrors = await broker.metrics.appendStorageErrors.get();
    expect(storageErrors.values.reduce((n, v) => n + v.value, 0)).toBe(0);
    expect(fs.unsyncedBytesPeak).toBeGreaterThan(0);
    expect(fs.unsyncedBytesPeak).toBeLessThanOrEqual(BOUND);

    fs.syncDelayMs = 0;
    const consumer = admin.consumer({ maxWaitMs: 50 });
    await consumer.assign({ topic: 'slow', from: 'earliest' });
    const seen: string[] = [];
    const offsets: number[] = [];
    const deadline = Date.now() + 10_000;
    while (seen.length < RECORDS && Date.now() < deadline) {
      for (const b of await consumer.poll()) {
        for (const r of b.records) {
          seen.push(Buffer.from(r.value!).subarray(0, 6).toString());
          offsets.push(r.offset);
        }
      }
    }
    await consumer.close();
    // Contiguous from the first record (after the partition's first Raft term's no-op at 0).
    expect(offsets).toEqual(offsets.map((_, i) => i + 1));
    expect([...seen].sort()).toEqual(
      Array.from({ length: RECORDS }, (_, i) => String(i).padStart(6, '0')),
    );
  }, 60_000);
});
