// Keeps the broker suite's building blocks honest: a real broker child and the reference server
// child, driven by the frame driver for a few hundred frames, with counts checked on both sides.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { ApiKey, decodeResponse, FrameFlag } from '@streambus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerCpuRows, procCpuMs } from '../broker-cpu.js';
import { driveFrames, openSocket } from '../frame-driver.js';
import {
  type ChildHandle,
  makeBatches,
  procStatusKiB,
  produceFrames,
  recordsStored,
  spawnBroker,
  spawnReference,
  topicFsyncs,
} from './broker.js';

describe('broker suite building blocks', () => {
  let dir: string;
  let broker: ChildHandle;
  let client: StreamBusClient;
  const batches = makeBatches(8, 50, 100);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-bench-broker-test-'));
    broker = await spawnBroker(join(dir, 'data'));
    client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
  });

  afterAll(async () => {
    await client?.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drives prebuilt produce frames into a real broker and every record is stored', async () => {
    await client
      .admin()
      .createTopic({ name: 't', partitions: 2, configs: { durability: 'always' } });
    const frames = produceFrames('t', batches, 2, -1);
    const socket = await openSocket(broker.port);
    const fsyncsBefore = await topicFsyncs(broker, 't');
    let errors = 0;
    let parsed = 0;
    const r = await driveFrames(socket, frames, 300, 8, {
      recordLatency: true,
      onAnswer: (body) => {
        // Every answer must be a produce response without errors.
        parsed++;
        const frame = {
          apiKey: ApiKey.PRODUCE,
          apiVersion: 0,
          correlationId: 0,
          flags: FrameFlag.RESPONSE,
          body,
        };
        for (const t of decodeResponse(ApiKey.PRODUCE, frame).topics)
          for (const x of t.partitions) if (x.errorCode !== 0) errors++;
      },
    });
    socket.destroy();
    expect(r.answered).toBe(300);
    expect(r.latenciesMs).toHaveLength(300);
    expect(errors).toBe(0);
    expect(parsed).toBe(300);
    expect(await recordsStored(client, 't')).toBe(300 * 50);
    // acks=all under 'always': every answer waited for an fsync; group commit shares them
    // (the fsyncs-per-request figure of the prebuilt rows).
    const fsyncs = (await topicFsyncs(broker, 't')) - fsyncsBefore;
    expect(fsyncs).toBeGreaterThan(0);
    expect(fsyncs).toBeLessThanOrEqual(300);
    expect(procStatusKiB(broker.pid, 'VmRSS')).toBeGreaterThan(1000);
  });

  it('the reference server appends and acknowledges every frame, fsynced or not', async () => {
    for (const mode of ['none', 'always'] as const) {
      const file = join(dir, `ref-${mode}.log`);
      const ref = await spawnReference(file, mode);
      const frames = produceFrames('ref', batches, 2, 1);
      const socket = await openSocket(ref.port);
      const r = await driveFrames(socket, frames, 200, 8);
      socket.destroy();
      await ref.stop();
      expect(r.answered).toBe(200);
      let bytes = 0;
      for (let i = 0; i < 200; i++) bytes += frames[i % frames.length]!.length;
      expect(statSync(file).size).toBe(bytes);
    }
  });

  it('reads a process CPU time that grows while it computes, and -1 for no such process', () => {
    const before = procCpuMs(process.pid);
    expect(before).toBeGreaterThanOrEqual(0);
    const until = Date.now() + 60;
    let x = 0;
    while (Date.now() < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    expect(procCpuMs(process.pid)).toBeGreaterThan(before);
    expect(procCpuMs(2 ** 30)).toBe(-1);
  });

  it('measures µs of broker CPU per produce request for both shapes (broker-cpu.ts)', async () => {
    const rows = await brokerCpuRows({
      port: broker.port,
      pid: broker.pid,
      client,
      quick: true,
      runs: 2,
      makeBatches,
      produceFrames,
      requestsPerRun: { one: 300, thousand: 30 },
    });
    expect(rows.map((r) => r.name)).toEqual([
      'broker cpu per produce request, 1 record',
      'broker cpu per produce request, 1,000 records',
    ]);
    for (const r of rows) {
      expect(r.unit).toBe('us');
      expect((r.settings as { values: number[] }).values).toHaveLength(2);
      expect(r.value).toBeGreaterThanOrEqual(0);
    }
  }, 30_000);

  it('the serve reference streams a whole file to each connection', async () => {
    const file = join(dir, 'ref-none.log');
    const ref = await spawnReference(file, 'serve');
    const s = await openSocket(ref.port);
    let got = 0;
    await new Promise<void>((res) => {
      s.on('data', (d: Buffer) => {
        got += d.length;
      });
      s.once('end', res);
    });
    s.destroy();
    await ref.stop();
    expect(got).toBe(statSync(file).size);
  });
});
