// librdkafka 2.0.2 against the Kafka listener, through kcat (Debian package `kcat`) and Python
// confluent-kafka (Debian package `python3-confluent-kafka`, run with /usr/bin/python3): kcat -L;
// a few thousand lines produced and consumed with every codec, checking on the stored batches
// that each codec was really used (librdkafka's feature probes turn compression off silently
// when the advertised minima are wrong, kafka-protocol.md §1.3); idempotent produce; records
// produced with the native SDK read back byte-identical by kcat; confluent-kafka produce and
// consume, and a confluent-kafka consumer group (two members, commits, a new member resuming).
// Without the packages these tests are skipped with a warning naming the package.
// The clients run as child processes (asynchronously: the broker is in this process).
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Broker } from '@streambus/broker';
import { kafkaListener } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { readBatchHeader } from '@streambus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafkaBroker } from './kafka-testing.js';

const run = promisify(execFile);
const KCAT = ['/usr/bin/kcat', '/usr/local/bin/kcat'].find((p) => existsSync(p)) ?? null;
const PYTHON = '/usr/bin/python3';

async function hasConfluentKafka(): Promise<boolean> {
  if (!existsSync(PYTHON)) return false;
  try {
    await run(PYTHON, ['-c', 'import confluent_kafka'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
const CONFLUENT = await hasConfluentKafka();
if (KCAT === null) {
  console.warn('kafka-librdkafka.test.ts: kcat tests SKIPPED: install the Debian package `kcat`');
}
if (!CONFLUENT) {
  console.warn(
    'kafka-librdkafka.test.ts: confluent-kafka tests SKIPPED: install the Debian package `python3-confluent-kafka`',
  );
}

/** Runs kcat with `input` on stdin; resolves with stdout (rejects on a non-zero exit). */
function kcat(args: string[], input = '', timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(KCAT!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // Whole bytes first: a chunk boundary may split a UTF-8 character.
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else
        reject(new Error(`kcat ${args.join(' ')} exited ${code ?? signal}: ${err.slice(-2000)}`));
    });
    child.stdin.end(input);
  });
}

describe('librdkafka clients against the Kafka listener', () => {
  let broker: Broker;
  let dir: string;
  let bootstrap: string;
  let native: StreamBusClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-librdkafka-'));
    broker = await startKafkaBroker(dir);
    bootstrap = `127.0.0.1:${broker.kafkaAddress!.port}`;
    native = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
  });
  afterAll(async () => {
    await native?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The codec ids of the batches stored in partition 0 of `topic`, read over the Kafka wire. */
  /**
   * The codecs of the topic's data batches. librdkafka sends a batch uncompressed when
   * compressing would not make it smaller (a batch of one or two short lines, which a loaded
   * machine's timing can produce): such batches of at most SMALL_BATCH_RECORDS are left out.
   */
  const SMALL_BATCH_RECORDS = 4;
  async function storedCodecs(topic: string): Promise<Set<number>> {
    const c = await kafkaListener.KafkaRawClient.connect(broker.kafkaAddress!.port);
    try {
      const p = await c.fetchPartition(topic, 0, 0, { partitionMaxBytes: 50 << 20 });
      const bytes = Buffer.from(p.records!);
      const codecs = new Set<number>();
      for (let pos = 0; pos + 61 <= bytes.length; ) {
        const h = readBatchHeader(bytes.subarray(pos));
        const codec = h.attributes & 7;
        // Control batches (the leader's term start) carry no producer data.
        if ((h.attributes & 0x20) === 0 && (codec !== 0 || h.recordCount > SMALL_BATCH_RECORDS)) {
          codecs.add(codec);
        }
        pos += 12 + h.batchLength;
      }
      return codecs;
    } finally {
      await c.close();
    }
  }

  it.skipIf(KCAT === null)('kcat -L lists the broker at its Kafka address', async () => {
    await native.admin().createTopic({ name: 'kcat-list', partitions: 3 });
    const out = await kcat(['-b', bootstrap, '-L']);
    expect(out).toContain(`broker 1 at ${bootstrap}`);
    expect(out).toMatch(/topic "kcat-list" with 3 partitions/);
    expect(out).not.toContain('Err');
  });

  const codecs = [
    ['none', 0],
    ['gzip', 1],
    ['snappy', 2],
    ['lz4', 3],
    ['zstd', 4],
  ] as const;
  it.skipIf(KCAT === null).each(codecs)(
    'kcat -P / -C -e: 3000 lines with %s, stored with that codec',
    async (name, id) => {
      const topic = `kcat-${name}`;
      await native.admin().createTopic({ name: topic, partitions: 1 });
      const lines = Array.from(
        { length: 3000 },
        (_, i) => `${name} line ${i} ${'z'.repeat(i % 64)}`,
      );
      await kcat(
        ['-b', bootstrap, '-P', '-t', topic, '-p', '0', '-z', name, '-X', 'linger.ms=20'],
        `${lines.join('\n')}\n`,
      );
      const out = await kcat(['-b', bootstrap, '-C', '-t', topic, '-o', 'beginning', '-e', '-q']);
      expect(out.split('\n').filter((l) => l !== '')).toEqual(lines);
      expect([...(await storedCodecs(topic))]).toEqual([id]);
    },
  );

  it.skipIf(KCAT === null)('kcat idempotent produce, and -o -N reads from the end', async () => {
    const topic = 'kcat-idempotent';
    await native.admin().createTopic({ name: topic, partitions: 1 });
    const lines = Array.from({ length: 500 }, (_, i) => `idem ${i}`);
    await kcat(
      ['-b', bootstrap, '-P', '-t', topic, '-p', '0', '-X', 'enable.idempotence=true'],
      `${lines.join('\n')}\n`,
    );
    const out = await kcat(['-b', bootstrap, '-C', '-t', topic, '-o', 'beginning', '-e', '-q']);
    expect(out.split('\n').filter((l) => l !== '')).toEqual(lines);
    const tail = await kcat(['-b', bootstrap, '-C', '-t', topic, '-o', '-5', '-e', '-q']);
    expect(tail.split('\n').filter((l) => l !== '')).toEqual(lines.slice(-5));
  });

  it.skipIf(KCAT === null)(
    'records produced with the native SDK come out of kcat unchanged',
    async () => {
      const topic = 'native-to-kcat';
      await native.admin().createTopic({ name: topic, partitions: 1 });
      const producer = native.producer({ compression: 'gzip', lingerMs: 1 });
      const values = Array.from({ length: 200 }, (_, i) => `native ${i} \u00e9\u4e16`);
      await producer.sendBatch(
        values.map((value, i) => ({
          topic,
          key: `key${i}`,
          value,
          timestamp: 1_700_000_000_000 + i,
        })),
      );
      await producer.close();
      // key TAB value TAB timestamp: the exact bytes, as kcat decoded them.
      const out = await kcat([
        '-b',
        bootstrap,
        '-C',
        '-t',
        topic,
        '-o',
        'beginning',
        '-e',
        '-q',
        '-f',
        '%k\\t%s\\t%T\\n',
      ]);
      expect(out.split('\n').filter((l) => l !== '')).toEqual(
        values.map((v, i) => `key${i}\t${v}\t${1_700_000_000_000 + i}`),
      );
    },
  );

  it.skipIf(!CONFLUENT)(
    'confluent-kafka produces (idempotent, lz4) and consumes by assignment',
    async () => {
      const topic = 'confluent-t';
      await native.admin().createTopic({ name: topic, partitions: 1 });
      const script = `
import sys
from confluent_kafka import Producer, Consumer, TopicPartition, OFFSET_BEGINNING
bs, topic = sys.argv[1], sys.argv[2]
p = Producer({'bootstrap.servers': bs, 'enable.idempotence': True, 'compression.type': 'lz4', 'linger.ms': 5})
for i in range(2000):
    p.produce(topic, value=('py %d' % i).encode(), key=('k%d' % (i % 7)).encode(), partition=0)
left = p.flush(20)
assert left == 0, 'unflushed %d' % left
c = Consumer({'bootstrap.servers': bs, 'group.id': 'unused', 'enable.auto.commit': False})
c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
got = []
while len(got) < 2000:
    m = c.poll(10)
    if m is None:
        break
    if m.error():
        continue
    got.append(m.value().decode())
c.close()
assert got == ['py %d' % i for i in range(2000)], 'got %d records' % len(got)
print('ok', len(got))
`;
      const { stdout } = await run(PYTHON, ['-c', script, bootstrap, topic], { timeout: 60_000 });
      expect(stdout.trim()).toBe('ok 2000');
      expect([...(await storedCodecs(topic))]).toEqual([3]);
    },
  );

  it.skipIf(!CONFLUENT)(
    'a confluent-kafka consumer group: two members split the partitions, commit, and a new member resumes after the commits',
    async () => {
      const topic = 'confluent-group';
      await native.admin().createTopic({ name: topic, partitions: 2 });
      const script = `
import sys, time
from confluent_kafka import Producer, Consumer
bs, topic = sys.argv[1], sys.argv[2]
p = Producer({'bootstrap.servers': bs, 'linger.ms': 5})
def produce(lo, hi):
    for i in range(lo, hi):
        p.produce(topic, value=('g %d' % i).encode(), partition=i % 2)
    assert p.flush(20) == 0
def member():
    return Consumer({'bootstrap.servers': bs, 'group.id': 'py-group', 'auto.offset.reset': 'earliest',
                     'enable.auto.commit': False, 'session.timeout.ms': 10000,
                     'heartbeat.interval.ms': 300})
produce(0, 400)
a, b = member(), member()
a.subscribe([topic]); b.subscribe([topic])
seen = {id(a): [], id(b): []}
deadline = time.time() + 40
num = lambda v: int(v.split()[1])
# At least once: a rebalance may hand a record to both members, never to neither.
while len(set(seen[id(a)] + seen[id(b)])) < 400 and time.time() < deadline:
    for c in (a, b):
        m = c.poll(0.1)
        if m is not None and not m.error():
            seen[id(c)].append(m.value().decode())
got = sorted(set(seen[id(a)] + seen[id(b)]), key=num)
assert got == ['g %d' % i for i in range(400)], 'group read %d records' % len(got)
assert seen[id(a)] and seen[id(b)], 'one member read everything: %d / %d' % (len(seen[id(a)]), len(seen[id(b)]))
a.commit(asynchronous=False); b.commit(asynchronous=False)
a.close(); b.close()
produce(400, 450)
c = member()
c.subscribe([topic])
later = []
deadline = time.time() + 40
while len(set(later)) < 50 and time.time() < deadline:
    m = c.poll(0.2)
    if m is not None and not m.error():
        later.append(m.value().decode())
c.close()
assert sorted(set(later), key=num) == ['g %d' % i for i in range(400, 450)], 'resumed with %r' % later[:5]
print('ok', len(got), len(set(later)))
`;
      const { stdout } = await run(PYTHON, ['-c', script, bootstrap, topic], { timeout: 90_000 });
      expect(stdout.trim()).toBe('ok 400 50');
    },
    120_000,
  );
});
