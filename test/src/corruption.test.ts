// A corrupt batch in a closed segment, found after kill -9, against real processes: the broker
// starts anyway, the damaged partition is offline (`topic describe`, /ready, /metrics, a warn log
// line with the offsets), the other partition serves, `streambus partition repair --skip` is
// refused on a replicated partition (its dry run reports), `--truncate` brings it back stating
// the offsets lost, and consumers read what is left, producers append after it. And a topic create under a low file-descriptor limit (`ulimit -n` in a
// shell wrapper): refused up front beyond the partition limit, and otherwise all or nothing,
// the broker serving on and restarting.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { batchSpans } from '@streambus/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BROKER_MAIN,
  type BrokerProcess,
  ROOT,
  removeDir,
  runCli,
  startBroker,
  tempDir,
} from './harness.js';

const retry = { retriesMax: 3, backoffInitialMs: 20, backoffMaxMs: 100, totalTimeoutMs: 5_000 };

function httpPort(b: BrokerProcess): number {
  const line = b
    .output()
    .split('\n')
    .find((l) => l.includes('"broker started"'))!;
  return (JSON.parse(line) as { httpPort: number }).httpPort;
}

describe('a damaged partition after kill -9 (real processes)', () => {
  const dir = tempDir();
  const brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) if (b.child.exitCode === null) await b.kill9();
    removeDir(dir);
  });

  it('is offline, the rest serves, and partition repair --truncate brings it back', async () => {
    const b1 = await startBroker(dir);
    brokers.push(b1);
    const c1 = new StreamBusClient({ bootstrap: b1.bootstrap, retry });
    await c1.admin().createTopic({
      name: 't',
      partitions: 2,
      configs: { 'segment.bytes': '2048', 'max.message.bytes': '1024' },
    });
    const producer = c1.producer({ acks: 'all', lingerMs: 0 });
    for (let i = 0; i < 30; i++) {
      await producer.send({ topic: 't', partition: 0, value: `v${i}`.padEnd(300, '.') });
    }
    for (let i = 0; i < 3; i++) await producer.send({ topic: 't', partition: 1, value: `o${i}` });
    await c1.close();
    await b1.kill9();

    // Flip a byte in the third batch (offset 2, the record v1: the first is the term's no-op)
    // of partition 0's first, sealed segment.
    const pdir = join(dir, 'topics', '1', '0');
    const file = join(
      pdir,
      readdirSync(pdir)
        .filter((n) => n.endsWith('.log'))
        .sort()[0]!,
    );
    const data = readFileSync(file);
    data[[...batchSpans(data)][2]!.position + 100]! ^= 0xff;
    writeFileSync(file, data);

    const b2 = await startBroker(dir);
    brokers.push(b2);
    const b = ['--bootstrap', b2.bootstrap];
    const warn = b2
      .output()
      .split('\n')
      .filter((l) => l.includes('corrupt data in a partition log'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warn).toEqual([
      expect.objectContaining({ level: 40, topic: 't', partition: 0, fromOffset: 2, toOffset: 2 }),
    ]);

    const described = await runCli(['topic', 'describe', 't', '--output', 'json', ...b]);
    expect(described.code).toBe(0);
    const parts = (JSON.parse(described.stdout) as { partitions: Array<Record<string, unknown>> })
      .partitions;
    expect(parts[0]!.offline).toContain(file);
    expect(parts[1]).toMatchObject({ offline: null });
    expect(parts[1]!.latestOffset as number).toBeGreaterThanOrEqual(4);
    const human = await runCli(['topic', 'describe', 't', ...b]);
    expect(human.stdout).toMatch(/^0 .*OFFLINE .*CRC/m);

    const http = `http://127.0.0.1:${httpPort(b2)}`;
    const ready = await fetch(`${http}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      ready: true,
      offlinePartitionCount: 1,
      offlinePartitions: [{ topic: 't', partition: 0 }],
    });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/^streambus_partitions_offline 1$/m);
    expect(metrics).toMatch(/^streambus_log_damage_events_total\{kind="corruption"\} 1$/m);

    // The other partition serves.
    const c2 = new StreamBusClient({ bootstrap: b2.bootstrap, retry });
    const p2 = c2.producer({ acks: 'all', lingerMs: 0 });
    const more = await p2.send({ topic: 't', partition: 1, value: 'more' });
    expect(more.partition).toBe(1);
    expect(more.offset).toBeGreaterThan(3);

    const dry = await runCli(['partition', 'repair', 't', '0', '--skip', '--dry-run', ...b]);
    expect(dry).toMatchObject({ code: 0 });
    expect(dry.stdout).toContain('would lose 1 offsets: 2..2');
    expect(dry.stdout).toContain('partition offline');
    const usage = await runCli(['partition', 'repair', 't', '0', ...b]);
    expect(usage.code).toBe(2);
    // A gap batch cannot be a Raft entry: skip is refused, naming --truncate.
    const skip = await runCli(['partition', 'repair', 't', '0', '--skip', ...b]);
    expect(skip.code).toBe(1);
    expect(skip.stderr).toContain('--truncate');
    const fixed = await runCli(['partition', 'repair', 't', '0', '--truncate', ...b]);
    expect(fixed).toMatchObject({ code: 0 });
    expect(fixed.stdout).toContain('lost 29 offsets: 2..30');
    expect(fixed.stdout).toContain('log end offset 31 -> 2');
    expect(fixed.stdout).toContain('partition online');

    // Consumers read what is left (v0 at offset 1); the next record goes after the new term's
    // no-op.
    const consumer = c2.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 't', partitions: [0], from: 'earliest' });
    const after = await p2.send({ topic: 't', partition: 0, value: 'after' });
    expect(after.offset).toBe(3);
    const got: Array<[number, string]> = [];
    const deadline = Date.now() + 10_000;
    while (got.length < 2 && Date.now() < deadline) {
      for (const batch of await consumer.poll()) {
        for (const r of batch.records) got.push([r.offset, Buffer.from(r.value!).toString()]);
      }
    }
    await consumer.close();
    expect(got.map(([o, v]) => [o, v.replace(/\.+$/, '')])).toEqual([
      [1, 'v0'],
      [3, 'after'],
    ]);
    await c2.close();
    expect(await b2.stop()).toBe(0);
  });
});

/** The broker under `ulimit -n fds`; resolves with its port once it logs "broker started". */
function startLimited(
  dataDir: string,
  fds: number,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    'sh',
    [
      '-c',
      `ulimit -n ${fds} && exec "$0" "$@"`,
      process.execPath,
      BROKER_MAIN,
      ...['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--http', 'off'],
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    // Killed when it does not start: the caller never gets it to clean up.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no start in 30 s: ${out}`));
    }, 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"broker started"'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, port: (JSON.parse(line) as { port: number }).port });
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code}: ${out}`));
    });
  });
}

describe('topic creation under a low file-descriptor limit (real processes)', () => {
  const dir = tempDir();
  const children: ChildProcess[] = [];
  afterAll(async () => {
    // Gone before the directory is removed (a broker still writing made rmdir fail ENOTEMPTY).
    const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
    const exits = running.map((c) => new Promise((resolve) => c.once('exit', resolve)));
    for (const c of running) c.kill('SIGKILL');
    await Promise.all(exits);
    removeDir(dir);
  });
  const stop = (c: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      c.once('exit', resolve);
      c.kill('SIGTERM');
    });

  it('is refused up front beyond the limit, all or nothing otherwise, and the broker restarts', async () => {
    const first = await startLimited(dir, 150);
    children.push(first.child);
    const b = ['--bootstrap', `127.0.0.1:${first.port}`];
    const huge = await runCli(['topic', 'create', 'huge', '--partitions', '50000', ...b]);
    expect(huge.code).toBe(1);
    expect(huge.stderr).toContain('limits.partitionsPerTopicMax (10000)');

    // 300 partitions need more descriptors than 150 (unless the storage bounds its open files):
    // the topic is one controller record, so it exists with every partition or not at all, and
    // a replica that could not open would be offline, not missing.
    // 300 replicas opened under the limit: past runCli's 20 s kill on a loaded machine (the
    // killed CLI left code null and no stderr), so these two get 45 s each.
    const wide = await runCli(['topic', 'create', 'wide', '--partitions', '300', ...b], '', 45_000);
    const described = await runCli(
      ['topic', 'describe', 'wide', '--output', 'json', ...b],
      '',
      45_000,
    );
    if (wide.code === 0) {
      expect(described.code).toBe(0);
      expect((JSON.parse(described.stdout) as { partitions: unknown[] }).partitions).toHaveLength(
        300,
      );
    } else {
      expect(wide.stderr).toMatch(/too many open files/i);
      expect(described.code).toBe(1);
    }
    // The broker serves on, and restarts under the same limit.
    expect(await runCli(['topic', 'create', 'small', '--partitions', '3', ...b])).toMatchObject({
      code: 0,
    });
    expect(await stop(first.child)).toBe(0);
    const second = await startLimited(dir, 150);
    children.push(second.child);
    const d = await runCli([
      'topic',
      'describe',
      'small',
      '--output',
      'json',
      '--bootstrap',
      `127.0.0.1:${second.port}`,
    ]);
    expect(d.code).toBe(0);
    expect((JSON.parse(d.stdout) as { partitions: unknown[] }).partitions).toHaveLength(3);
    expect(await stop(second.child)).toBe(0);
    // Two broker processes and five CLI processes: 6-17 s here, past 20 s on a loaded machine.
  }, 180_000);
});
