#!/usr/bin/env node
// Captures the Kafka request frames that real clients send, for the codec's golden tests
// (packages/protocol/testdata/kafka/). It starts a tiny in-memory Kafka broker on 127.0.0.1 that
// decodes every request and answers with the codec's own encoders (so it also checks that the
// clients accept those answers), then drives kafkajs 2.2.4 and kcat against it and saves the first
// frame of each (client, step, API, version) as `<client>-<step>-<Api>-v<N>.bin` (size prefix
// included; identical bytes are kept once), with the answer the client accepted beside it as
// `….response.bin`. It is a test tool, not a broker: one partition per topic, one member per group.
//
// Rerun (from the repository root, after `./node_modules/.bin/tsc -b`):
//   mkdir -p /tmp/kjs && (cd /tmp/kjs && npm init -y && npm i kafkajs@2.2.4)   # outside the repo
//   apt-get install -y kcat                                                    # librdkafka 2.0.2
//   KAFKAJS_DIR=/tmp/kjs/node_modules/kafkajs node packages/protocol/scripts/kafka-capture.mjs
//   apt-get install -y python3-confluent-kafka                                  # optional
// Options: OUT_DIR (default packages/protocol/testdata/kafka), SKIP_KCAT=1, SKIP_KAFKAJS=1,
// SKIP_CONFLUENT=1, PYTHON (default /usr/bin/python3), SKIP_PLATFORMATIC=1, PLATFORMATIC_DIR
// (default test/node_modules/@platformatic/kafka, the test package's dev dependency).
// Every client step has a time limit; the server and child processes are closed at the end.

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { kafka, readBatchHeader, setBaseOffset } = await import(
  path.join(here, '..', 'dist', 'index.js')
);
const OUT_DIR = process.env.OUT_DIR || path.join(here, '..', 'testdata', 'kafka');
const STEP_TIMEOUT_MS = 20_000;

mkdirSync(OUT_DIR, { recursive: true });
let client = 'none';
let step = 'none';
const saved = new Set();
const contents = new Set();
const seen = [];

// ---- the in-memory broker ---------------------------------------------------------------------
const topics = new Map(); // name -> { batches: Buffer[], end: number }
const groups = new Map(); // id -> { generation, memberId, protocol, metadata, assignment, offsets }
let nextProducerId = 1000;
let port = 0;
let memberSeq = 0;

function topic(name, create) {
  let t = topics.get(name);
  if (t === undefined && create) {
    t = { batches: [], end: 0 };
    topics.set(name, t);
  }
  return t;
}

function metadataTopic(name, t) {
  return {
    errorCode: t ? 0 : 3,
    name,
    isInternal: false,
    partitions: t
      ? [{ errorCode: 0, partitionIndex: 0, leaderId: 0, replicaNodes: [0], isrNodes: [0] }]
      : [],
  };
}

const handlers = {
  ApiVersions: () => ({
    errorCode: 0,
    apiKeys: kafka.apiVersionsEntries([...kafka.KAFKA_API_RANGES, ...kafka.OPTIONAL_API_RANGES]),
    throttleTimeMs: 0,
  }),
  Metadata: (_v, b) => {
    const names = b.topics === null ? [...topics.keys()] : b.topics.map((t) => t.name);
    return {
      throttleTimeMs: 0,
      brokers: [{ nodeId: 0, host: '127.0.0.1', port, rack: null }],
      clusterId: 'capture',
      controllerId: 0,
      topics: names.map((n) => metadataTopic(n, topic(n, b.allowAutoTopicCreation))),
    };
  },
  Produce: (_v, b) => ({
    responses: b.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        const tp = topic(t.name, true);
        const batch = Buffer.from(p.records);
        const h = readBatchHeader(batch);
        const base = tp.end;
        setBaseOffset(batch, 0, base);
        tp.batches.push(batch);
        tp.end = base + h.lastOffsetDelta + 1;
        return {
          index: p.index,
          errorCode: 0,
          baseOffset: base,
          logAppendTimeMs: -1,
          logStartOffset: 0,
        };
      }),
    })),
    throttleTimeMs: 0,
  }),
  Fetch: (_v, b) => ({
    throttleTimeMs: 0,
    errorCode: 0,
    sessionId: 0,
    responses: b.topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map((p) => {
        const tp = topic(t.topic, false);
        const out = tp
          ? tp.batches.filter((x) => {
              const h = readBatchHeader(x);
              return h.baseOffset + h.lastOffsetDelta >= p.fetchOffset;
            })
          : [];
        return {
          partitionIndex: p.partition,
          errorCode: tp ? 0 : 3,
          highWatermark: tp ? tp.end : -1,
          lastStableOffset: tp ? tp.end : -1,
          logStartOffset: 0,
          abortedTransactions: null,
          preferredReadReplica: -1,
          records: Buffer.concat(out),
        };
      }),
    })),
  }),
  ListOffsets: (_v, b) => ({
    throttleTimeMs: 0,
    topics: b.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        errorCode: 0,
        timestamp: -1,
        offset: p.timestamp === -2 ? 0 : (topic(t.name, false)?.end ?? 0),
      })),
    })),
  }),
  FindCoordinator: () => ({
    throttleTimeMs: 0,
    errorCode: 0,
    errorMessage: null,
    nodeId: 0,
    host: '127.0.0.1',
    port,
  }),
  JoinGroup: (_v, b) => {
    const g = groups.get(b.groupId) ?? { generation: 0, offsets: new Map() };
    groups.set(b.groupId, g);
    g.generation += 1;
    g.memberId = b.memberId || `member-${++memberSeq}`;
    g.protocol = b.protocols[0].name;
    return {
      throttleTimeMs: 0,
      errorCode: 0,
      generationId: g.generation,
      protocolName: g.protocol,
      leader: g.memberId,
      memberId: g.memberId,
      members: [{ memberId: g.memberId, groupInstanceId: null, metadata: b.protocols[0].metadata }],
    };
  },
  SyncGroup: (_v, b) => {
    const mine = b.assignments.find((a) => a.memberId === b.memberId);
    return {
      throttleTimeMs: 0,
      errorCode: 0,
      assignment: mine ? mine.assignment : Buffer.alloc(0),
    };
  },
  Heartbeat: () => ({ throttleTimeMs: 0, errorCode: 0 }),
  LeaveGroup: () => ({ throttleTimeMs: 0, errorCode: 0 }),
  OffsetCommit: (_v, b) => {
    const g = groups.get(b.groupId);
    return {
      throttleTimeMs: 0,
      topics: b.topics.map((t) => ({
        name: t.name,
        partitions: t.partitions.map((p) => {
          g?.offsets.set(`${t.name}/${p.partitionIndex}`, p.committedOffset);
          return { partitionIndex: p.partitionIndex, errorCode: 0 };
        }),
      })),
    };
  },
  OffsetFetch: (_v, b) => {
    const g = groups.get(b.groupId);
    return {
      throttleTimeMs: 0,
      topics: (b.topics ?? []).map((t) => ({
        name: t.name,
        partitions: t.partitionIndexes.map((i) => ({
          partitionIndex: i,
          committedOffset: g?.offsets.get(`${t.name}/${i}`) ?? -1,
          metadata: '',
          errorCode: 0,
        })),
      })),
      errorCode: 0,
    };
  },
  CreateTopics: (_v, b) => ({
    throttleTimeMs: 0,
    topics: b.topics.map((t) => {
      const exists = topics.has(t.name);
      topic(t.name, true);
      return { name: t.name, errorCode: exists ? 36 : 0, errorMessage: null };
    }),
  }),
  DeleteTopics: (_v, b) => ({
    throttleTimeMs: 0,
    responses: b.topicNames.map((n) => ({ name: n, errorCode: topics.delete(n) ? 0 : 3 })),
  }),
  InitProducerId: () => ({
    throttleTimeMs: 0,
    errorCode: 0,
    producerId: nextProducerId++,
    producerEpoch: 0,
  }),
  ListGroups: () => ({
    throttleTimeMs: 0,
    errorCode: 0,
    groups: [...groups.keys()].map((id) => ({ groupId: id, protocolType: 'consumer' })),
  }),
  DescribeGroups: (_v, b) => ({
    throttleTimeMs: 0,
    groups: b.groups.map((id) => ({
      errorCode: 0,
      groupId: id,
      groupState: 'Empty',
      protocolType: 'consumer',
      protocolData: '',
      members: [],
    })),
  }),
  DeleteGroups: (_v, b) => ({
    throttleTimeMs: 0,
    results: b.groupsNames.map((id) => ({ groupId: id, errorCode: groups.delete(id) ? 0 : 69 })),
  }),
  DescribeConfigs: (_v, b) => ({
    throttleTimeMs: 0,
    results: b.resources.map((res) => ({
      errorCode: 0,
      errorMessage: null,
      resourceType: res.resourceType,
      resourceName: res.resourceName,
      configs: [
        {
          name: 'retention.ms',
          value: '604800000',
          readOnly: false,
          isDefault: true,
          configSource: 5,
          isSensitive: false,
          synonyms: [],
        },
      ],
    })),
  }),
  AlterConfigs: (_v, b) => ({
    throttleTimeMs: 0,
    responses: b.resources.map((res) => ({
      errorCode: 0,
      errorMessage: null,
      resourceType: res.resourceType,
      resourceName: res.resourceName,
    })),
  }),
  CreatePartitions: (_v, b) => ({
    throttleTimeMs: 0,
    results: b.topics.map((t) => ({
      name: t.name,
      errorCode: 37,
      errorMessage: 'one partition only',
    })),
  }),
  DeleteRecords: (_v, b) => ({
    throttleTimeMs: 0,
    topics: b.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        lowWatermark: p.offset,
        errorCode: 0,
      })),
    })),
  }),
};

/** Saves a request frame; returns the file name to save its answer under, or null. */
function save(frame, name, version) {
  const file = `${client}-${step}-${name}-v${version}.bin`;
  if (saved.has(file)) return null;
  saved.add(file);
  const prefixed = Buffer.alloc(4 + frame.length);
  prefixed.writeInt32BE(frame.length, 0);
  frame.copy(prefixed, 4);
  // The same bytes from another step (each kafkajs connection repeats ApiVersions) are kept once.
  const hex = prefixed.toString('hex');
  if (contents.has(hex)) return null;
  contents.add(hex);
  writeFileSync(path.join(OUT_DIR, file), prefixed);
  seen.push(file);
  return file.replace(/\.bin$/, '.response.bin');
}

const sockets = new Set();
const server = net.createServer((sock) => {
  sockets.add(sock);
  sock.on('close', () => sockets.delete(sock));
  sock.on('error', () => sock.destroy());
  const parser = new kafka.KafkaFrameParser();
  sock.on('data', (chunk) => {
    let frames;
    try {
      frames = parser.push(chunk);
    } catch (err) {
      console.error(`capture: bad stream: ${err}`);
      sock.destroy();
      return;
    }
    for (const frame of frames) {
      const h = kafka.peekRequestHeader(frame);
      const range = kafka.KAFKA_API_RANGES.find((x) => x.apiKey === 18);
      if (h.apiKey === 18 && h.apiVersion > range.maxVersion) {
        sock.write(kafka.encodeApiVersionsFallback(h.correlationId, kafka.KAFKA_API_RANGES));
        continue;
      }
      let req;
      try {
        req = kafka.decodeRequest(frame);
      } catch (err) {
        console.error(
          `capture: ${client}/${step}: cannot decode key ${h.apiKey} v${h.apiVersion}: ${err}`,
        );
        sock.destroy();
        return;
      }
      const responseFile = save(frame, req.name, h.apiVersion);
      const handler = handlers[req.name];
      if (handler === undefined) {
        console.error(`capture: no handler for ${req.name}`);
        sock.destroy();
        return;
      }
      if (req.name === 'Produce' && req.body.acks === 0) {
        handler(h.apiVersion, req.body);
        continue;
      }
      const body = handler(h.apiVersion, req.body);
      const answer = () => {
        if (sock.destroyed) return;
        const out = kafka.encodeResponse(req.name, h.apiVersion, h.correlationId, body);
        // The answer the client accepted, for the response-decoder golden tests.
        if (responseFile !== null) writeFileSync(path.join(OUT_DIR, responseFile), out);
        sock.write(out);
      };
      // An empty fetch waits a little (a long-poll stand-in) so consumers do not spin.
      const empty =
        req.name === 'Fetch' &&
        body.responses.every((t) => t.partitions.every((p) => p.records.length === 0));
      if (empty) setTimeout(answer, Math.min(200, req.body.maxWaitMs));
      else answer();
    }
  });
});

await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
port = server.address().port;
const broker = `127.0.0.1:${port}`;
console.log(`capture: broker on ${broker}, writing ${OUT_DIR}`);

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out`)), STEP_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function run(c, s, fn) {
  client = c;
  step = s;
  try {
    await withTimeout(fn(), `${c} ${s}`);
    console.log(`capture: ${c} ${s}: ok`);
  } catch (err) {
    console.error(`capture: ${c} ${s}: FAILED: ${err}`);
    process.exitCode = 1;
  }
}

function kcat(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', ['-b', broker, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS - 1000);
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`kcat ${args.join(' ')} exited ${code}: ${err.slice(-400)}`));
    });
    child.stdin.end(input ?? '');
  });
}

// ---- kafkajs 2.2.4 ---------------------------------------------------------------------------
if (process.env.SKIP_KAFKAJS !== '1') {
  const dir = process.env.KAFKAJS_DIR ?? '/tmp/kjs/node_modules/kafkajs';
  const { Kafka, CompressionTypes, logLevel } = createRequire(path.join(dir, 'package.json'))(dir);
  const kjs = new Kafka({ clientId: 'kafkajs', brokers: [broker], logLevel: logLevel.NOTHING });
  await run('kafkajs', 'admin', async () => {
    const admin = kjs.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'golden' }] });
    await admin.createTopics({ topics: [{ topic: 'doomed', numPartitions: 1 }] });
    await admin.fetchTopicMetadata({ topics: ['golden'] });
    await admin.deleteTopics({ topics: ['doomed'] });
    await admin.describeConfigs({
      resources: [{ type: 2, name: 'golden' }],
      includeSynonyms: false,
    });
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        { type: 2, name: 'golden', configEntries: [{ name: 'retention.ms', value: '1000' }] },
      ],
    });
    // The capture broker refuses (one partition per topic): only the request matters here.
    await admin
      .createPartitions({ topicPartitions: [{ topic: 'golden', count: 2 }] })
      .catch(() => {});
    await admin.disconnect();
  });
  for (const [codec, type] of [
    ['none', CompressionTypes.None],
    ['gzip', CompressionTypes.GZIP],
  ]) {
    await run('kafkajs', `produce-${codec}`, async () => {
      const producer = kjs.producer();
      await producer.connect();
      await producer.send({
        topic: 'golden',
        compression: type,
        messages: [
          { key: 'k1', value: `hello ${codec}`, timestamp: '1700000000000' },
          { key: null, value: 'second', headers: { h: 'v' }, timestamp: '1700000000001' },
        ],
      });
      await producer.disconnect();
    });
  }
  await run('kafkajs', 'produce-idempotent', async () => {
    const producer = kjs.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: 'golden',
      messages: [{ key: 'idem', value: 'once', timestamp: '1700000000002' }],
    });
    await producer.disconnect();
  });
  await run('kafkajs', 'consume', async () => {
    const consumer = kjs.consumer({ groupId: 'golden-group', maxWaitTimeInMs: 200 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'golden', fromBeginning: true });
    let count = 0;
    await new Promise((resolve, reject) => {
      consumer
        .run({
          autoCommitThreshold: 1,
          eachMessage: async () => {
            count += 1;
            if (count === 5) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.commitOffsets([{ topic: 'golden', partition: 0, offset: '5' }]);
    await consumer.disconnect();
  });
  await run('kafkajs', 'groups', async () => {
    const admin = kjs.admin();
    await admin.connect();
    await admin.listGroups();
    await admin.describeGroups(['golden-group']);
    await admin.fetchOffsets({ groupId: 'golden-group', topics: ['golden'] });
    await admin.deleteGroups(['golden-group']);
    await admin.deleteTopicRecords({
      topic: 'golden',
      partitions: [{ partition: 0, offset: '1' }],
    });
    await admin.disconnect();
  });
}

// ---- kcat 1.7.1 / librdkafka 2.0.2 -------------------------------------------------------------
if (process.env.SKIP_KCAT !== '1') {
  await run('kcat', 'list', () => kcat(['-L']));
  for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
    await run('kcat', `produce-${codec}`, () =>
      // librdkafka sends a batch uncompressed when compression would not shrink it, so the
      // lines repeat enough to compress under every codec.
      kcat(
        ['-P', '-t', 'golden', '-z', codec, '-K', ':', '-X', 'linger.ms=200'],
        Array.from(
          { length: 100 },
          (_, i) => `k${i % 4}:${codec} the same compressible line, again and again\n`,
        ).join(''),
      ),
    );
  }
  await run('kcat', 'produce-idempotent', () =>
    kcat(['-P', '-t', 'golden', '-X', 'enable.idempotence=true'], 'idempotent\n'),
  );
  await run('kcat', 'consume', () => kcat(['-C', '-t', 'golden', '-o', 'beginning', '-e']));
  await run('kcat', 'group', () => kcat(['-G', 'kcat-group', '-e', 'golden']));
}

// ---- confluent-kafka (Python, Debian python3-confluent-kafka on librdkafka 2.0.2) ------------
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CONFLUENT = `
import sys
from confluent_kafka import Producer, Consumer
b = sys.argv[1]
p = Producer({'bootstrap.servers': b, 'compression.type': 'gzip'})
p.produce('golden', key=b'py', value=b'from confluent-kafka', timestamp=1700000000003)
assert p.flush(10) == 0
c = Consumer({'bootstrap.servers': b, 'group.id': 'py-group', 'auto.offset.reset': 'earliest'})
c.subscribe(['golden'])
got = 0
for _ in range(100):
    m = c.poll(0.2)
    if m is not None and m.error() is None:
        got += 1
        if got == 3:
            break
c.commit(asynchronous=False)
c.close()
assert got == 3, got
`;
if (process.env.SKIP_CONFLUENT !== '1') {
  await run(
    'confluent',
    'produce-consume',
    () =>
      new Promise((resolve, reject) => {
        const child = spawn(PYTHON, ['-c', CONFLUENT, broker], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let err = '';
        const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS - 1000);
        child.stderr.on('data', (d) => {
          err += d;
        });
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve();
          else reject(new Error(`confluent-kafka exited ${code}: ${err.slice(-400)}`));
        });
      }),
  );
}

// ---- @platformatic/kafka 2.12.1 (the test package's dev dependency) -------------------------
if (process.env.SKIP_PLATFORMATIC !== '1') {
  // It declares Node >= 22; the one newer built-in it needs on Node 20 is provided here.
  if (typeof Promise.withResolvers !== 'function') {
    Promise.withResolvers = () => {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    };
  }
  const dir =
    process.env.PLATFORMATIC_DIR ??
    path.join(here, '..', '..', '..', 'test', 'node_modules', '@platformatic', 'kafka');
  const plt = await import(path.join(dir, 'dist', 'index.js'));
  const options = { clientId: 'platformatic', bootstrapBrokers: [broker] };
  await run('platformatic', 'admin', async () => {
    const admin = new plt.Admin(options);
    await admin.createTopics({ topics: ['plt-golden'], partitions: 1, replicas: 1 });
    await admin.createTopics({ topics: ['plt-doomed'], partitions: 1, replicas: 1 });
    await admin.metadata({ topics: ['plt-golden'] });
    await admin.deleteTopics({ topics: ['plt-doomed'] });
    await admin.close();
  });
  for (const codec of ['none', 'gzip', 'snappy', 'lz4']) {
    await run('platformatic', `produce-${codec}`, async () => {
      const producer = new plt.Producer({
        ...options,
        serializers: plt.stringSerializers,
        ...(codec === 'none' ? {} : { compression: codec }),
      });
      await producer.send({
        messages: Array.from({ length: 20 }, (_, i) => ({
          topic: 'plt-golden',
          key: `k${i % 4}`,
          value: `${codec} the same compressible line, again and again`,
          timestamp: 1700000000000n + BigInt(i),
        })),
      });
      await producer.close();
    });
  }
  await run('platformatic', 'produce-idempotent', async () => {
    const producer = new plt.Producer({
      ...options,
      serializers: plt.stringSerializers,
      idempotent: true,
    });
    await producer.send({ messages: [{ topic: 'plt-golden', key: 'idem', value: 'once' }] });
    await producer.close();
  });
  await run('platformatic', 'consume', async () => {
    const consumer = new plt.Consumer({
      ...options,
      groupId: 'plt-golden-group',
      deserializers: plt.stringDeserializers,
      maxWaitTime: 200,
    });
    const stream = await consumer.consume({
      topics: ['plt-golden'],
      mode: 'earliest',
      autocommit: false,
    });
    await new Promise((resolve, reject) => {
      let count = 0;
      stream.on('error', reject);
      stream.on('data', () => {
        count += 1;
        if (count === 5) resolve();
      });
    });
    await consumer.commit({
      offsets: [{ topic: 'plt-golden', partition: 0, offset: 5n, leaderEpoch: 0 }],
    });
    await stream.close();
    await consumer.close(true);
  });
  await run('platformatic', 'groups', async () => {
    const admin = new plt.Admin(options);
    await admin.listGroups();
    await admin.describeGroups({ groups: ['plt-golden-group'] });
    await admin.listConsumerGroupOffsets({ groups: ['plt-golden-group'] });
    await admin.alterConsumerGroupOffsets({
      groupId: 'plt-golden-group',
      topics: [{ name: 'plt-golden', partitionOffsets: [{ partition: 0, offset: 1n }] }],
    });
    await admin.deleteGroups({ groups: ['plt-golden-group'] });
    await admin.close();
  });
}

for (const s of sockets) s.destroy();
await new Promise((resolve) => server.close(resolve));
console.log(`capture: ${seen.length} frames saved`);
