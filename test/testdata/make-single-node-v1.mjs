// Writes test/testdata/single-node-v1/: a data directory written by the SINGLE-NODE broker (the
// path `Broker.start(config)` without peers ran before issue 9 made every broker a cluster; it
// exists up to commit 5c3b33c), and expected.json, what a client read from it before it closed.
// single-node-import.process.test.ts imports a copy of it into a cluster of one. Run from the
// repository root on a build with the single-node path: node test/testdata/make-single-node-v1.mjs
// (segment files are *.log, ignored by .gitignore: add them with `git add -f`).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Broker, defaultConfig } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import {
  ApiKey,
  decodeRecordBatch,
  decodeResponse,
  encodeRecordBatch,
  encodeRequest,
  FrameParser,
  peekBatchSize,
} from '@streambus/protocol';

const OUT = join(process.cwd(), 'test/testdata/single-node-v1');
const DATA = join(OUT, 'data');

function request(port, apiKey, body) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const parser = new FrameParser();
    socket.once('error', reject);
    socket.once('connect', () => socket.write(encodeRequest(apiKey, 1, body, { apiVersion: 0 })));
    socket.on('data', (chunk) => {
      const frames = parser.push(chunk);
      if (frames.length > 0) {
        socket.destroy();
        resolve(decodeResponse(apiKey, frames[0]));
      }
    });
  });
}

async function produceRaw(port, topic, partition, records) {
  const res = await request(port, ApiKey.PRODUCE, {
    acks: -1,
    timeoutMs: 5000,
    topics: [{ name: topic, partitions: [{ partition, records }] }],
  });
  const p = res.topics[0].partitions[0];
  if (p.errorCode !== 0) throw new Error(`produce: error ${p.errorCode}`);
  return p.baseOffset;
}

/** Every record of the partition from its log start to its high watermark, control skipped. */
async function readAll(port, topic, partition, from) {
  const out = [];
  let offset = from;
  let firstBatchBase = null;
  for (;;) {
    const res = await request(port, ApiKey.FETCH, {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1 << 22,
      topics: [
        { name: topic, partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 1 << 22 }] },
      ],
    });
    const p = res.topics[0].partitions[0];
    if (p.errorCode !== 0) throw new Error(`fetch: error ${p.errorCode}`);
    let pos = 0;
    for (let size = peekBatchSize(p.records, pos); size > 0; size = peekBatchSize(p.records, pos)) {
      const batch = decodeRecordBatch(p.records, pos);
      firstBatchBase ??= batch.header.baseOffset;
      for (const r of batch.records) {
        if (r.offset < offset) continue;
        out.push({
          offset: r.offset,
          key: r.key === null ? null : Buffer.from(r.key).toString(),
          value: Buffer.from(r.value ?? []).toString(),
        });
      }
      offset = batch.header.baseOffset + batch.header.lastOffsetDelta + 1;
      pos += size;
    }
    if (offset >= p.highWatermark) {
      return { records: out, highWatermark: p.highWatermark, firstBatchBase: firstBatchBase ?? from };
    }
  }
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(DATA, { recursive: true });
const broker = await Broker.start({
  ...defaultConfig(),
  dataDir: DATA,
  listen: { host: '127.0.0.1', port: 0 },
  http: null,
  logLevel: 'silent',
});
const port = broker.address.port;
const client = new StreamBusClient({ bootstrap: `127.0.0.1:${port}` });
const admin = client.admin();
await admin.createTopic({
  name: 'orders',
  partitions: 3,
  configs: { 'segment.bytes': '16384', 'max.message.bytes': '8192', 'retention.ms': '604800000' },
});
await admin.createTopic({ name: 'events', partitions: 1, configs: {} });
await admin.createTopic({ name: 'gone', partitions: 1, configs: {} });

// An idempotent SDK producer: batches of varied sizes over every orders partition.
const producer = client.producer({ acks: 'all', lingerMs: 2, batchBytesMax: 512 });
const sends = [];
for (let i = 0; i < 1200; i++) {
  sends.push(producer.send({ topic: 'orders', key: `customer-${i % 37}`, value: `order-${i}-${'o'.repeat(i % 50)}` }));
}
await Promise.all(sends);
await producer.close();
// What a Kafka client writes: partitionLeaderEpoch -1, no producer id.
for (let b = 0; b < 20; b++) {
  const records = Array.from({ length: 1 + (b % 5) }, (_, r) => ({
    key: Buffer.from(`e${b}`),
    value: Buffer.from(`event-${b}-${r}`),
    timestamp: 1_760_000_000_000 + b,
  }));
  await produceRaw(port, 'events', 0, encodeRecordBatch(records, { partitionLeaderEpoch: -1, timestamp: 1_760_000_000_000 + b }));
}
// A raw idempotent producer whose last batch the process test sends again after the import.
const init = await request(port, ApiKey.INIT_PRODUCER_ID, {});
let lastIdempotent = null;
for (let seq = 0, b = 0; b < 6; b++) {
  const records = [0, 1, 2].map((r) => ({ key: Buffer.from('idem'), value: Buffer.from(`idem-${b}-${r}`), timestamp: 1_760_000_100_000 + b }));
  const bytes = encodeRecordBatch(records, {
    producerId: init.producerId,
    producerEpoch: init.producerEpoch,
    baseSequence: seq,
    partitionLeaderEpoch: -1,
    timestamp: 1_760_000_100_000 + b,
  });
  const copy = Buffer.from(bytes);
  const baseOffset = await produceRaw(port, 'events', 0, bytes);
  lastIdempotent = {
    topic: 'events',
    partition: 0,
    producerId: init.producerId,
    baseSequence: seq,
    batch: copy.toString('base64'),
    baseOffset,
  };
  seq += records.length;
}
// delete-records inside a batch (orders-0), and a deleted topic (its directory goes).
await admin.deleteRecords('orders', [{ partition: 0, offset: 37 }]);
await admin.deleteTopics(['gone']);

const expected = { topics: [], partitions: [], retry: lastIdempotent };
for (const t of [
  { name: 'orders', partitions: 3, configs: { 'max.message.bytes': '8192', 'retention.ms': '604800000', 'segment.bytes': '16384' } },
  { name: 'events', partitions: 1, configs: {} },
]) {
  expected.topics.push(t);
  for (let p = 0; p < t.partitions; p++) {
    const logStart = (await admin.listOffsets(t.name, 'earliest', [p]))[0].offset;
    const { records, highWatermark, firstBatchBase } = await readAll(port, t.name, p, logStart);
    // The batch holding the log start: a replicated log starts at a batch boundary.
    expected.partitions.push({
      topic: t.name,
      partition: p,
      logStart,
      batchStart: firstBatchBase,
      logEnd: highWatermark,
      records,
    });
  }
}
await client.close();
await broker.close();
writeFileSync(join(OUT, 'expected.json'), `${JSON.stringify(expected, null, 1)}\n`);
console.log(`wrote ${OUT}`);
