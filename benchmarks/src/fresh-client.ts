// The client side of the broker suite's fresh-process rows (fresh-process.ts): a new Node
// process per run, as a user's application starts, that connects, does one job against a
// broker that has also just started, prints one JSON line with what it measured and exits.
//
//   node fresh-client.js '<job JSON>'
//
// Jobs: `sendBatch` (records/s of Producer.sendBatch over `records` records, the application's
// record objects made before timing), `paced` (Producer.send per record at `rate` records/s
// for `seconds`, lingerMs 0; p50/p99 of send-to-ack over the records sent after `dropMs`), and
// `consume` (records/s of one Consumer reading `records` records from the earliest offset).
// Nothing is warmed up first: the point is what the first seconds cost.
import { StreamBusClient } from '@streambus/client';
import { pacedSendLatencies } from './paced-send.js';

export type FreshJob =
  | {
      kind: 'sendBatch';
      port: number;
      topic: string;
      acks: 1 | 'all';
      records: number;
      valueBytes: number;
      chunkRecords: number;
      chunksOutstanding: number;
    }
  | {
      kind: 'paced';
      port: number;
      topic: string;
      acks: 1 | 'all';
      rate: number;
      seconds: number;
      dropMs: number;
      valueBytes: number;
    }
  | { kind: 'consume'; port: number; topic: string; records: number };

export type FreshResult =
  | { kind: 'sendBatch'; recordsPerSec: number; seconds: number }
  | { kind: 'paced'; latenciesMs: number[] }
  | { kind: 'consume'; recordsPerSec: number; valueBytes: number; seconds: number };

async function sendBatchJob(client: StreamBusClient, job: FreshJob & { kind: 'sendBatch' }) {
  const value = Buffer.alloc(job.valueBytes, 'v');
  const chunk = Array.from({ length: job.chunkRecords }, () => ({ topic: job.topic, value }));
  const producer = client.producer({ acks: job.acks });
  const start = process.hrtime.bigint();
  const outstanding: Promise<unknown>[] = [];
  for (let sent = 0; sent < job.records; sent += job.chunkRecords) {
    outstanding.push(producer.sendBatch(chunk));
    if (outstanding.length >= job.chunksOutstanding) await outstanding.shift();
  }
  await Promise.all(outstanding);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await producer.close();
  return { kind: 'sendBatch' as const, recordsPerSec: job.records / seconds, seconds };
}

async function pacedJob(client: StreamBusClient, job: FreshJob & { kind: 'paced' }) {
  const value = Buffer.alloc(job.valueBytes, 'l');
  const producer = client.producer({ acks: job.acks, lingerMs: 0 });
  const latenciesMs = await pacedSendLatencies(producer, job.topic, value, {
    rate: job.rate,
    total: Math.round(job.seconds * job.rate),
    dropMs: job.dropMs,
  });
  await producer.close();
  return { kind: 'paced' as const, latenciesMs };
}

async function consumeJob(client: StreamBusClient, job: FreshJob & { kind: 'consume' }) {
  const consumer = client.consumer({ maxWaitMs: 100 });
  await consumer.assign({ topic: job.topic, from: 'earliest' });
  const start = process.hrtime.bigint();
  let got = 0;
  let valueBytes = 0;
  while (got < job.records) {
    for (const b of await consumer.poll()) {
      got += b.records.length;
      for (const r of b.records) valueBytes += r.value?.length ?? 0;
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await consumer.close();
  if (got !== job.records) throw new Error(`consumed ${got} of ${job.records}`);
  return { kind: 'consume' as const, recordsPerSec: got / seconds, valueBytes, seconds };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as FreshJob;
  const client = new StreamBusClient({ bootstrap: `127.0.0.1:${job.port}` });
  try {
    let result: FreshResult;
    if (job.kind === 'sendBatch') result = await sendBatchJob(client, job);
    else if (job.kind === 'paced') result = await pacedJob(client, job);
    else result = await consumeJob(client, job);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await client.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `fresh-client: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
