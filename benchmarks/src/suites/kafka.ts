// Suite `kafka`: one StreamBus broker process (single node, temp data dir) with its Kafka
// listener, driven over loopback from this process; every row next to a same-run native
// reference, so the ratio reads as "what the Kafka protocol costs over our own".
//
// Measures:
//   prebuilt Produce acks=1   records/s for prebuilt Kafka Produce v7 frames (the broker suite's
//                     RecordBatch v2 batches: 100 B values, 1000 records per batch) over one
//                     connection with a fixed number in flight: the broker's own cost through the
//                     Kafka listener. Reference: the native listener fed the same batches in
//                     native PRODUCE frames the same way. Target: ratio >= 0.8 (the record bytes
//                     are the same; only the framing and its translation differ).
//   kafkajs producer / @platformatic/kafka producer acks=1   records/s of each client sending
//                     1000-record batches of 100 B values (several outstanding) through the
//                     listener; reference: the native SDK Producer sending the same records.
//   Kafka Fetch (raw client)   records/s reading a pre-filled topic from offset 0 with Kafka Fetch
//                     v11 requests (one in flight); reference: the native SDK Consumer reading
//                     it. kafkajs and @platformatic/kafka consume only in consumer groups, which
//                     the listener does not serve yet: their consume rows come with groups.
// Leaves out: replication, compression, acks=all, many clients. Read first: the prebuilt ratio.
import { promises as fsp } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kafkaListener } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { kafka } from '@streambus/protocol';
import { driveFrames, openSocket } from '../frame-driver.js';
import { medianOfRuns, type ResultRow, row, type Suite, type SuiteOptions } from '../harness.js';
import {
  type ChildHandle,
  endOffsetSum,
  makeBatches,
  produceFrames,
  recordsStored,
  spawnBroker,
} from './broker.js';

const RECORDS_PER_BATCH = 1000;
const DISTINCT_BATCHES = 64;
const PARTITIONS = 4;
const FRAME_INFLIGHT = 16;
const CLIENT_BATCH = 1000;
const CLIENT_OUTSTANDING = 8;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Kafka Produce v7 frames carrying each batch, round-robin over the partitions. */
export function kafkaProduceFrames(
  topic: string,
  batches: readonly Buffer[],
  partitions: number,
  acks: -1 | 1,
): Buffer[] {
  return batches.map((records, i) =>
    kafka.encodeRequest(
      'Produce',
      { apiVersion: 7, correlationId: i + 1, clientId: 'bench' },
      {
        transactionalId: null,
        acks,
        timeoutMs: 30_000,
        topics: [{ name: topic, partitions: [{ index: i % partitions, records }] }],
      },
    ),
  );
}

/** Splits a Kafka answer stream into frames; fails on a Produce answer with an error. */
export function kafkaProduceAnswers(): (chunk: Buffer) => Buffer[] {
  const parser = new kafka.KafkaFrameParser({ frameBytesMax: 64 << 20, frameBytesMin: 4 });
  return (chunk) => {
    const frames = parser.push(chunk);
    for (const f of frames) {
      for (const t of kafka.decodeResponse('Produce', 7, f).body.responses) {
        for (const p of t.partitions) {
          if (p.errorCode !== 0) throw new Error(`Kafka produce answered error ${p.errorCode}`);
        }
      }
    }
    return frames;
  };
}

interface Ctx {
  readonly options: SuiteOptions;
  readonly broker: ChildHandle;
  readonly kafkaPort: number;
  readonly client: StreamBusClient;
  readonly batches: Buffer[];
  readonly runs: number;
  topicSeq: number;
}

async function freshTopic(ctx: Ctx, tag: string, partitions = PARTITIONS): Promise<string> {
  const name = `${tag}-${++ctx.topicSeq}`;
  await ctx.client.admin().createTopic({ name, partitions, configs: { durability: 'none' } });
  return name;
}

async function checkAndDelete(ctx: Ctx, topic: string, expected: number): Promise<void> {
  // acks=1 answers on append; the high watermark follows the flush.
  const deadline = Date.now() + 10_000;
  let stored = await recordsStored(ctx.client, topic);
  while (stored < expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    stored = await recordsStored(ctx.client, topic);
  }
  if (stored < expected) throw new Error(`broker stored ${stored} of ${expected} records`);
  await ctx.client.admin().deleteTopic(topic);
}

async function prebuiltRow(ctx: Ctx): Promise<ResultRow> {
  const count = ctx.options.quick ? 300 : 3000;
  const run = async (wire: 'kafka' | 'native') => {
    const topic = await freshTopic(ctx, `pre-${wire}`);
    const frames =
      wire === 'kafka'
        ? kafkaProduceFrames(topic, ctx.batches, PARTITIONS, 1)
        : produceFrames(topic, ctx.batches, PARTITIONS, 1);
    const socket = await openSocket(wire === 'kafka' ? ctx.kafkaPort : ctx.broker.port);
    const r = await driveFrames(
      socket,
      frames,
      count,
      FRAME_INFLIGHT,
      wire === 'kafka' ? { answers: kafkaProduceAnswers() } : {},
    );
    socket.destroy();
    await checkAndDelete(ctx, topic, count * RECORDS_PER_BATCH);
    return (count * RECORDS_PER_BATCH) / r.seconds;
  };
  const m = await medianOfRuns(
    ctx.runs,
    () => run('kafka'),
    () => run('native'),
  );
  return row(
    'prebuilt Produce acks=1 (Kafka listener)',
    m.value,
    'records/s',
    {
      durability: 'none',
      acks: 1,
      recordValueBytes: 100,
      records: count * RECORDS_PER_BATCH,
      recordsPerBatch: RECORDS_PER_BATCH,
      partitions: PARTITIONS,
      runs: ctx.runs,
      inflight: FRAME_INFLIGHT,
      values: m.values.map(Math.round),
      references: m.references.map(Math.round),
      reference: 'native listener, the same batches in native PRODUCE frames',
      target: 'ratio >= 0.8',
    },
    m.reference,
  );
}

const VALUES = Array.from({ length: CLIENT_BATCH }, (_, i) =>
  Buffer.from(`value ${i} `.padEnd(100, '.')),
);

async function nativeProducerRun(ctx: Ctx, total: number): Promise<number> {
  const topic = await freshTopic(ctx, 'native-prod');
  const producer = ctx.client.producer({ acks: 1 });
  const chunk = VALUES.map((value) => ({ topic, value }));
  await producer.send({ topic, value: 'warm-up' });
  const start = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += CLIENT_BATCH * CLIENT_OUTSTANDING) {
    await Promise.all(Array.from({ length: CLIENT_OUTSTANDING }, () => producer.sendBatch(chunk)));
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await producer.close();
  await checkAndDelete(ctx, topic, total);
  return total / secs;
}

async function kafkajsRun(ctx: Ctx, total: number): Promise<number> {
  const { Kafka, logLevel } = await import('kafkajs');
  const topic = await freshTopic(ctx, 'kafkajs-prod');
  const k = new Kafka({
    clientId: 'bench',
    brokers: [`127.0.0.1:${ctx.kafkaPort}`],
    logLevel: logLevel.NOTHING,
  });
  const producer = k.producer();
  await producer.connect();
  const messages = VALUES.map((value) => ({ value }));
  await producer.send({ topic, acks: 1, messages: [{ value: 'warm-up' }] });
  const start = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += CLIENT_BATCH * CLIENT_OUTSTANDING) {
    await Promise.all(
      Array.from({ length: CLIENT_OUTSTANDING }, () => producer.send({ topic, acks: 1, messages })),
    );
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await producer.disconnect();
  await checkAndDelete(ctx, topic, total);
  return total / secs;
}

async function platformaticRun(ctx: Ctx, total: number): Promise<number> {
  kafkaListener.providePromiseWithResolvers();
  const { Producer } = await import('@platformatic/kafka');
  const topic = await freshTopic(ctx, 'platformatic-prod');
  const producer = new Producer({
    clientId: 'bench',
    bootstrapBrokers: [`127.0.0.1:${ctx.kafkaPort}`],
    acks: 1,
  });
  const messages = VALUES.map((value) => ({ topic, value }));
  await producer.send({ messages: [{ topic, value: Buffer.from('warm-up') }] });
  const start = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += CLIENT_BATCH * CLIENT_OUTSTANDING) {
    await Promise.all(
      Array.from({ length: CLIENT_OUTSTANDING }, () => producer.send({ messages })),
    );
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await producer.close();
  await checkAndDelete(ctx, topic, total);
  return total / secs;
}

async function clientRows(ctx: Ctx): Promise<ResultRow[]> {
  const total = ctx.options.quick ? 40_000 : 400_000;
  const rows: ResultRow[] = [];
  for (const [name, body] of [
    ['kafkajs producer acks=1', kafkajsRun],
    ['@platformatic/kafka producer acks=1', platformaticRun],
  ] as const) {
    const m = await medianOfRuns(
      ctx.runs,
      () => body(ctx, total),
      () => nativeProducerRun(ctx, total),
    );
    rows.push(
      row(
        name,
        m.value,
        'records/s',
        {
          durability: 'none',
          acks: 1,
          recordValueBytes: 100,
          records: total,
          partitions: PARTITIONS,
          runs: ctx.runs,
          inflight: `${CLIENT_OUTSTANDING} sends of ${CLIENT_BATCH} records outstanding`,
          values: m.values.map(Math.round),
          references: m.references.map(Math.round),
          reference: 'the native SDK Producer (sendBatch), the same records and outstanding sends',
        },
        m.reference,
      ),
    );
  }
  return rows;
}

async function fetchRow(ctx: Ctx): Promise<ResultRow> {
  const frames = ctx.options.quick ? 200 : 2000;
  const records = frames * RECORDS_PER_BATCH;
  const topic = await freshTopic(ctx, 'fetch', 1);
  const socket = await openSocket(ctx.broker.port);
  await driveFrames(socket, produceFrames(topic, ctx.batches, 1, 1), frames, FRAME_INFLIGHT);
  socket.destroy();
  const end = await endOffsetSum(ctx.client, topic);
  const m = await medianOfRuns(
    ctx.runs,
    async () => {
      const c = await kafkaListener.KafkaRawClient.connect(ctx.kafkaPort, 'bench');
      const start = process.hrtime.bigint();
      let offset = 0;
      let got = 0;
      while (offset < end) {
        const p = await c.fetchPartition(topic, 0, offset, { maxWaitMs: 100 });
        if (p.errorCode !== 0) throw new Error(`Kafka fetch answered error ${p.errorCode}`);
        const bytes = Buffer.from(p.records!);
        // Walk the batch headers (a Kafka client does at least this much before decoding).
        for (let pos = 0; pos + 61 <= bytes.length; ) {
          const lastOffsetDelta = bytes.readInt32BE(pos + 23);
          const count = bytes.readInt32BE(pos + 57);
          got += count;
          offset = Number(bytes.readBigInt64BE(pos)) + lastOffsetDelta + 1;
          pos += 12 + bytes.readInt32BE(pos + 8);
        }
      }
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      await c.close();
      if (got < records) throw new Error(`Kafka fetch read ${got} of ${records}`);
      return records / secs;
    },
    async () => {
      const consumer = ctx.client.consumer({ maxWaitMs: 100 });
      await consumer.assign({ topic, from: 'earliest' });
      const start = process.hrtime.bigint();
      let got = 0;
      while (got < records) for (const b of await consumer.poll()) got += b.records.length;
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      await consumer.close();
      return records / secs;
    },
  );
  return row(
    'Kafka Fetch v11 (raw client, batch headers walked)',
    m.value,
    'records/s',
    {
      durability: 'none',
      recordValueBytes: 100,
      records,
      recordsPerBatch: RECORDS_PER_BATCH,
      partitions: 1,
      runs: ctx.runs,
      inflight: '1 fetch, partitionMaxBytes 1 MiB',
      values: m.values.map(Math.round),
      references: m.references.map(Math.round),
      reference: 'the native SDK Consumer (decodes every record: the ratio favours the raw client)',
    },
    m.reference,
  );
}

export const suite: Suite = {
  name: 'kafka',
  description:
    'One broker process with its Kafka listener over loopback: prebuilt Kafka Produce frames vs ' +
    'the native listener fed the same batches (read first: target ratio >= 0.8); kafkajs and ' +
    '@platformatic/kafka producers vs the native SDK Producer; Kafka Fetch vs the native Consumer.',
  async run(options: SuiteOptions): Promise<ResultRow[]> {
    const tmp = await fsp.mkdtemp(join(tmpdir(), 'streambus-bench-kafka-'));
    const dataDir = join(tmp, 'data');
    await fsp.mkdir(dataDir);
    let broker: ChildHandle | null = null;
    let client: StreamBusClient | null = null;
    try {
      const kafkaPort = await freePort();
      broker = await spawnBroker(dataDir, [], {
        STREAMBUS_KAFKA_LISTEN: `127.0.0.1:${kafkaPort}`,
      });
      client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
      const ctx: Ctx = {
        options,
        broker,
        kafkaPort,
        client,
        batches: makeBatches(DISTINCT_BATCHES, RECORDS_PER_BATCH, 100),
        runs: options.quick ? 3 : 5,
        topicSeq: 0,
      };
      return [await prebuiltRow(ctx), ...(await clientRows(ctx)), await fetchRow(ctx)];
    } finally {
      await client?.close();
      await broker?.stop();
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  },
};
