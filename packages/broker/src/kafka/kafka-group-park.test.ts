// Kafka JoinGroup and SyncGroup parked by a rebalance longer than requestTimeoutMs: like the
// native handlers, the Kafka ones extend the request's bound (ctx.parkFor), so the rebalance
// answers them, not the request timeout (which on the Kafka wire closes the connection). And, on
// the same broker's small limits: idle reaping of a Kafka connection (limits.idleTimeoutMs), and
// CreatePartitions within limits.partitionsPerTopicMax and limits.partitionsMax.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@streambus/protocol';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from '../broker.js';
import { defaultConfig } from '../config.js';
import { KafkaRawClient } from './kafka-raw-client.js';

const RETRIABLE: readonly number[] = [
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.NOT_COORDINATOR,
  ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Kafka group requests parked by a rebalance', () => {
  // Long enough for start-up and the setup requests on a loaded machine.
  const requestTimeoutMs = 2500;
  // Above the longest idle gap of the park test's connections (requestTimeoutMs + 700).
  const idleTimeoutMs = 5000;
  let broker: Broker;
  let dir: string;
  const open: KafkaRawClient[] = [];
  const client = async (id: string) => {
    const c = await KafkaRawClient.connect(broker.kafkaAddress!.port, id);
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-kafka-park-'));
    const base = defaultConfig();
    broker = await Broker.start(
      {
        ...base,
        dataDir: dir,
        listen: { host: '127.0.0.1', port: 0 },
        http: null,
        logLevel: 'silent',
        limits: {
          ...base.limits,
          requestTimeoutMs,
          idleTimeoutMs,
          partitionsPerTopicMax: 8,
          partitionsMax: 8,
        },
        kafka: { ...base.kafka, listen: { host: '127.0.0.1', port: 0 } },
        groups: {
          ...base.groups,
          offsetsTopicPartitions: 1,
          offsetsTopicReplicationFactor: 1,
          initialRebalanceDelayMs: 0,
        },
      },
      { logger: pino({ level: 'silent' }) },
    );
  });
  afterAll(async () => {
    for (const c of open) await c.close().catch(() => {});
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a JoinGroup and a SyncGroup held longer than requestTimeoutMs are answered by the rebalance', async () => {
    const a = await client('parker-a');
    const b = await client('parker-b');
    // v3: the broker completes the MEMBER_ID_REQUIRED round trip itself (group-handlers.ts).
    const join = (c: KafkaRawClient, memberId: string) =>
      c.request('JoinGroup', 3, {
        groupId: 'park',
        sessionTimeoutMs: 15_000,
        rebalanceTimeoutMs: 15_000,
        memberId,
        groupInstanceId: null,
        protocolType: 'consumer',
        protocols: [{ name: 'range', metadata: Buffer.from([0, 1]) }],
      });
    const sync = (
      c: KafkaRawClient,
      generationId: number,
      memberId: string,
      assignments: { memberId: string; assignment: Buffer }[] = [],
    ) =>
      c.request('SyncGroup', 2, {
        groupId: 'park',
        generationId,
        memberId,
        groupInstanceId: null,
        assignments,
      });
    // As clients do: FindCoordinator first (it creates __consumer_offsets on first use).
    const deadline = Date.now() + 20_000;
    while ((await a.request('FindCoordinator', 2, { key: 'park', keyType: 0 })).errorCode !== 0) {
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(50);
    }
    let first = await join(a, '');
    while (RETRIABLE.includes(first.errorCode) && Date.now() < deadline) {
      await sleep(50);
      first = await join(a, '');
    }
    expect(first.errorCode).toBe(0);
    const stable = await sync(a, first.generationId, first.memberId, [
      { memberId: first.memberId, assignment: Buffer.from('a-0') },
    ]);
    expect(stable.errorCode).toBe(0);

    // b's join waits for a to rejoin: longer than a request timeout.
    const started = Date.now();
    const bJoin = join(b, '');
    await sleep(requestTimeoutMs + 700);
    const [aJoined, bJoined] = await Promise.all([join(a, first.memberId), bJoin]);
    expect(Date.now() - started).toBeGreaterThan(requestTimeoutMs + 700);
    expect([aJoined.errorCode, bJoined.errorCode]).toEqual([0, 0]);
    expect(bJoined.generationId).toBe(first.generationId + 1);
    expect(aJoined.leader).toBe(first.memberId);

    // b's sync waits for the leader's assignments, as long again.
    const bSync = sync(b, bJoined.generationId, bJoined.memberId);
    await sleep(requestTimeoutMs + 700);
    const aSync = await sync(a, aJoined.generationId, aJoined.memberId, [
      { memberId: aJoined.memberId, assignment: Buffer.from('a-0') },
      { memberId: bJoined.memberId, assignment: Buffer.from('b-1') },
    ]);
    expect(aSync.errorCode).toBe(0);
    const synced = await bSync;
    expect(synced.errorCode).toBe(0);
    expect(Buffer.from(synced.assignment).toString()).toBe('b-1');
  }, 40_000);

  it('an idle Kafka connection is closed after limits.idleTimeoutMs; a used one is not', async () => {
    const idle = await client('idle');
    const busy = await client('busy');
    const started = Date.now();
    let idleClosedAt = 0;
    void idle.closed.then(() => {
      idleClosedAt = Date.now();
    });
    // The busy one asks something every second; the idle one says nothing.
    while (idleClosedAt === 0 && Date.now() - started < idleTimeoutMs + 4000) {
      const r = await busy.request('ApiVersions', 3, {
        clientSoftwareName: 'test',
        clientSoftwareVersion: '1',
      });
      expect(r.errorCode).toBe(0);
      await sleep(1000);
    }
    expect(idleClosedAt - started).toBeGreaterThanOrEqual(idleTimeoutMs);
    expect(busy.socket.destroyed).toBe(false);
  }, 20_000);

  it('CreatePartitions respects limits.partitionsPerTopicMax and limits.partitionsMax', async () => {
    const c = await client('limits');
    // __consumer_offsets (1 partition) exists from the first test; 'lim' adds 2: 3 on the broker.
    const created = await c.request('CreateTopics', 3, {
      topics: [
        { name: 'lim', numPartitions: 2, replicationFactor: -1, assignments: [], configs: [] },
      ],
      timeoutMs: 5000,
      validateOnly: false,
    });
    expect(created.topics[0]!.errorCode).toBe(0);
    const grow = async (count: number) =>
      (
        await c.request('CreatePartitions', 1, {
          topics: [{ name: 'lim', count, assignments: null }],
          timeoutMs: 5000,
          validateOnly: false,
        })
      ).results[0]!;
    const perTopic = await grow(9);
    expect(perTopic.errorCode).toBe(ErrorCode.INVALID_PARTITIONS);
    expect(perTopic.errorMessage).toMatch(/limits\.partitionsPerTopicMax \(8\)/);
    const onBroker = await grow(8);
    expect(onBroker.errorCode).toBe(ErrorCode.POLICY_VIOLATION);
    expect(onBroker.errorMessage).toMatch(/limits\.partitionsMax \(8; 3 exist\)/);
    expect((await grow(7)).errorCode).toBe(0);
  });
});
