// The broker when partition storage fails (issue 8): an in-process broker whose partition logs
// run over a FaultyFileSystem. Every produce is answered (never left to time out) with a
// retriable KAFKA_STORAGE_ERROR while the fault lasts, the broker keeps serving, nothing is left
// unhandled, writes resume by themselves once the fault is gone, and every acknowledged record
// is read back exactly once. Also: a config change that reopens the log while idempotent
// producers write.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKey, ErrorCode, encodeRecordBatch } from '@streambus/protocol';
import { type Fault, type FaultOp, FaultyFileSystem, MemoryFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { defaultConfig } from './config.js';
import { RECOVERY_INTERVAL_MS } from './replicated-partition.js';
import { fetchAll } from './testing/fetch-all.js';
import { RawClient } from './testing/raw-client.js';
import { testResources } from './testing/test-resources.js';

const { dirs, open } = testResources({ afterEach, afterAll });

/** A broker whose files are on `fs` (null: the real storage, as in production). */
async function start(fs: FaultyFileSystem | null): Promise<{ broker: Broker; c: RawClient }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-broker-faults-'));
  dirs.push(dataDir);
  const broker = await Broker.start(
    {
      ...defaultConfig(),
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      http: null,
      logLevel: 'silent',
    },
    {
      logger: pino({ level: 'silent' }),
      ...(fs === null ? {} : { fileSystem: fs }),
    },
  );
  open.push(broker);
  const c = await RawClient.connect(broker.address.port);
  open.push({ close: () => c.close() });
  return { broker, c };
}

async function createTopic(c: RawClient, name: string, configs: Record<string, string> = {}) {
  const r = await c.request(ApiKey.CREATE_TOPICS, {
    topics: [{ name, partitions: 1, replicationFactor: 1, configs }],
    timeoutMs: 1000,
  });
  expect(r.topics[0]!.errorCode).toBe(0);
}

/** An idempotent producer's batches: one record per batch, value = its sequence. */
class Producer {
  private seq = 0;
  constructor(
    readonly pid: number,
    private readonly tag: string,
  ) {}
  static async init(c: RawClient, tag: string): Promise<Producer> {
    return new Producer((await c.request(ApiKey.INIT_PRODUCER_ID, {})).producerId, tag);
  }
  /** The next batch (the same one again until `advance`). */
  batch(): { value: string; bytes: Buffer } {
    const value = `${this.tag}-${this.seq}`;
    const bytes = encodeRecordBatch([{ value: Buffer.from(value) }], {
      producerId: this.pid,
      producerEpoch: 0,
      baseSequence: this.seq,
    });
    return { value, bytes };
  }
  advance(): void {
    this.seq++;
  }
}

/** A produce answered within `ms` (the bug: a failed write was never answered). */
async function produce(c: RawClient, topic: string, records: Buffer, acks: -1 | 1, ms = 8000) {
  let timer: NodeJS.Timeout | undefined;
  const answer = c.request(ApiKey.PRODUCE, {
    acks,
    timeoutMs: 10_000,
    topics: [{ name: topic, partitions: [{ partition: 0, records }] }],
  });
  try {
    const r = await Promise.race([
      answer,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`produce not answered in ${ms} ms`)), ms);
      }),
    ]);
    return r.topics[0]!.partitions[0]!;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `bytes` (acks=all) sent again every 50 ms until accepted or for the bounded recovery delay of
 * a failed replica (RECOVERY_INTERVAL_MS x 5); the last answer.
 */
async function produceUntilAccepted(c: RawClient, topic: string, bytes: Buffer) {
  const deadline = Date.now() + RECOVERY_INTERVAL_MS * 5;
  let last = await produce(c, topic, Buffer.from(bytes), -1);
  while (last.errorCode !== 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await produce(c, topic, Buffer.from(bytes), -1);
  }
  return last;
}

async function readValues(c: RawClient, topic: string): Promise<string[]> {
  return (await fetchAll(c, topic)).map((r) => r.value);
}

/**
 * `readValues`, retried while the partition answers a retriable error, as a consumer would: a
 * replica right after a reopen may not lead yet, or may still be recovering from a failure.
 */
async function readValuesEventually(c: RawClient, topic: string): Promise<string[]> {
  const deadline = Date.now() + RECOVERY_INTERVAL_MS * 5;
  for (;;) {
    try {
      return await readValues(c, topic);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

interface Scenario {
  name: string;
  faults: Partial<Record<FaultOp, Fault>>;
}

const SCENARIOS: Scenario[] = [
  { name: 'ENOSPC', faults: { write: { code: 'ENOSPC' } } },
  { name: 'ENOSPC after a torn prefix', faults: { write: { code: 'ENOSPC', partialBytes: 30 } } },
  { name: 'EDQUOT', faults: { write: { code: 'EDQUOT' } } },
  { name: 'EIO on write', faults: { write: { code: 'EIO', partialBytes: 5 } } },
  { name: 'EROFS', faults: { write: { code: 'EROFS' } } },
  { name: 'EIO on fsync', faults: { sync: { code: 'EIO' } } },
  {
    name: 'torn write whose cut-back fails',
    faults: { write: { code: 'EIO', partialBytes: 20 }, truncate: { code: 'EIO' } },
  },
];

describe('broker when partition storage fails', () => {
  for (const durability of ['always', 'interval'] as const) {
    for (const s of SCENARIOS) {
      it(`${durability}, ${s.name}: answers, survives, resumes, loses nothing acknowledged`, async () => {
        const fs = new FaultyFileSystem(new MemoryFileSystem());
        const { broker, c } = await start(fs);
        await createTopic(c, 't', { durability, 'flush.ms': '5' });
        const producer = await Producer.init(c, 'p');
        const acked: string[] = [];
        for (let k = 0; k < 5; k++) {
          const b = producer.batch();
          expect((await produce(c, 't', b.bytes, -1)).errorCode).toBe(0);
          acked.push(b.value);
          producer.advance();
        }
        fs.inject = (op) => s.faults[op] ?? null;
        // The same idempotent batch, sent three times while the fault lasts: answered each time.
        // Under 'interval' acks=all is answered once a quorum wrote the batch to the OS
        // (docs/replication.md): an fsync failure is the producer's to see only once the
        // replica's log failed on it; answers before that are 0 (the same offset each time:
        // the retries are duplicates).
        const flushOnly = durability === 'interval' && s.faults.sync !== undefined;
        const b = producer.batch();
        for (let k = 0; k < 3; k++) {
          const r = await produce(c, 't', Buffer.from(b.bytes), -1);
          if (flushOnly) {
            expect([0, ErrorCode.KAFKA_STORAGE_ERROR]).toContain(r.errorCode);
            continue;
          }
          expect(r.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
          expect(r.errorMessage).toBeTruthy();
        }
        const injected = () => [...fs.injected.values()].reduce((a, n) => a + n, 0);
        for (let wait = 0; flushOnly && injected() === 0 && wait < 100; wait++) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(injected()).toBeGreaterThan(0);
        if (s.name.startsWith('ENOSPC')) {
          const r = await produce(c, 't', Buffer.from(b.bytes), -1);
          expect(r.errorMessage).toMatch(/disk full \(ENOSPC\)/);
        }
        // Alive: other requests are served, and the partition reports its storage error.
        const md = await c.request(ApiKey.METADATA, { topics: ['t'] });
        expect(md.topics[0]!.errorCode).toBe(0);
        if (flushOnly) {
          // Under 'interval' the replica's periodic fsync failing is not seen by producers (see
          // above): they were answered; nothing acknowledged is lost without a crash.
          fs.inject = null;
          expect((await produceUntilAccepted(c, 't', b.bytes)).errorCode).toBe(0);
          acked.push(b.value);
          expect(await readValuesEventually(c, 't')).toEqual(acked);
          return;
        }
        const text = await broker.metrics.registry.metrics();
        expect(text).toMatch(/^streambus_partitions_storage_error 1$/m);
        expect(text).toMatch(/^streambus_append_storage_errors_total\{reason="[a-z_]+"\} [1-9]/m);

        // The fault ends: the same batch goes in (after the bounded recovery delay for a
        // failed log), without a restart.
        fs.inject = null;
        const deadline = Date.now() + RECOVERY_INTERVAL_MS * 5;
        let last = await produce(c, 't', Buffer.from(b.bytes), -1);
        while (last.errorCode !== 0 && Date.now() < deadline) {
          expect(last.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
          await new Promise((r) => setTimeout(r, 50));
          last = await produce(c, 't', Buffer.from(b.bytes), -1);
        }
        expect(last.errorCode).toBe(0);
        acked.push(b.value);
        producer.advance();
        const next = producer.batch();
        expect((await produce(c, 't', next.bytes, -1)).errorCode).toBe(0);
        acked.push(next.value);
        // Exactly the acknowledged records, once each, in order.
        expect(await readValues(c, 't')).toEqual(acked);
        expect(await broker.metrics.registry.metrics()).toMatch(
          /^streambus_partitions_storage_error 0$/m,
        );
      });
    }
  }

  it('answers storage errors while a reopened log cannot be opened, then reopens it by itself', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const { c } = await start(fs);
    await createTopic(c, 'ro');
    const producer = await Producer.init(c, 'ro');
    const acked: string[] = [];
    const first = producer.batch();
    expect((await produce(c, 'ro', first.bytes, -1)).errorCode).toBe(0);
    acked.push(first.value);
    producer.advance();
    // The config change (committed by the controller) reopens the replica; opening its log
    // fails (no space for its files), so the partition answers storage errors.
    fs.inject = (op, path) =>
      op === 'open' && path.includes('/topics/') ? { code: 'ENOSPC' } : null;
    const altered = await c.request(ApiKey.ALTER_CONFIGS, {
      topics: [{ name: 'ro', configs: { 'segment.ms': '7200000' } }],
    });
    expect(altered.topics[0]!.errorCode).toBe(0);
    const b = producer.batch();
    const refused = await produce(c, 'ro', Buffer.from(b.bytes), -1);
    expect(refused.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect(refused.errorMessage).toMatch(/ENOSPC/);
    fs.inject = null;
    expect((await produceUntilAccepted(c, 'ro', b.bytes)).errorCode).toBe(0);
    acked.push(b.value);
    expect(await readValues(c, 'ro')).toEqual(acked);
    const described = await c.request(ApiKey.DESCRIBE_CONFIGS, { topics: ['ro'] });
    expect(described.topics[0]!.configs.find((e) => e.name === 'segment.ms')?.value).toBe(
      '7200000',
    );
  });

  it('keeps idempotent producers writing through config changes that reopen the log', async () => {
    const { broker, c } = await start(null);
    await createTopic(c, 'cfg');
    const admin = await RawClient.connect(broker.address.port);
    open.push({ close: () => admin.close() });
    // One connection per producer (as SDK producers have), so their produces overlap the reopen.
    const conns = await Promise.all([0, 1, 2].map(() => RawClient.connect(broker.address.port)));
    for (const conn of conns) open.push({ close: () => conn.close() });
    const producers = await Promise.all(conns.map((conn, k) => Producer.init(conn, `w${k}`)));
    const acked: string[][] = producers.map(() => []);
    const failures: unknown[] = [];
    let stop = false;
    const writers = producers.map(async (p, k) => {
      while (!stop && failures.length === 0) {
        const b = p.batch();
        const r = await produce(conns[k]!, 'cfg', Buffer.from(b.bytes), -1).catch((e) => e);
        if (r instanceof Error || r.errorCode !== 0) {
          failures.push(r);
          return;
        }
        acked[k]!.push(b.value);
        p.advance();
      }
    });
    // At least 20 reopens, and on until more than 10 produces were acknowledged across them
    // (each produce waits out a reopen, so a loaded machine acknowledges fewer per reopen).
    const ackedCount = () => acked.reduce((n, a) => n + a.length, 0);
    for (let k = 0; k < 20 || (ackedCount() <= 10 && failures.length === 0 && k < 200); k++) {
      const r = await admin.request(ApiKey.ALTER_CONFIGS, {
        topics: [{ name: 'cfg', configs: { 'segment.ms': String(3_600_000 + k) } }],
      });
      expect(r.topics[0]!.errorCode).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // On a loaded machine the 20 reopens can be over before the writers got far: let them
    // write on (the log is stable now) until enough is acknowledged, bounded.
    const enough = Date.now() + 10_000;
    while (acked.reduce((n, a) => n + a.length, 0) <= 10 && failures.length === 0) {
      if (Date.now() > enough) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    stop = true;
    await Promise.all(writers);
    expect(failures.map((f) => JSON.stringify(f))).toEqual([]);
    // A fetch right after the last reopen may meet the replica before it leads again
    // (NOT_LEADER_OR_FOLLOWER, retriable): retried as a consumer would.
    const got = await readValuesEventually(c, 'cfg');
    const total = ackedCount();
    expect(total).toBeGreaterThan(10);
    expect(got).toHaveLength(total);
    for (let k = 0; k < producers.length; k++) {
      expect(got.filter((v) => v.startsWith(`w${k}-`))).toEqual(acked[k]);
    }
  });
});
