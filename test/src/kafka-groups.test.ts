// Consumer groups through the Kafka listener, on the broker's group coordinator: a kafkajs group
// of 3 members where one leaves (rebalance, no record lost), committed offsets resumed by a new
// member, describe and list groups, reset offsets, delete the group; and kcat's balanced
// consumer (-G, librdkafka) reading a topic in a group.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '@streambus/broker';
import { type Consumer, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafkaBroker } from './kafka-testing.js';

const KCAT = existsSync('/usr/bin/kcat');
if (!KCAT) console.warn('kafka-groups.test.ts: kcat -G SKIPPED: install the Debian package `kcat`');

async function until(what: string, done: () => boolean | Promise<boolean>, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('consumer groups through the Kafka listener', () => {
  let broker: Broker;
  let dir: string;
  let kafka: Kafka;
  let bootstrap: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-kafka-groups-'));
    broker = await startKafkaBroker(dir);
    bootstrap = `127.0.0.1:${broker.kafkaAddress!.port}`;
    kafka = new Kafka({
      clientId: 'groups-test',
      brokers: [bootstrap],
      logLevel: logLevel.NOTHING,
      retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  });
  afterAll(async () => {
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function produce(topic: string, from: number, count: number) {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: count }, (_, i) => ({
        key: `k${(from + i) % 9}`,
        value: `v${from + i}`,
      })),
    });
    await producer.disconnect();
  }

  function member(groupId: string): Consumer {
    return kafka.consumer({
      groupId,
      sessionTimeout: 10_000,
      rebalanceTimeout: 10_000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 200,
    });
  }

  async function start(c: Consumer, topic: string, seen: string[]) {
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value!.toString());
      },
    });
  }

  it('3 members, one leaves, a new member resumes from the committed offsets', async () => {
    const topic = 'kjs-group';
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
      await produce(topic, 0, 300);
      const seen: string[] = [];
      const members = [member('g1'), member('g1'), member('g1')];
      for (const m of members) await start(m, topic, seen);
      await until('the first 300 records', () => new Set(seen).size >= 300);
      // One member leaves: the others take its partitions over; nothing produced next is lost.
      await members[2]!.disconnect();
      await produce(topic, 300, 150);
      await until('150 more after a member left', () => new Set(seen).size >= 450);
      for (const m of members.slice(0, 2)) await m.disconnect();
      expect(new Set(seen).size).toBe(450);
      const described = await admin.describeGroups(['g1']);
      expect(described.groups[0]).toMatchObject({
        groupId: 'g1',
        state: 'Empty',
        protocolType: 'consumer',
      });
      expect((await admin.listGroups()).groups.map((g) => g.groupId)).toContain('g1');
      const committed = await admin.fetchOffsets({ groupId: 'g1', topics: [topic] });
      const sum = committed[0]!.partitions.reduce((n, p) => n + Number(p.offset), 0);
      expect(sum).toBeGreaterThanOrEqual(450);
      // A new member starts where the group left off: only the records produced since.
      await produce(topic, 450, 60);
      const later: string[] = [];
      const fresh = member('g1');
      await start(fresh, topic, later);
      await until('the 60 new records', () => later.length >= 60);
      await new Promise((r) => setTimeout(r, 500));
      await fresh.disconnect();
      expect(later.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `v${450 + i}`).sort());
      // Reset to the earliest offsets (the group is empty): a member then reads everything again.
      await admin.resetOffsets({ groupId: 'g1', topic, earliest: true });
      const again: string[] = [];
      const reread = member('g1');
      await start(reread, topic, again);
      await until('everything again', () => new Set(again).size >= 510);
      await reread.disconnect();
      await admin.deleteGroups(['g1']);
      expect((await admin.listGroups()).groups.map((g) => g.groupId)).not.toContain('g1');
    } finally {
      await admin.disconnect();
    }
  }, 120_000);

  it.skipIf(!KCAT)(
    'kcat -G: a librdkafka balanced consumer reads the topic in a group',
    async () => {
      const topic = 'kcat-group';
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
      await admin.disconnect();
      await produce(topic, 0, 100);
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(
          '/usr/bin/kcat',
          ['-b', bootstrap, '-G', 'kcat-g', '-o', 'beginning', '-e', '-q', topic],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        const chunks: Buffer[] = [];
        let err = '';
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.stdout.on('data', (d: Buffer) => chunks.push(d));
        child.stderr.on('data', (d: Buffer) => {
          err += d;
        });
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(Buffer.concat(chunks).toString());
          else reject(new Error(`kcat -G exited ${code}: ${err.slice(-2000)}`));
        });
      });
      expect(
        out
          .split('\n')
          .filter((l) => l !== '')
          .sort(),
      ).toEqual(Array.from({ length: 100 }, (_, i) => `v${i}`).sort());
    },
    90_000,
  );
});
