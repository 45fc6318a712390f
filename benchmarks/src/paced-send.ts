// One paced produce loop, shared by the warmed latency rows (suites/broker.ts), the fresh client
// process (fresh-client.ts) and the same-run disk reference (paced-reference.ts): one send per
// record at `rate` records/s for `total` records, the records due sent on every ~1 ms timer tick,
// each record's send-to-acknowledgement time kept once `dropMs` have passed (the warm-up). It
// waits for every acknowledgement. `key` names record i's key (compacted topics need one).
import type { Producer } from '@streambus/client';

export interface PacedOptions {
  readonly rate: number;
  readonly total: number;
  readonly dropMs: number;
}

/** The pacing and timing alone: `sendOne(i)` resolves when record i is acknowledged. */
export async function pacedAckLatencies(
  sendOne: (i: number) => Promise<unknown>,
  options: PacedOptions,
): Promise<number[]> {
  const { rate, total, dropMs } = options;
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
          sendOne(sent).then(() => {
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

export function pacedSendLatencies(
  producer: Producer,
  topic: string,
  value: Buffer,
  options: PacedOptions & { key?: (i: number) => string },
): Promise<number[]> {
  const { key } = options;
  return pacedAckLatencies(
    (i) => producer.send(key ? { topic, key: key(i), value } : { topic, value }),
    options,
  );
}
