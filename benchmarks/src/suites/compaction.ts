// Suite `compaction` (issue 10): what the log cleaner of a compacted topic costs the produce path.
// One in-process broker on the cluster path (a cluster of one, temp data dir on the real disk,
// durability always), a 1-partition topic with cleanup.policy=compact and 1 MiB segments, filled
// with keyed records (1,000 keys, 200 B values) so that most of it is superseded; the cleaner
// (budget logCleanerBytesPerSecond, checked every 100 ms) then works through it while this
// process produces at a paced rate into a second compacted topic.
//
// Rows:
//   produce p50 / p99 during a clean   send() per keyed record at a paced 2,000 records/s,
//                      lingerMs 0, acks=all, while the cleaner runs (the row's settings give the
//                      cleaner bytes read and written inside the window: it did overlap).
//                      Reference: the same paced load on the same broker right after the same
//                      fill into a topic that is not compacted (nothing to clean); ratio =
//                      during / reference (lower is better; 1 = no effect).
//   cleaner throughput  MB/s of cleaner reads + writes over the filled topic's first clean (its
//                      budget is the ceiling).
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker, defaultConfig } from '@streambus/broker';
import { type Producer, StreamBusClient } from '@streambus/client';
import { quantile, type ResultRow, row, type Suite, type SuiteOptions } from '../harness.js';
import { pacedSendLatencies } from '../paced-send.js';

const KEYS = 1000;
const VALUE = Buffer.alloc(200, 'v');
const RATE = 2000;
const BUDGET_BYTES_PER_SECOND = 16 * 1024 * 1024;

async function metric(broker: Broker, name: string): Promise<number> {
  const text = await broker.metrics.registry.metrics();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(name)) sum += Number(line.split(' ').at(-1));
  return sum;
}

/** Paced keyed sends for `ms`; the send-to-ack latencies (ms). */
function paced(producer: Producer, topic: string, ms: number): Promise<number[]> {
  return pacedSendLatencies(producer, topic, VALUE, {
    rate: RATE,
    total: Math.round((RATE * ms) / 1000),
    dropMs: 0,
    key: (i) => `k${i % KEYS}`,
  });
}

async function run(options: SuiteOptions): Promise<ResultRow[]> {
  const fillRecords = options.quick ? 60_000 : 200_000;
  const windowMs = options.quick ? 3000 : 8000;
  const dir = await mkdtemp(join(tmpdir(), 'streambus-bench-compaction-'));
  const config = defaultConfig();
  const broker = await Broker.start({
    ...config,
    dataDir: dir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: 'silent',
    logCleanerIntervalMs: 100,
    logCleanerBytesPerSecond: BUDGET_BYTES_PER_SECOND,
  });
  const client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
  try {
    const admin = client.admin();
    for (let i = 0; i < 100; i++) {
      if ((await admin.describeCluster()).brokers.some((b) => !b.fenced)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const compacted = {
      'cleanup.policy': 'compact',
      'segment.bytes': String(1024 * 1024),
      'max.message.bytes': String(1024 * 1024),
      'min.cleanable.dirty.ratio': '0.01',
    };
    await admin.createTopic({
      name: 'plain',
      partitions: 1,
      configs: { ...compacted, 'cleanup.policy': 'delete' },
    });
    await admin.createTopic({ name: 'filled', partitions: 1, configs: compacted });
    await admin.createTopic({ name: 'paced', partitions: 1, configs: compacted });
    const producer = client.producer({ acks: 'all', lingerMs: 0 });
    const bulk = client.producer({ acks: 'all', lingerMs: 5 });
    const fill = async (topic: string): Promise<void> => {
      for (let i = 0; i < fillRecords; i += 10_000) {
        await bulk.sendBatch(
          Array.from({ length: 10_000 }, (_, j) => ({
            topic,
            key: `k${(i + j) % KEYS}`,
            value: VALUE,
          })),
        );
      }
    };
    // Reference: the same fill into a topic that is not compacted, then the paced load (the
    // broker in the same state after a fill, with no clean to run).
    await fill('plain');
    const idle = await paced(producer, 'paced', windowMs);
    // Measured: fill the compacted topic (the cleaner starts on its sealed segments as they
    // appear), then the paced load while the cleaner works through it.
    const readBefore = await metric(broker, 'streambus_log_cleaner_bytes_read_total');
    const writtenBefore = await metric(broker, 'streambus_log_cleaner_bytes_written_total');
    const fillStart = performance.now();
    await fill('filled');
    const at0 = {
      read: await metric(broker, 'streambus_log_cleaner_bytes_read_total'),
      written: await metric(broker, 'streambus_log_cleaner_bytes_written_total'),
    };
    const during = await paced(producer, 'paced', windowMs);
    const at1 = {
      read: await metric(broker, 'streambus_log_cleaner_bytes_read_total'),
      written: await metric(broker, 'streambus_log_cleaner_bytes_written_total'),
    };
    // Until a pass finds nothing to do (bytes stop moving): the cleaner's throughput.
    let last = -1;
    for (let i = 0; i < 600; i++) {
      const now = await metric(broker, 'streambus_log_cleaner_bytes_read_total');
      if (now === last) break;
      last = now;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const cleanEnd = performance.now();
    const cleanerBytes =
      (await metric(broker, 'streambus_log_cleaner_bytes_read_total')) -
      readBefore +
      (await metric(broker, 'streambus_log_cleaner_bytes_written_total')) -
      writtenBefore;
    const settings = {
      rate: RATE,
      windowMs,
      acks: 'all',
      durability: 'always',
      keys: KEYS,
      valueBytes: VALUE.length,
      fillRecords,
      cleanerBudgetBytesPerSecond: BUDGET_BYTES_PER_SECOND,
      cleanerBytesReadInWindow: at1.read - at0.read,
      cleanerBytesWrittenInWindow: at1.written - at0.written,
    };
    await producer.close();
    await bulk.close();
    return [
      row('produce p50 during a clean', quantile(during, 0.5), 'ms', settings, quantile(idle, 0.5)),
      row(
        'produce p99 during a clean',
        quantile(during, 0.99),
        'ms',
        settings,
        quantile(idle, 0.99),
      ),
      row('cleaner throughput', cleanerBytes / 1e6 / ((cleanEnd - fillStart) / 1000), 'MB/s', {
        ...settings,
        note: 'reads + writes from the first fill to an idle pass, idle-detection second included',
      }),
    ];
  } finally {
    await client.close();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const suite: Suite = {
  name: 'compaction',
  description:
    'Produce latency (paced 2,000 keyed records/s, acks=all) while the log cleaner compacts a filled topic, against the same load after the same fill into a topic that is not compacted; and the cleaner throughput within its budget. Read the p99 ratio first (1 = no effect).',
  run,
};
