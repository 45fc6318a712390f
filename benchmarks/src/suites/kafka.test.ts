// Keeps the kafka suite's building blocks honest: prebuilt Kafka Produce frames driven through a
// real broker child's Kafka listener are all answered without error and all stored, and an
// answer carrying an error code fails the drive.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { kafka } from '@streambus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driveFrames, openSocket } from '../frame-driver.js';
import { type ChildHandle, makeBatches, recordsStored, spawnBroker } from './broker.js';
import { ConsumeMeter, kafkaProduceAnswers, kafkaProduceFrames } from './kafka.js';

describe('kafka suite building blocks', () => {
  let dir: string;
  let broker: ChildHandle;
  let kafkaPort: number;
  let client: StreamBusClient;
  const batches = makeBatches(4, 50, 100);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-bench-kafka-test-'));
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    kafkaPort = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    broker = await spawnBroker(join(dir, 'data'), [], {
      STREAMBUS_KAFKA_LISTEN: `127.0.0.1:${kafkaPort}`,
    });
    client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
  });
  afterAll(async () => {
    await client?.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drives prebuilt Kafka Produce frames through the listener; every record is stored', async () => {
    await client.admin().createTopic({ name: 'kb', partitions: 2 });
    const socket = await openSocket(kafkaPort);
    const r = await driveFrames(socket, kafkaProduceFrames('kb', batches, 2, 1), 40, 8, {
      answers: kafkaProduceAnswers(),
    });
    socket.destroy();
    expect(r.answered).toBe(40);
    // acks=1 answers on append; the high watermark follows the flush.
    const deadline = Date.now() + 10_000;
    let stored = await recordsStored(client, 'kb');
    while (stored < 40 * 50 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      stored = await recordsStored(client, 'kb');
    }
    expect(stored).toBe(40 * 50);
  });

  it('an answer with an error code fails the drive', () => {
    const answer = kafka.encodeResponse('Produce', 7, 1, {
      responses: [
        {
          name: 'x',
          partitions: [
            { index: 0, errorCode: 3, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 },
          ],
        },
      ],
      throttleTimeMs: 0,
    });
    expect(() => kafkaProduceAnswers()(answer)).toThrow(/error 3/);
  });

  it('the consume meter leaves the first delivery out and refuses an unfinished run', async () => {
    const m = new ConsumeMeter(30);
    expect(m.add(0)).toBe(false);
    expect(m.add(10)).toBe(false);
    await new Promise((r) => setTimeout(r, 20));
    expect(() => m.rate(10)).toThrow(/consumed 10 of 30/);
    expect(m.add(10)).toBe(false);
    expect(m.add(15)).toBe(true);
    // 25 records after the first delivery, in ~20 ms or more: at most ~1,250 records/s.
    const rate = m.rate(10);
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThan(25 / 0.019);
    const once = new ConsumeMeter(5);
    expect(once.add(5)).toBe(true);
    expect(() => once.rate(5)).toThrow(/one delivery held every record/);
  });
});
