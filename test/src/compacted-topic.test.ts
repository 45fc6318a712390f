// A compacted topic end to end (issue 10): an in-process broker on the cluster path (a cluster
// of one) on the real disk, the SDK and the CLI. cleanup.policy=compact is accepted and
// validated, an unkeyed record is refused (INVALID_RECORD), the scheduled cleaner compacts
// sealed segments below the high watermark, a fetch at a compacted-away offset gets the next
// batch, and the SDK consumer and `streambus consume` read over the gaps: the latest value of
// every live key, each record at the offset it was written.
import { Broker, type BrokerConfig, defaultConfig } from '@streambus/broker';
import { ErrorCode, StreamBusClient } from '@streambus/client';
import { ApiKey, decodeRecordBatch, splitBatches } from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { requestOnce } from './cluster-harness.js';
import { removeDir, runCli, tempDir } from './harness.js';

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c().catch(() => undefined);
});

const TOPIC = 'kv';
const CLEANED = 'streambus_log_cleaner_runs_total{result="cleaned"}';
const KEYS = 20;
const RECORDS = 800;

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(broker: Broker, name: string): Promise<number> {
  const text = await broker.metrics.registry.metrics();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name)) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** A broker in a temp dir (both removed after the test) whose cleaner runs every 50 ms. */
async function startBroker(prefix: string, extra: Partial<BrokerConfig> = {}): Promise<Broker> {
  const dir = tempDir(prefix);
  open.push(async () => removeDir(dir));
  const broker = await Broker.start({
    ...defaultConfig(),
    dataDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: 'silent',
    logCleanerIntervalMs: 50,
    logCleanerBytesPerSecond: 64 * 1024 * 1024,
    ...extra,
  });
  open.push(() => broker.close());
  return broker;
}

describe('a compacted topic on a cluster of one', () => {
  it('is compacted in the background; the SDK, a raw fetch and the CLI read over the gaps', async () => {
    const broker = await startBroker('streambus-compact-');
    const bootstrap = `127.0.0.1:${broker.address.port}`;
    const client = new StreamBusClient({ bootstrap });
    open.push(() => client.close());
    const admin = client.admin();

    // The broker registers with its own controller first (about a second).
    await until('the broker registered', async () =>
      (await admin.describeCluster()).brokers.some((b) => !b.fenced) ? true : undefined,
    );
    // Validated, naming the key.
    const bad = await admin
      .createTopic({ name: 'bad', partitions: 1, configs: { 'cleanup.policy': 'compacted' } })
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: ErrorCode.INVALID_CONFIG });
    expect((bad as Error).message).toMatch(/cleanup.policy/);
    await admin.createTopic({
      name: TOPIC,
      partitions: 1,
      configs: {
        'cleanup.policy': 'compact',
        'segment.bytes': '4096',
        'max.message.bytes': '4096',
        'delete.retention.ms': '0',
        'min.cleanable.dirty.ratio': '0.01',
      },
    });
    const described = await admin.describeConfigs(TOPIC);
    expect(described.find((e) => e.name === 'cleanup.policy')?.value).toBe('compact');

    const producer = client.producer({ acks: 'all', lingerMs: 0 });
    open.push(() => producer.close());
    const unkeyed = await producer.send({ topic: TOPIC, value: 'no key' }).catch((e: unknown) => e);
    expect(unkeyed).toMatchObject({ code: ErrorCode.INVALID_RECORD });

    // The model: the value written at each offset, the latest per key. Keys 0-4 end deleted.
    const byOffset = new Map<number, { key: string; value: string | null }>();
    const latest = new Map<string, { offset: number; value: string | null }>();
    for (let i = 0; i < RECORDS; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) => {
        const n = i + j;
        // Every 50th record has a key of its own (it stays), the rest cycle over KEYS keys.
        const key = n % 50 === 0 ? `once-${n}` : `key-${(n * 7) % KEYS}`;
        const deleted = n >= RECORDS - 40 && n % 50 !== 0 && (n * 7) % KEYS < 5;
        return { topic: TOPIC, key, value: deleted ? null : `value-${n}-${'x'.repeat(n % 50)}` };
      });
      const meta = await producer.sendBatch(batch);
      batch.forEach((r, j) => {
        const value = r.value;
        byOffset.set(meta[j]!.offset, { key: r.key, value });
        latest.set(r.key, { offset: meta[j]!.offset, value });
      });
    }
    // Each later send rolls segments; the cleaner runs on its own (interval 50 ms).
    await until('a clean that removed records', async () =>
      (await metric(broker, 'streambus_log_cleaner_records_removed_total')) > RECORDS / 2
        ? true
        : undefined,
    );
    expect(await metric(broker, 'streambus_log_cleaner_bytes_written_total')).toBeGreaterThan(0);

    // The SDK consumer from the earliest offset to the high watermark.
    const consumer = client.consumer({ maxWaitMs: 100 });
    open.push(() => consumer.close());
    await consumer.assign({ topic: TOPIC, from: 'earliest' });
    const read: Array<{ offset: number; key: string; value: string | null }> = [];
    const hw = Math.max(...byOffset.keys()) + 1;
    for (let i = 0; i < 500 && (consumer.assignment()[0]?.position ?? 0) < hw; i++) {
      for (const b of await consumer.poll()) {
        for (const r of b.records) {
          read.push({
            offset: r.offset,
            key: Buffer.from(r.key!).toString(),
            value: r.value === null ? null : Buffer.from(r.value).toString(),
          });
        }
      }
    }
    expect(read.length).toBeLessThan(RECORDS / 2);
    checkView(read, byOffset, latest);
    // Offsets jump over what was compacted away.
    expect(read.some((r, i) => i > 0 && r.offset > read[i - 1]!.offset + 1)).toBe(true);

    // A fetch at an offset the cleaner removed answers the batch that covered it, whose first
    // record is later (or none): the reader moves on by the batch's last offset.
    const gone = [...byOffset.keys()].find((o) => !read.some((r) => r.offset === o))!;
    const raw = await rawFetch(bootstrap, gone);
    expect(raw.length).toBeGreaterThan(0);
    const first = decodeRecordBatch(raw.subarray(0, splitBatches(raw)[0]!.size));
    expect(first.header.baseOffset).toBeLessThanOrEqual(gone);
    expect(first.header.baseOffset + first.header.lastOffsetDelta).toBeGreaterThanOrEqual(gone);
    expect(first.records.every((r) => r.offset !== gone)).toBe(true);

    // The CLI prints the same compacted view.
    const cli = await runCli([
      'consume',
      TOPIC,
      '--bootstrap',
      bootstrap,
      '--output',
      'json',
      '--timeout-ms',
      '1500',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    const printed = cli.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { offset: number; key: string; value: string | null });
    // The cleaner may have gone further meanwhile (a later bound): the same model holds.
    checkView(printed, byOffset, latest);
    expect(printed.length).toBeLessThanOrEqual(read.length);
  }, 60_000);

  it('turning compact,delete (or compact) into delete takes effect at once: no cleaner, keyless records, retention', async () => {
    const broker = await startBroker('streambus-uncompact-', { retentionCheckIntervalMs: 100 });
    const client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
    open.push(() => client.close());
    const admin = client.admin();
    await until('the broker registered', async () =>
      (await admin.describeCluster()).brokers.some((b) => !b.fenced) ? true : undefined,
    );
    const producer = client.producer({ acks: 'all', lingerMs: 0 });
    open.push(() => producer.close());
    const keyed = async (topic: string, n: number) => {
      for (let i = 0; i < n; i += 10) {
        await producer.sendBatch(
          Array.from({ length: 10 }, (_, j) => ({
            topic,
            key: `k-${(i + j) % 5}`,
            value: `v-${i + j}-${'x'.repeat(100)}`,
          })),
        );
      }
    };
    const earliest = async (topic: string) =>
      (await admin.listOffsets(topic, 'earliest'))[0]!.offset;
    const configs = {
      'segment.bytes': '4096',
      'max.message.bytes': '4096',
      'delete.retention.ms': '0',
      'min.cleanable.dirty.ratio': '0.01',
      'retention.ms': '300000',
    };
    for (const from of ['compact,delete', 'compact']) {
      const topic = `t-${from.replace(',', '-')}`;
      await admin.createTopic({
        name: topic,
        partitions: 1,
        configs: { ...configs, 'cleanup.policy': from },
      });
      const cleaned = await metric(broker, CLEANED);
      await keyed(topic, 200);
      await until('a clean of the topic', async () =>
        (await metric(broker, CLEANED)) > cleaned ? true : undefined,
      );
      const start = await earliest(topic);
      // retention.ms 1: every sealed segment is expired, but not while the policy lacks delete.
      await admin.alterConfigs(topic, { 'retention.ms': '1' });
      if (from === 'compact') {
        await new Promise((r) => setTimeout(r, 500));
        expect(await earliest(topic)).toBe(start);
      }
      await admin.alterConfigs(topic, { 'cleanup.policy': 'delete' });
      // Keyless records are taken at once, no restart.
      await producer.send({ topic, value: 'no key' });
      // Retention removes the sealed segments.
      await until('retention', async () => ((await earliest(topic)) > start ? true : undefined));
      // The cleaner leaves the topic alone: new dirty segments are not cleaned.
      const before = await metric(broker, CLEANED);
      await keyed(topic, 200);
      await new Promise((r) => setTimeout(r, 500));
      expect(await metric(broker, CLEANED)).toBe(before);
    }
  }, 60_000);
});

type Written = ReadonlyMap<number, { key: string; value: string | null }>;
type Latest = ReadonlyMap<string, { offset: number; value: string | null }>;

/**
 * A compacted view: each record read is the one written at its offset, offsets increase, every
 * live key's latest value is read (the last read for its key), a deleted key is absent or last
 * read as its tombstone.
 */
function checkView(
  read: ReadonlyArray<{ offset: number; key: string; value: string | null }>,
  byOffset: Written,
  latest: Latest,
): void {
  const last = new Map<string, { offset: number; value: string | null }>();
  let prev = -1;
  for (const r of read) {
    expect(r.offset, 'offsets increase').toBeGreaterThan(prev);
    prev = r.offset;
    expect({ key: r.key, value: r.value }, `offset ${r.offset}`).toEqual(byOffset.get(r.offset));
    last.set(r.key, { offset: r.offset, value: r.value });
  }
  for (const [key, l] of latest) {
    if (l.value !== null) expect(last.get(key), key).toEqual(l);
    else if (last.has(key)) expect(last.get(key), key).toEqual(l);
  }
}

/** The record bytes a native Fetch at `offset` answers (partition 0 of TOPIC). */
async function rawFetch(bootstrap: string, offset: number): Promise<Buffer> {
  const port = Number(bootstrap.split(':')[1]);
  const r = await requestOnce(
    '127.0.0.1',
    port,
    ApiKey.FETCH,
    {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1024 * 1024,
      topics: [
        {
          name: TOPIC,
          partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 65536 }],
        },
      ],
    },
    5000,
  );
  const p = r.topics[0]!.partitions[0]!;
  expect(p.errorCode).toBe(0);
  return Buffer.from(p.records);
}
