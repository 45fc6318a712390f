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
//                     it.
//   kafkajs consumer / @platformatic/kafka consumer (group, earliest)   records/s and MB/s
//                     (record values) of each client, in a fresh consumer group, reading a
//                     pre-filled 4-partition topic of 100 B values from the earliest offset:
//                     kafkajs through eachBatch (records decoded, not processed), @platformatic
//                     through its stream's 'data' events (one decoded message each). Timed from
//                     the first delivery to the last record (the group join before it is not),
//                     the first delivery's records not counted. Reference: the native SDK
//                     Consumer (assign, earliest) over the same topic, timed the same way.
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

const CONSUME_VALUE_BYTES = 100;
const CONSUME_TIMEOUT_MS = 120_000;

/**
 * Times a consumer from its first delivery: the records of that delivery are not counted, so
 * the rate is records after the first delivery over the time since it (no group join, no
 * connection set-up).
 */
export class ConsumeMeter {
  private seen = 0;
  private startNs = 0n;
  private endNs = 0n;

  constructor(readonly total: number) {}

  /** `n` records arrived; true once all `total` have. */
  add(n: number): boolean {
    if (n === 0) return this.done;
    const now = process.hrtime.bigint();
    if (this.seen === 0) this.startNs = now;
    this.seen += n;
    if (this.seen >= this.total && this.endNs === 0n) this.endNs = now;
    return this.seen >= this.total;
  }

  get done(): boolean {
    return this.endNs !== 0n;
  }

  /** Records/s after the first delivery; throws when not done or nothing followed it. */
  rate(first: number): number {
    if (!this.done) throw new Error(`consumed ${this.seen} of ${this.total} records`);
    const secs = Number(this.endNs - this.startNs) / 1e9;
    if (secs <= 0 || this.seen <= first) throw new Error('one delivery held every record');
    return (this.seen - first) / secs;
  }
}

/** Resolves when `done` is called, rejects on `fail` or after CONSUME_TIMEOUT_MS. */
function completion(what: string): {
  promise: Promise<void>;
  done: () => void;
  fail: (err: unknown) => void;
} {
  let done!: () => void;
  let fail!: (err: unknown) => void;
  const promise = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: not done within ${CONSUME_TIMEOUT_MS} ms`)),
      CONSUME_TIMEOUT_MS,
    );
    done = () => {
      clearTimeout(timer);
      resolve();
    };
    fail = (err) => {
      clearTimeout(timer);
      reject(err);
    };
  });
  return { promise, done, fail };
}

async function kafkajsConsumeRun(ctx: Ctx, topic: string, total: number): Promise<number> {
  const { Kafka, logLevel } = await import('kafkajs');
  const k = new Kafka({
    clientId: 'bench',
    brokers: [`127.0.0.1:${ctx.kafkaPort}`],
    logLevel: logLevel.NOTHING,
  });
  const consumer = k.consumer({
    groupId: `bench-kafkajs-${++ctx.topicSeq}`,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 1 << 20,
  });
  const meter = new ConsumeMeter(total);
  const c = completion('kafkajs consumer');
  let first = 0;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    consumer
      .run({
        eachBatch: async ({ batch }) => {
          if (first === 0) first = batch.messages.length;
          if (meter.add(batch.messages.length)) c.done();
        },
      })
      .catch(c.fail);
    await c.promise;
  } finally {
    await consumer.disconnect();
  }
  return meter.rate(first);
}

async function platformaticConsumeRun(ctx: Ctx, topic: string, total: number): Promise<number> {
  kafkaListener.providePromiseWithResolvers();
  const { Consumer } = await import('@platformatic/kafka');
  const consumer = new Consumer({
    groupId: `bench-platformatic-${++ctx.topicSeq}`,
    clientId: 'bench',
    bootstrapBrokers: [`127.0.0.1:${ctx.kafkaPort}`],
    maxWaitTime: 100,
    maxBytesPerPartition: 1 << 20,
  });
  const meter = new ConsumeMeter(total);
  const c = completion('@platformatic/kafka consumer');
  try {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: true });
    stream.on('data', () => {
      if (meter.add(1)) c.done();
    });
    stream.on('error', c.fail);
    await c.promise;
    await stream.close();
  } finally {
    await consumer.close(true);
  }
  return meter.rate(1);
}

async function nativeConsumeRun(ctx: Ctx, topic: string, total: number): Promise<number> {
  const consumer = ctx.client.consumer({ maxWaitMs: 100 });
  const meter = new ConsumeMeter(total);
  let first = 0;
  try {
    await consumer.assign({ topic, from: 'earliest' });
    const deadline = Date.now() + CONSUME_TIMEOUT_MS;
    while (!meter.done) {
      if (Date.now() > deadline) throw new Error('native consumer: not done in time');
      for (const b of await consumer.poll()) {
        if (first === 0) first = b.records.length;
        meter.add(b.records.length);
      }
    }
  } finally {
    await consumer.close();
  }
  return meter.rate(first);
}

async function consumeRows(ctx: Ctx): Promise<ResultRow[]> {
  const frames = ctx.options.quick ? 100 : 1000;
  const total = frames * RECORDS_PER_BATCH;
  const topic = await freshTopic(ctx, 'consume');
  const socket = await openSocket(ctx.broker.port);
  await driveFrames(
    socket,
    produceFrames(topic, ctx.batches, PARTITIONS, 1),
    frames,
    FRAME_INFLIGHT,
  );
  socket.destroy();
  const deadline = Date.now() + 10_000;
  while ((await recordsStored(ctx.client, topic)) < total && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const rows: ResultRow[] = [];
  try {
    for (const [name, body] of [
      ['kafkajs consumer (group, earliest)', kafkajsConsumeRun],
      ['@platformatic/kafka consumer (group, earliest)', platformaticConsumeRun],
    ] as const) {
      const m = await medianOfRuns(
        ctx.runs,
        () => body(ctx, topic, total),
        () => nativeConsumeRun(ctx, topic, total),
      );
      const settings = {
        durability: 'none',
        recordValueBytes: CONSUME_VALUE_BYTES,
        records: total,
        recordsPerBatch: RECORDS_PER_BATCH,
        partitions: PARTITIONS,
        runs: ctx.runs,
        inflight: 'the client default (one fetch per broker), partition max bytes 1 MiB',
        timed: 'from the first delivery (not counted) to the last record',
        values: m.values.map(Math.round),
        references: m.references.map(Math.round),
        reference: 'the native SDK Consumer (assign, earliest), the same topic, timed the same way',
      };
      rows.push(row(name, m.value, 'records/s', settings, m.reference));
      const mb = (r: number) => (r * CONSUME_VALUE_BYTES) / 1e6;
      rows.push(
        row(
          `${name} MB/s`,
          mb(m.value),
          'MB/s',
          {
            ...settings,
            values: m.values.map((v) => Math.round(mb(v))),
            references: m.references.map((v) => Math.round(mb(v))),
            bytes: 'record values',
          },
          mb(m.reference!),
        ),
      );
    }
  } finally {
    await ctx.client.admin().deleteTopic(topic);
  }
  return rows;
}

export const suite: Suite = {
  name: 'kafka',
  description:
    'One broker process with its Kafka listener over loopback: prebuilt Kafka Produce frames vs ' +
    'the native listener fed the same batches (read first: target ratio >= 0.8); kafkajs and ' +
    '@platformatic/kafka producers vs the native SDK Producer; Kafka Fetch vs the native Consumer; ' +
    'kafkajs and @platformatic/kafka group consumers vs the native Consumer (records/s, MB/s).',
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
        // A new group's first rebalance would wait 3 s for more members; the consume rows are
        // timed from the first delivery anyway, this only shortens the suite.
        STREAMBUS_GROUPS_INITIAL_REBALANCE_DELAY_MS: '0',
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
      return [
        await prebuiltRow(ctx),
        ...(await clientRows(ctx)),
        await fetchRow(ctx),
        ...(await consumeRows(ctx)),
      ];
    } finally {
      await client?.close();
      await broker?.stop();
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  },
};
