// An idempotent producer under load while its broker is killed (kill -9) and restarted on the
// same port about 0.5 s later (issue 8 item 11). Every send() must resolve (the delivery timeout,
// not the client's short retry budget, bounds produce retries), the batches queued behind the
// failed ones must be resent in order with their sequences (no OUT_OF_ORDER_SEQUENCE_NUMBER), the
// log must hold every record exactly once at its acknowledged offset, and reconnecting must not
// leak abort listeners (MaxListenersExceededWarning).
import { StreamBusClient } from '@streambus/client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BROKER_MAIN,
  type BrokerProcess,
  removeDir,
  spawnBrokerProcess,
  tempDir,
} from './harness.js';

function startOnPort(dir: string, port: number): Promise<BrokerProcess> {
  return spawnBrokerProcess(
    [BROKER_MAIN, '--listen', `127.0.0.1:${port}`, '--http', '127.0.0.1:0', '--data-dir', dir],
    dir,
  );
}

describe('kill -9 and restart under an idempotent producer', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('resolves every send, in order, nothing lost or duplicated, no listener leak', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    cleanup.push(async () => process.off('warning', onWarning));

    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    let broker = await startOnPort(dir, 0);
    const port = broker.port;
    cleanup.push(() => broker.kill9());
    const topic = 'restart';
    const partitions = 12;
    const client = new StreamBusClient({
      bootstrap: broker.bootstrap,
      // A retry budget far shorter than the outage: produce must ride it out anyway.
      retry: { retriesMax: 2, backoffInitialMs: 20, backoffMaxMs: 100, totalTimeoutMs: 300 },
    });
    cleanup.push(() => client.close());
    await client
      .admin()
      .createTopic({ name: topic, partitions, configs: { durability: 'always' } });
    const producer = client.producer({ acks: 'all', lingerMs: 1, batchBytesMax: 4096 });

    const total = 6_000;
    const windowMax = 300;
    const acked = new Map<string, { partition: number; offset: number }>();
    const failures: string[] = [];
    let restarted = false;
    const outage = (async () => {
      while (acked.size < 1_000) await new Promise((r) => setTimeout(r, 5));
      await broker.kill9();
      await new Promise((r) => setTimeout(r, 500));
      broker = await startOnPort(dir, port);
      restarted = true;
    })();
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < total; i++) {
      const value = `r-${i}`;
      const p = producer.send({ topic, key: `k-${i % 97}`, value }).then(
        (m) => void acked.set(value, { partition: m.partition, offset: m.offset }),
        (err: unknown) => void failures.push(`${value}: ${String(err)}`),
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size >= windowMax) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    await outage;
    expect(restarted).toBe(true);
    expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
    expect(failures.length, failures.slice(0, 5).join('\n')).toBe(0);
    expect(acked.size).toBe(total);

    // Per partition, in send order, the acknowledged offsets increase by one, except where a
    // Raft term's no-op (a control batch: the first term's at 0, one per restart) takes one.
    const byPartition = new Map<number, number[]>();
    for (let i = 0; i < total; i++) {
      const m = acked.get(`r-${i}`)!;
      const list = byPartition.get(m.partition) ?? [];
      list.push(m.offset);
      byPartition.set(m.partition, list);
    }
    let noOps = 0;
    for (const offsets of byPartition.values()) {
      expect(offsets[0]).toBe(1);
      for (let j = 1; j < offsets.length; j++) {
        const step = offsets[j]! - offsets[j - 1]!;
        expect([1, 2]).toContain(step);
        if (step === 2) noOps++;
      }
    }

    // The restarted broker's log holds each record once, at its acknowledged offset.
    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic, from: 'earliest' });
    const seen = new Map<string, number>();
    let records = 0;
    const deadline = Date.now() + 15_000;
    while (records < total && Date.now() < deadline) {
      for (const b of await consumer.poll()) {
        for (const r of b.records) {
          records++;
          const value = Buffer.from(r.value ?? []).toString();
          seen.set(value, (seen.get(value) ?? 0) + 1);
          expect(acked.get(value), value).toEqual({ partition: b.partition, offset: r.offset });
        }
      }
    }
    await consumer.close();
    expect(records).toBe(total);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    // The log ends after the records and the no-ops (the last restart's may follow them).
    const offsets = await client.admin().listOffsets(topic, 'latest');
    const end = offsets.reduce((s, o) => s + o.offset, 0);
    expect(end).toBeGreaterThanOrEqual(total + byPartition.size + noOps);
    expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
  }, 60_000);
});
