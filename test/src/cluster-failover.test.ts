// Three real broker processes (packages/broker/dist/main.js with --node-id and --peers) on
// 127.0.0.1: a topic with replication factor 3, an idempotent acks=all producer through the
// SDK with a bootstrap list, and kill -9 of the partition leader's process while records are in
// flight. The SDK retries to the new leader; afterwards every acknowledged record is there, at
// the offset it was acknowledged with, and no record is there twice.
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts } from './cluster-harness.js';
import {
  BROKER_MAIN,
  type BrokerProcess,
  removeDir,
  spawnBrokerProcess,
  tempDir,
} from './harness.js';

const text = (u: Uint8Array | null): string => (u === null ? '' : Buffer.from(u).toString());

describe('a 3-broker cluster of processes', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('kill -9 of the partition leader during acks=all produce loses and duplicates nothing', async () => {
    const root = tempDir('streambus-cluster-');
    cleanup.push(async () => removeDir(root));
    const ports = await freePorts(3);
    const peers = ports.map((p, i) => `${i + 1}@127.0.0.1:${p}`).join(',');
    const brokers: BrokerProcess[] = await Promise.all(
      ports.map((port, i) =>
        spawnBrokerProcess(
          [
            BROKER_MAIN,
            '--node-id',
            String(i + 1),
            '--peers',
            peers,
            '--listen',
            `127.0.0.1:${port}`,
            '--http',
            'off',
            '--data-dir',
            join(root, `node-${i + 1}`),
          ],
          join(root, `node-${i + 1}`),
        ),
      ),
    );
    for (const b of brokers) cleanup.push(() => b.kill9());
    const bootstrap = brokers.map((b) => b.bootstrap).join(',');
    const retry = {
      retriesMax: 50,
      backoffInitialMs: 20,
      backoffMaxMs: 300,
      totalTimeoutMs: 20_000,
    };
    const client = new StreamBusClient({ bootstrap, retry });
    cleanup.push(() => client.close());
    const admin = client.admin();
    // Every broker registered and unfenced before the topic is spread over them.
    const liveBy = Date.now() + 20_000;
    while ((await admin.describeCluster()).brokers.filter((b) => b.live).length < 3) {
      if (Date.now() > liveBy) throw new Error('the brokers did not all register');
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.createTopic({ name: 'r3', partitions: 1, replicationFactor: 3 });

    const producer = client.producer({ acks: 'all', lingerMs: 1, deliveryTimeoutMs: 20_000 });
    const acked = new Map<string, number>();
    let failures = 0;
    let sent = 0;
    const inflight = new Set<Promise<void>>();
    const send = (): void => {
      const value = `v-${sent++}`;
      const p = producer.send({ topic: 'r3', value }).then(
        (m) => void acked.set(value, m.offset),
        () => void failures++,
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };
    const until = async (done: () => boolean, ms: number): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!done()) {
        if (Date.now() > deadline) throw new Error('timed out');
        while (inflight.size < 20) send();
        await Promise.race(inflight);
      }
    };
    await until(() => acked.size >= 300, 30_000);
    const leader = (await admin.describeTopic('r3')).partitions[0]!.leaderId;
    expect(leader).toBeGreaterThan(0);
    // Killed while sends are in flight; the loop keeps sending through the failover.
    while (inflight.size < 20) send();
    const inflightAtKill = inflight.size;
    await brokers[leader - 1]!.kill9();
    const ackedAtKill = acked.size;
    await until(() => acked.size >= ackedAtKill + 300, 40_000);
    await Promise.allSettled([...inflight]);
    expect(inflightAtKill).toBeGreaterThan(0);
    expect(acked.size + failures).toBe(sent);

    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'r3', from: 'earliest' });
    const seen = new Map<string, number[]>();
    const deadline = Date.now() + 20_000;
    let records = 0;
    while (records < acked.size && Date.now() < deadline) {
      for (const b of await consumer.poll()) {
        for (const r of b.records) {
          records++;
          const v = text(r.value);
          seen.set(v, [...(seen.get(v) ?? []), r.offset]);
        }
      }
    }
    await consumer.close();
    for (const [value, offset] of acked) {
      expect(seen.get(value), `acknowledged ${value} at ${offset}`).toEqual([offset]);
    }
    const twice = [...seen].filter(([, offsets]) => offsets.length > 1);
    expect(twice).toEqual([]);
  }, 120_000);
});
