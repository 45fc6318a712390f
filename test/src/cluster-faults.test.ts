// Faults against a real 3-broker cluster (issue 9 multi-process tests), each on its own cluster
// from cluster-harness.ts, bounded in time and cleaned up even on failure:
//   - kill -9 of a partition's leader while an idempotent producer sends with acks=all: every
//     send resolves (the SDK continues on the new leader), nothing acknowledged is lost, nothing
//     is written twice, offsets follow send order;
//   - every broker killed and restarted: everything acknowledged is back;
//   - a rolling restart with SIGTERM under load (issue 12): no failed send, nothing lost or
//     duplicated, leaderships handed over and taken back;
//   - a partition isolating the leader (network namespaces as root, else a proxy per link): the
//     isolated leader acknowledges no acks=all produce, the majority elects a new leader and
//     serves, and after healing every replica holds the same batches.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { peekBatchSize } from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_CLI_BIN, clusterNetworkFor, TestCluster, waitUntil } from './cluster-harness.js';

/** GET /ready of a broker's HTTP port: status and JSON body. */
async function readyOf(
  port: number,
): Promise<{ status: number; body: Record<string, unknown> & { cluster?: unknown } }> {
  const res = await fetch(`http://127.0.0.1:${port}/ready`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Runs the CLI (`streambus ARGS`) as a process; bounded. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLUSTER_CLI_BIN, ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
});

async function cluster(options: Parameters<typeof TestCluster.start>[0] = {}) {
  const c = await TestCluster.start({ nodes: 3, ...options });
  cleanup.push(() => c.close());
  return c;
}

function client(bootstrap: string[]): StreamBusClient {
  const c = new StreamBusClient({
    bootstrap,
    retry: { retriesMax: 50, backoffInitialMs: 20, backoffMaxMs: 200, totalTimeoutMs: 20_000 },
  });
  cleanup.push(() => c.close());
  return c;
}

/**
 * Sends `count` values `<tag>-<i>` with at most `windowMax` outstanding; `during(acked)` runs
 * alongside (the fault). Returns acknowledged value -> partition/offset, and the failures.
 */
async function produceTracked(
  c: StreamBusClient,
  topic: string,
  tag: string,
  count: number,
  during: (acked: ReadonlyMap<string, unknown>) => Promise<void> = async () => {},
  /** Steady load: stop sending once this says so (paced at about one send per ms). */
  stopped: (() => boolean) | null = null,
) {
  const producer = c.producer({ acks: 'all', lingerMs: 1, deliveryTimeoutMs: 30_000 });
  const acked = new Map<string, { partition: number; offset: number }>();
  const failures: string[] = [];
  const fault = during(acked);
  const inflight = new Set<Promise<void>>();
  for (let i = 0; i < count && !(stopped?.() ?? false); i++) {
    if (stopped !== null) await new Promise((r) => setTimeout(r, 1));
    const value = `${tag}-${i}`;
    const p = producer.send({ topic, value }).then(
      (m) => void acked.set(value, { partition: m.partition, offset: m.offset }),
      (err: unknown) => void failures.push(`${value}: ${String(err)}`),
    );
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    if (inflight.size >= 100) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  await fault;
  await producer.close();
  return { acked, failures };
}

/** Every record value of `topic` from the earliest offset, with its partition and offset. */
async function readAll(c: StreamBusClient, topic: string, expected: number, timeoutMs = 20_000) {
  const consumer = c.consumer({ maxWaitMs: 100 });
  const out: Array<{ value: string; partition: number; offset: number }> = [];
  try {
    await consumer.assign({ topic, from: 'earliest' });
    const deadline = Date.now() + timeoutMs;
    while (out.length < expected && Date.now() < deadline) {
      for (const b of await consumer.poll()) {
        for (const r of b.records) {
          out.push({
            value: Buffer.from(r.value ?? []).toString(),
            partition: b.partition,
            offset: r.offset,
          });
        }
      }
    }
  } finally {
    await consumer.close();
  }
  return out;
}

/** Checks: each acknowledged value present once, at its acknowledged offset; no duplicate. */
function expectExactlyAcked(
  read: ReadonlyArray<{ value: string; partition: number; offset: number }>,
  acked: ReadonlyMap<string, { partition: number; offset: number }>,
): void {
  const seen = new Map<string, number>();
  for (const r of read) seen.set(r.value, (seen.get(r.value) ?? 0) + 1);
  const dup = [...seen].filter(([, n]) => n > 1).map(([v]) => v);
  expect(dup.slice(0, 5), 'records stored twice').toEqual([]);
  const at = new Map(read.map((r) => [r.value, { partition: r.partition, offset: r.offset }]));
  const lost = [...acked.keys()].filter((v) => !at.has(v));
  expect(lost.slice(0, 5), `${lost.length} acknowledged records lost`).toEqual([]);
  for (const [v, m] of acked) expect(at.get(v), v).toEqual(m);
}

/**
 * The batches a replica holds for its only topic's `partition`, read from its data dir (each
 * as a digest of its bytes, segment files in order). Followers keep the leader's bytes
 * unchanged, so converged replicas hold identical lists.
 */
function replicaBatches(dataDir: string, partition: number): string[] {
  const topics = join(dataDir, 'topics');
  if (!existsSync(topics)) return [];
  const ids = readdirSync(topics);
  if (ids.length !== 1) throw new Error(`expected one topic in ${topics}, found ${ids.join(',')}`);
  const dir = join(topics, ids[0]!, String(partition));
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.log'))
    .sort()) {
    const buf = readFileSync(join(dir, f));
    let pos = 0;
    // Zeros past the end, or a batch being written, end the walk: the rest is not a batch yet.
    for (let size = peekBatchSize(buf, pos); size > 0 && pos + size <= buf.length; ) {
      out.push(
        createHash('sha256')
          .update(buf.subarray(pos, pos + size))
          .digest('hex'),
      );
      pos += size;
      size = peekBatchSize(buf, pos);
    }
  }
  return out;
}

describe('a 3-broker cluster under faults', () => {
  it('a created (and a grown) topic has elected leaders when the call answers: describe needs no retry', async () => {
    const c = await cluster();
    const sdk = new StreamBusClient({
      bootstrap: c.bootstrap,
      retry: { retriesMax: 0, backoffInitialMs: 20, backoffMaxMs: 200, totalTimeoutMs: 20_000 },
    });
    cleanup.push(() => sdk.close());
    await sdk.admin().createTopic({ name: 'fresh', partitions: 3 });
    const d = await sdk.admin().describeTopic('fresh');
    expect(d.partitions.map((p) => p.replicas.length)).toEqual([3, 3, 3]);
    for (const p of d.partitions) {
      expect(p.leaderEpoch).toBeGreaterThanOrEqual(1);
      expect(p.replicas).toContain(p.leaderId);
    }
    // Partitions added (record add-partitions) are placed on all three brokers, opened by each,
    // and have elected leaders when the call answers: a produce to one needs no retry either.
    await sdk.admin().createPartitions({ topic: 'fresh', count: 5 });
    const grown = await sdk.admin().describeTopic('fresh');
    expect(grown.partitions.map((p) => p.replicas.length)).toEqual([3, 3, 3, 3, 3]);
    for (const p of grown.partitions.slice(3)) {
      expect(p.leaderEpoch).toBeGreaterThanOrEqual(1);
      expect(p.replicas).toContain(p.leaderId);
    }
    const sent = await sdk.producer().send({ topic: 'fresh', partition: 4, value: 'p4' });
    expect(sent.partition).toBe(4);
  }, 60_000);

  it('kill -9 of the leader during acks=all produce loses and duplicates nothing', async () => {
    // Through the per-link proxies (uncut), so the fallback partition path is known to carry
    // the brokers' traffic on every machine, also where the partition test below uses netns.
    const c = await cluster({ network: 'proxy' });
    for (const [a, b] of [
      [1, 2],
      [1, 3],
      [2, 3],
    ] as const) {
      const dialed = c.linkProxy(a, b).accepted + c.linkProxy(b, a).accepted;
      expect(dialed, `connections between ${a} and ${b} through the proxies`).toBeGreaterThan(0);
    }
    const sdk = client(c.bootstrap);
    const topic = 'kill-leader';
    await sdk
      .admin()
      .createTopic({ name: topic, partitions: 1, configs: { durability: 'always' } });
    // The leader, once settled: it acknowledges an acks=all produce sent to it alone.
    const leader = await c.leaderOf(topic, 0);
    expect(await c.produceTo(leader, topic, 0, 'probe', 5000)).toBe(0);
    let newLeader = 0;
    let ackedAtKill = 0;
    const total = 10_000;
    const { acked, failures } = await produceTracked(sdk, topic, 'r', total, async (acked) => {
      await waitUntil(
        '2,000 acknowledged before the kill',
        20_000,
        async () => (acked.size >= 2000 ? true : undefined),
        5,
      );
      await c.kill9(leader);
      ackedAtKill = acked.size;
      newLeader = await c.leaderOf(topic, 0, { exclude: [leader] });
    });
    expect(failures.slice(0, 5)).toEqual([]);
    expect(acked.size).toBe(total);
    expect(newLeader).not.toBe(leader);
    // The kill came in the middle of the load, not after it.
    expect(ackedAtKill).toBeLessThan(total);
    // In send order, the acknowledged offsets strictly increase (no repeat, no reordering).
    // Not dense: each leader's no-op entry is a control batch that takes an offset.
    const offsets = Array.from({ length: total }, (_, i) => acked.get(`r-${i}`)!.offset);
    const unordered = offsets.findIndex((o, i) => i > 0 && o <= offsets[i - 1]!);
    expect(unordered, `offset of r-${unordered} is not above the one before`).toBe(-1);
    const read = await readAll(sdk, topic, total + 1);
    expect(read.filter((r) => r.value === 'probe')).toHaveLength(1);
    expectExactlyAcked(
      read.filter((r) => r.value !== 'probe'),
      acked,
    );
  }, 60_000);

  it('every broker killed and restarted: all acknowledged records are back', async () => {
    const c = await cluster();
    const sdk = client(c.bootstrap);
    const topic = 'restart-all';
    await sdk
      .admin()
      .createTopic({ name: topic, partitions: 3, configs: { durability: 'always' } });
    const { acked, failures } = await produceTracked(sdk, topic, 'a', 2000);
    expect(failures.slice(0, 5)).toEqual([]);
    await Promise.all(c.running().map((id) => c.kill9(id)));
    expect(c.running()).toEqual([]);
    await Promise.all([1, 2, 3].map((id) => c.restart(id)));
    await c.waitReady();
    // Read each partition from the broker that serves it, found by asking every broker (not
    // from Metadata, which after a full restart can name a leader that is not: see below).
    // A leader elected after the restart serves up to the commit point it holds applied, which
    // can trail for a moment while it applies the log again: a consumer keeps polling, so this
    // reads until every acknowledged record of the partition is served (bounded), then checks.
    const read: Array<{ value: string; partition: number; offset: number }> = [];
    for (const p of [0, 1, 2]) {
      const want = [...acked.values()].filter((m) => m.partition === p).length;
      let got: Array<{ offset: number; value: string }> = [];
      await waitUntil(`every acknowledged record of ${topic}/${p} served`, 20_000, async () => {
        got = await c.readFrom(await c.servingReplica(topic, p), topic, p);
        return got.length >= want ? true : undefined;
      }).catch(() => undefined);
      for (const r of got) read.push({ ...r, partition: p });
    }
    expectExactlyAcked(read, acked);
  }, 90_000);

  // After a full restart every broker re-registers (a new incarnation), which leaves the
  // partitions it led leaderless at the same epoch; each partition's Raft leader reports at once
  // (on election, and again as soon as the state or its own liveness changes), and the
  // controller records it (no invented epochs to overtake), so Metadata names the leaders that
  // serve within about a second of the cluster answering again (0.9-1.1 s measured on a loaded
  // shared machine, the 500 ms stability window included; it took up to 20-40 s before).
  it('after every broker restarts, Metadata names the leaders that serve', async () => {
    const c = await cluster();
    const sdk = client(c.bootstrap);
    const topic = 'restart-metadata';
    await sdk
      .admin()
      .createTopic({ name: topic, partitions: 3, configs: { durability: 'always' } });
    expect((await produceTracked(sdk, topic, 'a', 300)).failures).toEqual([]);
    await Promise.all(c.running().map((id) => c.kill9(id)));
    await Promise.all([1, 2, 3].map((id) => c.restart(id)));
    await c.waitReady();
    await Promise.all([0, 1, 2].map((p) => c.leaderOf(topic, p, { timeoutMs: 10_000 })));
    const more = await produceTracked(client(c.bootstrap), topic, 'b', 100);
    expect(more.failures).toEqual([]);
  }, 90_000);

  // Issue 12: a rolling restart under steady acks=all load from an idempotent producer, each
  // broker stopped with SIGTERM (a controlled shutdown: /ready false, its leaderships and the
  // controller role handed to in-sync replicas, the controller told) and started again. The
  // application sees no failed send, nothing is lost or written twice, and each restarted
  // broker, once caught up, takes its preferred leaderships back (balancing every second here).
  // A group consumer reads the topic throughout: it consumes every record, and once it closes
  // its committed offsets are the log ends (it commits past control batches since 4a625bd).
  it('rolling restart with SIGTERM under acks=all load: no failed send, nothing lost or duplicated; a group consumer reads every record', async () => {
    const c = await cluster({
      env: {
        STREAMBUS_LEADER_BALANCE_INTERVAL_MS: '1000',
        STREAMBUS_GROUPS_OFFSETS_TOPIC_PARTITIONS: '3',
        STREAMBUS_GROUPS_INITIAL_REBALANCE_DELAY_MS: '0',
      },
    });
    const sdk = client(c.bootstrap);
    const topic = 'rolling';
    await sdk
      .admin()
      .createTopic({ name: topic, partitions: 3, configs: { durability: 'always' } });
    const group = 'rolling-group';
    const consumer = client(c.bootstrap).consumer({
      groupId: group,
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 300,
      autoCommitIntervalMs: 300,
      maxWaitMs: 100,
      autoOffsetReset: 'earliest',
    });
    cleanup.push(() => consumer.close());
    await consumer.subscribe({ topics: [topic] });
    const consumed = new Set<string>();
    const reading = (async () => {
      for await (const r of consumer) consumed.add(Buffer.from(r.value ?? []).toString());
    })();
    const preferred = async () => {
      const d = await sdk.admin().describeTopic(topic);
      return d.partitions.every((p) => p.leaderId === p.replicas[0] && p.isr.length === 3);
    };
    await waitUntil('preferred leaders, full ISRs', 15_000, async () =>
      (await preferred()) ? true : undefined,
    );
    let stop = false;
    const steps: string[] = [];
    const load = produceTracked(
      sdk,
      topic,
      'r',
      1_000_000,
      async () => {
        try {
          await restartEach();
        } finally {
          stop = true;
        }
      },
      () => stop,
    );
    async function restartEach() {
      for (const id of [1, 2, 3]) {
        const t0 = Date.now();
        const code = await c.stop(id, 20_000);
        steps.push(`broker ${id} exited ${code} after ${Date.now() - t0} ms`);
        expect(code, `broker ${id} exit code`).toBe(0);
        // Deregistered: the others see it fenced at once, not after its 9 s session.
        const other = id === 1 ? 2 : 1;
        const fenced = (await c.metadata(other, [])).brokers.every((b) => b.nodeId !== id);
        steps.push(`broker ${id} absent from Metadata right after exit: ${fenced}`);
        expect(fenced, `broker ${id} still routable after its controlled shutdown`).toBe(true);
        await c.restart(id);
        await c.waitReady();
        // Caught up and balanced back before the next broker goes.
        await waitUntil(`broker ${id} back as preferred leader`, 20_000, async () =>
          (await preferred()) ? true : undefined,
        );
        steps.push(`broker ${id} leads its preferred partitions again after ${Date.now() - t0} ms`);
      }
    }
    const { acked, failures } = await load;
    expect(failures.slice(0, 5), steps.join('; ')).toEqual([]);
    expect(acked.size).toBeGreaterThan(100);
    const read = await readAll(sdk, topic, acked.size);
    expectExactlyAcked(read, acked);
    // The group consumer got every record; closed, it committed up to every log end.
    await waitUntil('the group consumer read every record', 30_000, async () =>
      [...acked.keys()].every((v) => consumed.has(v)) ? true : undefined,
    );
    // A leadership move after the last record (balancing back the last restarted broker) ends
    // the log with a new term's no-op, a control batch the consumer passes on its next fetch:
    // its commits cover every log end within a few auto-commit intervals, not at once (CI saw
    // 2 against a log end of 3 on a partition that got no record after the move).
    await waitUntil('the group committed every log end', 15_000, async () => {
      const g = await sdk.admin().describeGroup(group);
      return g.offsets.length === 3 && g.offsets.every((o) => o.committedOffset === o.logEnd)
        ? true
        : undefined;
    });
    await consumer.close();
    await reading;
    const d = await sdk.admin().describeGroup(group);
    expect(d.offsets).toHaveLength(3);
    for (const o of d.offsets)
      expect(o.committedOffset, `${o.topic}/${o.partition}`).toBe(o.logEnd);
  }, 120_000);

  // Issue 12: with automatic balancing off, a broker restarted after kill -9 catches up but
  // leads nothing; `streambus cluster rebalance-leaders` (RebalanceLeaders, to any broker) hands
  // its preferred partitions back. /ready says which condition it waits for and is true after.
  it('cluster rebalance-leaders hands restarted brokers their preferred leaderships back', async () => {
    const c = await cluster({ env: { STREAMBUS_LEADER_BALANCE_INTERVAL_MS: '0' } });
    const sdk = client(c.bootstrap);
    const topic = 'rebalance';
    await sdk.admin().createTopic({ name: topic, partitions: 3 });
    const leaders = async () => {
      const d = await sdk.admin().describeTopic(topic);
      return d.partitions.map((p) => ({
        leader: p.leaderId,
        preferred: p.replicas[0],
        isr: p.isr,
      }));
    };
    const rebalance = async () => {
      const bootstrap = c.bootstrap.join(',');
      const out = await cli([
        'cluster',
        'rebalance-leaders',
        '--output',
        'json',
        '--bootstrap',
        bootstrap,
      ]);
      expect(out.code, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as { transfersStarted: number; remainingCount: number };
    };
    // Right after creation each group elected whoever timed out first; with balancing off
    // they stay so until asked.
    await waitUntil('every partition led, full ISRs', 15_000, async () =>
      (await leaders()).every((p) => p.leader > 0 && p.isr.length === 3) ? true : undefined,
    );
    expect((await rebalance()).remainingCount).toBe(0);
    expect((await leaders()).every((p) => p.leader === p.preferred)).toBe(true);
    await c.kill9(1);
    await c.restart(1);
    await c.waitReady();
    await waitUntil('broker 1 back in every ISR, leading nothing', 20_000, async () => {
      const l = await leaders();
      return l.every((p) => p.isr.length === 3 && p.leader > 0 && p.leader !== 1)
        ? true
        : undefined;
    });
    let ready = await readyOf(c.broker(1).httpPort);
    await waitUntil(
      `/ready of broker 1 (last: ${JSON.stringify(ready.body)})`,
      10_000,
      async () => {
        ready = await readyOf(c.broker(1).httpPort);
        return ready.status === 200 ? true : undefined;
      },
    );
    expect(ready.body.cluster).toMatchObject({ ready: true, missing: [], registered: true });
    // On a loaded machine broker 1 can win an election of its own while /ready is awaited (its
    // partitions' leader missed heartbeats), or the controller may not count it caught up yet
    // for a moment: what is owed is counted just before, and the command is repeated (as an
    // operator would) until nothing remains.
    const owed = (await leaders()).filter((p) => p.preferred === 1 && p.leader !== 1).length;
    let transfers = 0;
    await waitUntil('rebalance-leaders leaves nothing to move', 15_000, async () => {
      const answer = await rebalance();
      transfers += answer.transfersStarted;
      if (answer.remainingCount !== 0) return undefined;
      const l = await leaders();
      return l.filter((p) => p.preferred === 1).every((p) => p.leader === 1) ? true : undefined;
    });
    if (owed > 0) expect(transfers).toBeGreaterThanOrEqual(1);
    const after = await leaders();
    expect(after.filter((p) => p.preferred === 1).every((p) => p.leader === 1)).toBe(true);
    // Nothing left to move: a second call starts no transfer.
    expect(await rebalance()).toEqual({ transfersStarted: 0, remainingCount: 0, remaining: [] });
  }, 60_000);

  const { network, why } = clusterNetworkFor();
  it(`a partition isolating the leader: it acknowledges nothing, the majority serves, replicas converge (${why})`, async () => {
    const c = await cluster({ network });
    const sdk = client(c.bootstrap);
    const topic = 'isolate-leader';
    await sdk
      .admin()
      .createTopic({ name: topic, partitions: 1, configs: { durability: 'always' } });
    const first = await produceTracked(sdk, topic, 'x', 300);
    expect(first.failures).toEqual([]);
    const old = await c.leaderOf(topic, 0);
    const majority = c.running().filter((id) => id !== old);
    // The raw produce used below is acknowledged by the leader while it is connected.
    expect(await c.produceTo(old, topic, 0, 'connected', 5000)).toBe(0);

    c.isolate(old);
    // The isolated leader answers no acks=all produce with success, before or after it notices.
    for (let i = 0; i < 3; i++) {
      const r = await c.produceTo(old, topic, 0, `isolated-${i}`, 3000);
      expect(r, `isolated leader answered produce ${i}`).not.toBe(0);
    }
    const next = await c.leaderOf(topic, 0, {
      askIds: majority,
      exclude: [old],
      timeoutMs: 20_000,
    });
    expect(majority).toContain(next);
    const viaMajority = client(majority.map((id) => `${c.broker(id).host}:${c.broker(id).port}`));
    const second = await produceTracked(viaMajority, topic, 'y', 300);
    expect(second.failures).toEqual([]);

    c.heal();
    const acked = new Map([...first.acked, ...second.acked]);
    // After healing every replica holds the same batches (the old leader dropped its
    // unacknowledged tail), and the log has exactly what was acknowledged.
    await waitUntil('replicas converge after healing', 30_000, async () => {
      const logs = [1, 2, 3].map((id) => replicaBatches(c.broker(id).dataDir, 0));
      return logs.every((l) => l.length > 0 && l.join() === logs[0]!.join()) ? true : undefined;
    });
    const read = await readAll(sdk, topic, acked.size + 1);
    expect(read.filter((r) => r.value.startsWith('isolated-'))).toEqual([]);
    expect(read.filter((r) => r.value === 'connected')).toHaveLength(1);
    expectExactlyAcked(
      read.filter((r) => r.value !== 'connected'),
      acked,
    );
  }, 60_000);
});

// Issue 12: partition reassignment. Four brokers; every partition of a topic is first moved onto
// {1,2,3}, then, under acks=all produce load, onto {2,3,4} (one partition through the CLI, the
// other through the admin API): each new replica joins its Raft group as a learner, catches up,
// is promoted, and the replicas leaving are removed. The application sees no failed send,
// nothing is lost or written twice, and broker 4 holds exactly the leader's batches. Then
// `cluster decommission 2` moves broker 2's replicas off and takes it out of the registry.
describe('partition reassignment on a 4-broker cluster', () => {
  it('reassign {1,2,3} -> {2,3,4} under acks=all load: no failed send, nothing lost, broker 4 byte-identical; then decommission broker 2; dynamic broker settings by config set and SIGHUP', async () => {
    // Broker 3 reads a configuration file: SIGHUP re-reads it (dynamic settings, below).
    const confDir = mkdtempSync(join(tmpdir(), 'streambus-ops-conf-'));
    cleanup.push(async () => rmSync(confDir, { recursive: true, force: true }));
    const confFile = join(confDir, 'broker3.yaml');
    writeFileSync(confFile, 'leaderBalance:\n  intervalMs: 30000\n');
    const c = await cluster({
      nodes: 4,
      nodeArgs: (id) => (id === 3 ? ['--config', confFile] : []),
    });
    const sdk = client(c.bootstrap);
    const admin = sdk.admin();
    const topic = 'moving';
    const jsonCli = (args: string[]) =>
      cli([...args, '--output', 'json', '--bootstrap', c.bootstrap.join(',')]);
    await admin.createTopic({ name: topic, partitions: 2, replicationFactor: 3 });
    const moved = async (p: number, target: number[]) => {
      const d = await admin.describePartition(topic, p);
      const ids = d.replicas.map((r) => r.nodeId);
      return d.reassignmentTarget === null &&
        ids.length === target.length &&
        ids.every((id, i) => id === target[i])
        ? d
        : undefined;
    };
    for (const p of [0, 1]) await admin.reassignPartition(topic, p, [1, 2, 3]);
    for (const p of [0, 1])
      await waitUntil(`${topic}/${p} on 1,2,3`, 20_000, () => moved(p, [1, 2, 3]));
    let stop = false;
    const load = produceTracked(
      sdk,
      topic,
      'm',
      1_000_000,
      async () => {
        try {
          await new Promise((r) => setTimeout(r, 500));
          const out = await jsonCli(['partition', 'reassign', topic, '0', '--replicas', '2,3,4']);
          expect(out.code, out.stderr).toBe(0);
          await admin.reassignPartition(topic, 1, [2, 3, 4]);
          for (const p of [0, 1]) {
            await waitUntil(`${topic}/${p} on 2,3,4`, 30_000, () => moved(p, [2, 3, 4]));
          }
          await new Promise((r) => setTimeout(r, 300));
        } finally {
          stop = true;
        }
      },
      () => stop,
    );
    const { acked, failures } = await load;
    expect(failures.slice(0, 5)).toEqual([]);
    expect(acked.size).toBeGreaterThan(100);
    expectExactlyAcked(await readAll(sdk, topic, acked.size), acked);
    // `partition describe --output json`: the roles after the move.
    const out = await jsonCli(['partition', 'describe', topic, '0']);
    expect(out.code, out.stderr).toBe(0);
    const d = JSON.parse(out.stdout) as {
      replicas: Array<{ nodeId: number; role: string; commitLag: number }>;
      reassignmentTarget: number[] | null;
    };
    expect(d.reassignmentTarget).toBeNull();
    expect(d.replicas.map((r) => r.nodeId)).toEqual([2, 3, 4]);
    expect(d.replicas.filter((r) => r.role === 'leader')).toHaveLength(1);
    expect(d.replicas.every((r) => r.role === 'leader' || r.role === 'voter')).toBe(true);
    // Broker 4's log holds the leader's batches byte for byte (once it caught up).
    for (const p of [0, 1]) {
      const leader = (await admin.describePartition(topic, p)).leaderId;
      await waitUntil(
        `broker 4 identical to leader ${leader} on ${topic}/${p}`,
        15_000,
        async () => {
          const mine = replicaBatches(c.broker(4).dataDir, p);
          const theirs = replicaBatches(c.broker(leader).dataDir, p);
          return mine.length > 0 && mine.join() === theirs.join() ? true : undefined;
        },
      );
    }
    // Broker 1 left both groups: its replicas are closed and their data deleted.
    await waitUntil('broker 1 holds no replica', 10_000, async () =>
      [0, 1].every((p) => replicaBatches(c.broker(1).dataDir, p).length === 0) ? true : undefined,
    );
    // `cluster decommission 2`: its replicas (of both topics) move to the others, then it
    // leaves the registry.
    await admin.createTopic({ name: 'leaving', partitions: 4, replicationFactor: 3 });
    const dec = await jsonCli(['cluster', 'decommission', '2']);
    expect(dec.code, dec.stderr).toBe(0);
    expect((JSON.parse(dec.stdout) as { partitionsMoved: number }).partitionsMoved).toBeGreaterThan(
      2,
    );
    const brokers = (await admin.describeCluster()).brokers.map((b) => b.nodeId);
    expect(brokers).toEqual([1, 3, 4]);
    for (const name of [topic, 'leaving']) {
      for (const p of (await admin.describeTopic(name)).partitions) {
        expect(p.replicas, `${name}/${p.partition}`).not.toContain(2);
        expect(p.replicas).toHaveLength(3);
      }
    }
    // Dynamic broker settings: `config set` for every broker and for one, recorded by the
    // controller and in force without a restart; bad changes refused naming the key.
    const bootstrap = c.bootstrap.filter((_, i) => i !== 1).join(',');
    const config = (args: string[]) => cli(['config', ...args, '--bootstrap', bootstrap]);
    const describe3 = async () => {
      const out = await config(['describe', '--broker', '3', '--output', 'json']);
      expect(out.code, out.stderr).toBe(0);
      const entries = (
        JSON.parse(out.stdout) as { entries: Array<{ key: string; value: string; source: string }> }
      ).entries;
      return new Map(entries.map((e) => [e.key, e]));
    };
    expect((await config(['set', 'reassignmentBytesPerSecond', '1048576'])).code).toBe(0);
    // The harness runs brokers at warn: broker 3 logs its info line only at the new level.
    expect((await config(['set', 'logLevel', 'info', '--broker', '3'])).code).toBe(0);
    let d3 = await describe3();
    expect(d3.get('reassignmentBytesPerSecond')).toMatchObject({
      value: '1048576',
      source: 'dynamic-cluster',
    });
    expect(d3.get('logLevel')).toMatchObject({ value: 'info', source: 'dynamic-broker' });
    await waitUntil('broker 3 logging at info', 5000, async () =>
      c.broker(3).output().includes('dynamic broker settings applied') ? true : undefined,
    );
    expect(c.broker(4).output()).not.toContain('dynamic broker settings applied');
    const bad = await config(['set', 'limits.frameBytesMax', '1024']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/limits\.frameBytesMax: not a dynamic setting/);
    const badValue = await config(['set', 'leaderBalance.intervalMs', 'soon', '--broker', '4']);
    expect(badValue.code).not.toBe(0);
    expect(badValue.stderr).toMatch(/leaderBalance\.intervalMs: expected an integer/);
    // SIGHUP: broker 3 re-reads its file; the changed dynamic setting is recorded for it.
    writeFileSync(confFile, 'leaderBalance:\n  intervalMs: 5000\n');
    c.broker(3).process?.kill('SIGHUP');
    await waitUntil('SIGHUP applied on broker 3', 10_000, async () => {
      d3 = await describe3();
      return d3.get('leaderBalance.intervalMs')?.value === '5000' ? true : undefined;
    });
    expect(d3.get('leaderBalance.intervalMs')?.source).toBe('dynamic-broker');
    // `partition reassign --cancel`: a target replica that cannot catch up (a 1 byte/s throttle,
    // 2.5 MB to copy: one 1 MiB append passes on credit, then nothing) would wait forever; the cancel takes it out and restores the replicas before the move.
    const live = client(bootstrap.split(','));
    await live.admin().createTopic({ name: 'stuck', partitions: 1, replicationFactor: 2 });
    const before = (await live.admin().describeTopic('stuck')).partitions[0]!.replicas;
    const third = [1, 3, 4].find((id) => !before.includes(id))!;
    const filler = live.producer({ acks: 'all', deliveryTimeoutMs: 20_000 });
    await Promise.all(
      Array.from({ length: 2500 }, (_, i) =>
        filler.send({ topic: 'stuck', value: `${i}`.padEnd(1024, '.') }),
      ),
    );
    expect((await config(['set', 'reassignmentBytesPerSecond', '1'])).code).toBe(0);
    const start = await cli([
      'partition',
      'reassign',
      'stuck',
      '0',
      '--replicas',
      [...before, third].join(','),
      '--bootstrap',
      bootstrap,
    ]);
    expect(start.code, start.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    const moving = await live.admin().describePartition('stuck', 0);
    expect(moving.reassignmentTarget).not.toBeNull();
    expect(moving.replicas.find((r) => r.nodeId === third)?.role).toBe('learner');
    const cancel = await cli([
      'partition',
      'reassign',
      'stuck',
      '0',
      '--cancel',
      '--wait',
      '--output',
      'json',
      '--bootstrap',
      bootstrap,
    ]);
    expect(cancel.code, cancel.stderr).toBe(0);
    const cancelled = JSON.parse(cancel.stdout) as {
      replicas: number[];
      cancelled: boolean;
      done: boolean;
    };
    expect(cancelled).toMatchObject({ cancelled: true, done: true });
    expect([...cancelled.replicas].sort()).toEqual([...before].sort());
    const back = await live.admin().describePartition('stuck', 0);
    expect(back.replicas.map((r) => r.nodeId).sort()).toEqual([...before].sort());
    expect((await config(['unset', 'reassignmentBytesPerSecond'])).code).toBe(0);
    // Controller voters: the decommission took 2 out, leaving [1,3,4]. Remove 4 and add it back
    // (it becomes a voter again once caught up), then remove the controller itself and kill it:
    // the other two elect a controller that serves.
    const voters = async (args: string[]) => {
      const out = await cli([
        'cluster',
        'voters',
        ...args,
        '--output',
        'json',
        '--bootstrap',
        bootstrap,
      ]);
      expect(out.code, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as { voters: number[]; learners: number[] };
    };
    await waitUntil('voters [1,3,4]', 10_000, async () =>
      (await voters(['list'])).voters.join() === '1,3,4' ? true : undefined,
    );
    // Adding a voter again changes nothing and answers at once.
    expect((await voters(['add', '3'])).voters).toEqual([1, 3, 4]);
    expect((await voters(['remove', '4'])).voters).toEqual([1, 3]);
    const added = await voters(['add', '4']);
    expect(added.voters).toEqual([1, 3, 4]);
    const refused = await cli(['cluster', 'voters', 'add', '9', '--bootstrap', bootstrap]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/broker 9 is not a registered broker/);
    const old = (await admin.describeCluster()).controllerId;
    expect([1, 3, 4]).toContain(old);
    const rest = [1, 3, 4].filter((id) => id !== old);
    expect((await voters(['remove', String(old)])).voters).toEqual(rest);
    await c.kill9(old);
    const after = client(rest.map((id) => c.bootstrap[id - 1]!));
    // A controller among the voters left, which fences the killed broker once its session ends
    // (so the new topic's replicas are on the live two).
    await waitUntil('a controller among the voters left, the old one fenced', 30_000, async () => {
      const d = await after.admin().describeCluster();
      const gone = d.brokers.find((b) => b.nodeId === old);
      return rest.includes(d.controllerId) && gone?.fenced === true ? true : undefined;
    });
    await after.admin().createTopic({ name: 'after-voters', partitions: 1, replicationFactor: 2 });
    const sent = await after
      .producer({ acks: 'all', deliveryTimeoutMs: 20_000 })
      .send({ topic: 'after-voters', value: 'served' });
    expect(sent.offset).toBeGreaterThan(0);
  }, 150_000);
});
