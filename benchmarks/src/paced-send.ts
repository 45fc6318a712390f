// One paced produce loop, shared by the warmed latency rows (suites/broker.ts) and the fresh
// client process (fresh-client.ts): `Producer.send()` per record at `rate` records/s for `total`
// records, the records due sent on every ~1 ms timer tick, each record's send-to-acknowledgement
// time kept once `dropMs` have passed (the warm-up). It waits for every acknowledgement. `key`
// names record i's key (compacted topics need one).
import type { Producer } from '@streambus/client';

export async function pacedSendLatencies(
  producer: Producer,
  topic: string,
  value: Buffer,
  options: { rate: number; total: number; dropMs: number; key?: (i: number) => string },
): Promise<number[]> {
  const { rate, total, dropMs, key } = options;
  const latenciesMs: number[] = [];
  const pending: Promise<unknown>[] = [];
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (sent < due) {
        const at = performance.now();
        const measure = at - t0 >= dropMs;
        pending.push(
          producer.send(key ? { topic, key: key(sent), value } : { topic, value }).then(() => {
            if (measure) latenciesMs.push(performance.now() - at);
          }),
        );
        sent++;
      }
      if (sent >= total) done();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  return latenciesMs;
}
