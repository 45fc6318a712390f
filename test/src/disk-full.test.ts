// Append faults against real broker processes (issue 8): a broker whose data directory is a small
// tmpfs that the test fills up, and a broker whose topic config changes (reopening the log) while
// the SDK's default idempotent producer writes. The broker must stay up, answer a full disk with a
// retriable KAFKA_STORAGE_ERROR saying so (produce and topic creation), resume by itself once space
// is freed, and lose nothing it acknowledged. Needs root to mount the tmpfs (skipped, with the
// reason, when mounting is not permitted).
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, StreamBusClient, StreamBusError } from '@streambus/client';
import { afterAll, describe, expect, it } from 'vitest';
import { type BrokerProcess, removeDir, startBroker, tempDir } from './harness.js';

const TMPFS_BYTES = 8 * 1024 * 1024;
const VALUE_BYTES = 16 * 1024;

/** Mounts a tmpfs of `bytes`; null (with the reason) when this machine does not allow it. */
function mountTmpfs(bytes: number): { dir: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sb-diskfull-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], {
      stdio: 'pipe',
    });
    return { dir };
  } catch (err) {
    rmdirSync(dir);
    return { skip: `cannot mount a tmpfs (needs root and mount permission): ${String(err)}` };
  }
}

const mounted = mountTmpfs(TMPFS_BYTES);
if ('skip' in mounted) console.warn(`disk-full test skipped: ${mounted.skip}`);
const brokers: BrokerProcess[] = [];
const clients: StreamBusClient[] = [];

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  for (const b of brokers) if (b.child.exitCode === null) await b.kill9();
  if ('dir' in mounted) {
    try {
      execFileSync('umount', ['-l', mounted.dir], { stdio: 'pipe' });
    } finally {
      rmdirSync(mounted.dir);
    }
  }
});

/** Writes a file until the file system has no byte left; returns its path. */
function fillDisk(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    let chunk = 1024 * 1024;
    const buf = Buffer.alloc(chunk, 7);
    while (chunk >= 1) {
      try {
        writeSync(fd, buf, 0, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        chunk = Math.floor(chunk / 4);
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

function httpPort(b: BrokerProcess): number {
  for (const line of b.output().split('\n')) {
    if (line.includes('"broker started"'))
      return (JSON.parse(line) as { httpPort: number }).httpPort;
  }
  throw new Error('no started line');
}

async function metric(b: BrokerProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort(b)}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

async function consumeValues(client: StreamBusClient, topic: string, count: number) {
  const consumer = client.consumer({ maxWaitMs: 100 });
  await consumer.assign({ topic, from: 'earliest' });
  const out: string[] = [];
  const deadline = Date.now() + 15_000;
  while (out.length < count && Date.now() < deadline) {
    for (const b of await consumer.poll()) {
      for (const r of b.records) out.push(Buffer.from(r.value!).toString().slice(0, 40));
    }
  }
  await consumer.close();
  return out;
}

const value = (tag: string): string => tag.padEnd(VALUE_BYTES, '.');

describe('append faults, real broker processes', () => {
  it.skipIf('skip' in mounted)(
    'full disk: retriable storage errors, the broker stays up, resumes when space is freed, loses nothing acknowledged',
    async () => {
      const dataDir = (mounted as { dir: string }).dir;
      const broker = await startBroker(dataDir);
      brokers.push(broker);
      // A client that gives up fast (to see the error) and one that keeps retrying.
      const quick = new StreamBusClient({
        bootstrap: broker.bootstrap,
        retry: { retriesMax: 2, backoffInitialMs: 20, backoffMaxMs: 50, totalTimeoutMs: 500 },
      });
      const patient = new StreamBusClient({
        bootstrap: broker.bootstrap,
        retry: {
          retriesMax: 1000,
          backoffInitialMs: 20,
          backoffMaxMs: 100,
          totalTimeoutMs: 30_000,
        },
      });
      clients.push(quick, patient);
      await quick.admin().createTopic({ name: 'full', partitions: 1 });
      const acked: string[] = [];
      const before = patient.producer({ lingerMs: 0 });
      for (let i = 0; i < 20; i++) {
        await before.send({ topic: 'full', value: value(`before-${i}`) });
        acked.push(`before-${i}`);
      }

      const filler = fillDisk(dataDir);
      // Produce on a full disk: a retriable storage error saying so; the broker stays up.
      // Produce retries run until the delivery timeout; the broker's answer is its cause.
      const refused = quick.producer({ lingerMs: 0, deliveryTimeoutMs: 500 });
      const timedOut = await refused
        .send({ topic: 'full', value: value('refused') })
        .catch((e) => e);
      expect(timedOut).toMatchObject({ code: ErrorCode.REQUEST_TIMED_OUT });
      const err = (timedOut as Error).cause;
      expect(err).toBeInstanceOf(StreamBusError);
      expect(err).toMatchObject({ code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: true });
      expect((err as Error).message).toMatch(/disk full \(ENOSPC\)/);
      await refused.close().catch(() => undefined);
      // Creating a topic on the full disk: either a typed error naming the full disk (never -1;
      // the metadata log that failed its write reopens by itself once space is freed: below),
      // or, when the metadata record still fits in the log file's last block (a commit writes
      // no hard-state file any more), a topic that exists.
      const created = await quick
        .admin()
        .createTopic({ name: 'later', partitions: 1 })
        .catch((e) => e);
      if (created instanceof Error) {
        expect(created).toBeInstanceOf(StreamBusError);
        expect([ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.CONTROLLER_OFFLINE]).toContain(
          (created as StreamBusError).code,
        );
        expect(created.message).toMatch(/ENOSPC/);
      } else {
        expect(await quick.admin().listTopics()).toContain('later');
      }
      expect(broker.child.exitCode).toBeNull();
      // The full partition, and the new one when its create went through (its replica could
      // not open on the full disk).
      expect(await metric(broker, 'streambus_partitions_storage_error')).toBe(
        created instanceof Error ? 1 : 2,
      );
      expect(await metric(broker, 'streambus_append_storage_errors_total')).toBeGreaterThan(0);
      expect(broker.output()).toMatch(
        /"disk full: this partition answers a retriable storage error/,
      );

      // A send that keeps retrying while the disk is full, then space is freed: it goes in
      // without a restart.
      const during = patient.producer({ lingerMs: 0 });
      const pending = during.send({ topic: 'full', value: value('during') });
      // (Its retries are refused: the replica is offline, reopening from disk every second.)
      const errorsAtStart = await metric(broker, 'streambus_request_errors_total');
      const waitUntil = Date.now() + 10_000;
      while (
        (await metric(broker, 'streambus_request_errors_total')) < errorsAtStart + 2 &&
        Date.now() < waitUntil
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await metric(broker, 'streambus_request_errors_total')).toBeGreaterThanOrEqual(
        errorsAtStart + 2,
      );
      unlinkSync(filler);
      await pending;
      acked.push('during');
      for (let i = 0; i < 5; i++) {
        await during.send({ topic: 'full', value: value(`after-${i}`) });
        acked.push(`after-${i}`);
      }
      // Every replica that failed reopens from disk by itself (at most once a second).
      for (const until = Date.now() + 5000; Date.now() < until; ) {
        if ((await metric(broker, 'streambus_partitions_storage_error')) === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await metric(broker, 'streambus_partitions_storage_error')).toBe(0);
      // The metadata log reopened by itself too: a topic can be created without a restart (the
      // patient client retries CONTROLLER_OFFLINE, retriable, until the reopen).
      await patient.admin().createTopic({ name: 'unrestarted', partitions: 1 });
      expect(await patient.admin().listTopics()).toContain('unrestarted');
      await during.close();
      await before.close();
      // Exactly what was acknowledged, once each, in order.
      const got = await consumeValues(patient, 'full', acked.length);
      expect(got.map((v) => v.replace(/\.+$/, ''))).toEqual(acked);
      expect(broker.child.exitCode).toBeNull();
      expect(await broker.stop()).toBe(0);
      // Restarted, the metadata log serves again: the topic whose create failed on the full disk
      // exists (its record may have reached the log before the failed write: an error answer is
      // not a promise that nothing happened) or can be made now.
      const again = await startBroker(dataDir);
      brokers.push(again);
      const fresh = new StreamBusClient({ bootstrap: again.bootstrap });
      clients.push(fresh);
      const made = await fresh
        .admin()
        .createTopic({ name: 'later', partitions: 1 })
        .then(
          () => 0,
          (e: StreamBusError) => e.code,
        );
      expect([0, ErrorCode.TOPIC_ALREADY_EXISTS]).toContain(made);
      expect((await fresh.admin().describeTopic('later')).partitions).toHaveLength(1);
      const kept = await consumeValues(fresh, 'full', acked.length);
      expect(kept.map((v) => v.replace(/\.+$/, ''))).toEqual(acked);
      expect(await again.stop()).toBe(0);
    },
    60_000,
  );

  it('config changes that reopen the log while the idempotent producer writes', async () => {
    const dir = tempDir();
    const broker = await startBroker(dir);
    brokers.push(broker);
    const client = new StreamBusClient({ bootstrap: broker.bootstrap });
    clients.push(client);
    await client.admin().createTopic({ name: 'cfg', partitions: 2 });
    const producer = client.producer({ lingerMs: 1 });
    const acked = new Set<string>();
    let stop = false;
    const failures: unknown[] = [];
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const batch = Array.from({ length: 20 }, (_, k) => ({
          topic: 'cfg',
          value: `r${i}-${k}`,
        }));
        try {
          await producer.sendBatch(batch);
          for (const r of batch) acked.add(r.value);
        } catch (err) {
          failures.push(err);
          return;
        }
      }
    })();
    for (let k = 0; k < 15; k++) {
      await client.admin().alterConfigs('cfg', { 'segment.ms': String(86_400_000 + k) });
      await new Promise((r) => setTimeout(r, 10));
    }
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    expect(broker.child.exitCode).toBeNull();
    expect(acked.size).toBeGreaterThan(0);
    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'cfg', from: 'earliest' });
    const got: string[] = [];
    const deadline = Date.now() + 15_000;
    while (got.length < acked.size && Date.now() < deadline) {
      for (const b of await consumer.poll()) {
        for (const r of b.records) got.push(Buffer.from(r.value!).toString());
      }
    }
    await consumer.close();
    await producer.close();
    expect(new Set(got).size).toBe(got.length);
    expect(new Set(got)).toEqual(acked);
    expect(await broker.stop()).toBe(0);
    removeDir(dir);
  }, 60_000);
});
