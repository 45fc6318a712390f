// kafkajs against the Kafka listeners of a 3-broker cluster of processes (cluster-harness.ts,
// each broker given only its own --kafka-listen: the others' Kafka addresses come from their
// registrations in the metadata log, issue 11): a topic with replication factor 3, kafkajs
// producing acks=-1 while the partition leader is killed with kill -9. The client recovers by
// itself (connection errors, metadata refresh, NOT_LEADER_OR_FOLLOWER, the new leader) and every
// acknowledged record is there afterwards.
import { StreamBusClient } from '@streambus/client';
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts, TestCluster } from './cluster-harness.js';

const text = (u: Uint8Array | null): string => (u === null ? '' : Buffer.from(u).toString());

describe('kafkajs across a 3-broker cluster', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('kill -9 of the partition leader during acks=-1 produce: kafkajs recovers, nothing acknowledged is lost', async () => {
    const kafkaPorts = await freePorts(3);
    const kafkaOf = (id: number) => `127.0.0.1:${kafkaPorts[id - 1]}`;
    const cluster = await TestCluster.start({
      nodes: 3,
      nodeArgs: (id) => ['--kafka-listen', kafkaOf(id)],
    });
    cleanup.push(() => cluster.close());
    const kafka = new Kafka({
      clientId: 'failover',
      brokers: [1, 2, 3].map(kafkaOf),
      logLevel: logLevel.NOTHING,
      retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 1000 },
      connectionTimeout: 1000,
      requestTimeout: 5000,
    });
    const admin = kafka.admin();
    await admin.connect();
    cleanup.push(() => admin.disconnect());
    await admin.createTopics({
      topics: [{ topic: 'kfail', numPartitions: 1, replicationFactor: 3 }],
      waitForLeaders: true,
    });
    const leader = await cluster.leaderOf('kfail', 0);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    cleanup.push(() => producer.disconnect());
    const acked: string[] = [];
    const total = 60;
    for (let i = 0; i < total; i++) {
      if (i === 20) await cluster.kill9(leader);
      const value = `rec-${i}`;
      const r = await producer.send({ topic: 'kfail', acks: -1, messages: [{ value }] });
      expect(r[0]!.errorCode).toBe(0);
      acked.push(value);
    }
    expect(acked).toHaveLength(total);
    const newLeader = await cluster.leaderOf('kfail', 0, { exclude: [leader] });
    expect(newLeader).not.toBe(leader);
    // Everything acknowledged is there, read through the native SDK from the survivors.
    const client = new StreamBusClient({ bootstrap: cluster.liveBootstrap().join(',') });
    cleanup.push(() => client.close());
    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'kfail', from: 'earliest' });
    const got: string[] = [];
    const deadline = Date.now() + 20_000;
    while (got.length < total && Date.now() < deadline) {
      for (const b of await consumer.poll()) for (const r of b.records) got.push(text(r.value));
    }
    await consumer.close();
    expect(got).toEqual(acked);
  }, 120_000);
});
