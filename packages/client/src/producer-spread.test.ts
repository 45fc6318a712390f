// Keyless records and a busy sticky partition (producer.ts stickyPartition, issue 13): a publish
// loop's window of 1,000 send() promises on a multi-partition topic leaves as halves on two
// different partitions (the broker writes and fsyncs them in parallel), not as two halves queued
// on one partition; the halves stay halves (the sticky partition's volume is the topic's), and a
// partition with a few records in flight is not busy, and a remainder waiting on the sticky
// partition for the topic's requests goes once they are answered. Counts only, against FakeBroker.
import { describe, expect, it } from 'vitest';
import { fakeBrokerEachTest } from './testing/per-test.js';

const t = fakeBrokerEachTest();

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The record count of every batch the broker stored for `topic`, per partition. */
function batchSizes(topic: string): number[][] {
  return t.broker.topics
    .get(topic)!
    .partitions.map((p) => p.batches.map((b) => b.lastOffset - b.baseOffset + 1));
}

describe('producer: a busy sticky partition', () => {
  it('sends a window of 1,000 as halves on two partitions, round after round', async () => {
    t.broker.createTopic('w', 4);
    const producer = t.client.producer(); // adaptive batching
    await producer.connect(['w']);
    const rounds: Array<Array<{ partition: number; records: number }>> = [];
    for (let round = 0; round < 5; round++) {
      const before = batchSizes('w').map((b) => b.length);
      // One window appended in one turn, answered only once all of it was sent.
      t.broker.holdProduce();
      const sends = Array.from({ length: 1000 }, (_, i) =>
        producer.send({ topic: 'w', value: `r${round}-${i}`.padEnd(100, '.') }),
      );
      await tick();
      await tick();
      t.broker.releaseProduce();
      const res = await Promise.all(sends);
      // Each record once, in send order within its partition.
      const byPartition = new Map<number, number[]>();
      for (const r of res) {
        const offsets = byPartition.get(r.partition) ?? [];
        offsets.push(r.offset);
        byPartition.set(r.partition, offsets);
      }
      for (const offsets of byPartition.values()) {
        for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBe(offsets[i - 1]! + 1);
      }
      const sent: Array<{ partition: number; records: number }> = [];
      batchSizes('w').forEach((sizes, partition) => {
        for (const records of sizes.slice(before[partition])) sent.push({ partition, records });
      });
      expect(sent.reduce((n, s) => n + s.records, 0)).toBe(1000);
      rounds.push(sent);
    }
    // The first window, without history, is cut small (64 records and up, and what a turn
    // leaves), spread over the partitions; from then on a window appended in one turn leaves as
    // two halves on two different partitions, and at most a remainder: each round here waits
    // for its whole window (stop-and-go), so a remainder has nothing to merge with and goes once
    // the topic is idle (its close decays the topic's volume by a 64th).
    expect(new Set(rounds[0]!.map((s) => s.partition)).size).toBe(4);
    for (const sent of rounds.slice(2)) {
      expect(sent.length).toBeLessThanOrEqual(3);
      const halves = [...sent].sort((a, b) => b.records - a.records).slice(0, 2);
      for (const h of halves) expect(h.records).toBeGreaterThanOrEqual(450);
      expect(halves[0]!.partition).not.toBe(halves[1]!.partition);
    }
    await producer.close();
  });

  it('a sliding window of 1,000 send() promises alternates partitions half by half', async () => {
    t.broker.createTopic('sw', 4);
    const producer = t.client.producer();
    await producer.connect(['sw']);
    const total = 20_000;
    const window: Array<Promise<{ partition: number }>> = [];
    const partitions: number[] = [];
    let requestsAtHalf = 0;
    for (let i = 0; i < total; i++) {
      if (window.length === 1000) partitions.push((await window.shift()!).partition);
      if (i === total / 2) requestsAtHalf = t.broker.produceRequests;
      window.push(producer.send({ topic: 'sw', value: `r${i}`.padEnd(100, '.') }));
    }
    for (const r of await Promise.all(window)) partitions.push(r.partition);
    const requests = t.broker.produceRequests;
    await producer.close();
    // Runs of consecutive records on one partition, after the first 5,000: each run is a piece
    // of the window, and the next piece went elsewhere (one partition for the whole window, as
    // the sticky partition alone did, would be one run per ~9,500 records: 1 MiB of batches).
    const runs: number[] = [];
    let run = 0;
    for (let i = 5_000; i < total; i++) {
      if (i > 5_000 && partitions[i] !== partitions[i - 1]) {
        runs.push(run);
        run = 0;
      }
      run++;
    }
    runs.push(run);
    expect(runs.length).toBeGreaterThanOrEqual((total - 5_000) / 1_000);
    // The pieces stay about half a window: not frayed into small requests.
    expect(total / requests).toBeGreaterThanOrEqual(400);
    // Settled (the second half of the run): two requests per window of 1,000, give or take a
    // remainder riding along. A piece of the window that went small (a fake broker answers
    // each request in its own turn) merges back: a batch waiting behind requests in flight goes
    // at the end of a turn that had an answer, with the records that answer freed, and the
    // topic's sticky partition waits for the topic's requests, not only its own (was 3 pieces,
    // 500 + 280 + 220 or 500 + 486 + 14, each its own request).
    expect(requests - requestsAtHalf).toBeLessThanOrEqual(((total / 2) * 2.2) / 1000);
  });

  it('a remainder waiting on an idle sticky partition goes once the topic is answered', async () => {
    t.broker.createTopic('r', 4);
    const producer = t.client.producer();
    await producer.connect(['r']);
    // Rounds of 1,000 so the topic's recent volume is about a window.
    for (let round = 0; round < 4; round++) {
      t.broker.holdProduce();
      const sends = Array.from({ length: 1000 }, (_, i) =>
        producer.send({ topic: 'r', value: `w${round}-${i}`.padEnd(100, '.') }),
      );
      await tick();
      t.broker.releaseProduce();
      await Promise.all(sends);
    }
    const before = batchSizes('r').map((b) => b.length);
    // Two halves go to two partitions; the last 10 records open a batch on a third partition,
    // which has nothing of its own in flight but waits for the topic's requests (10 is under a
    // quarter of the volume). Only the answers on the other partitions can let it go.
    t.broker.holdProduce();
    const sends = Array.from({ length: 1010 }, (_, i) =>
      producer.send({ topic: 'r', value: `x${i}`.padEnd(100, '.') }),
    );
    await tick();
    await tick();
    t.broker.releaseProduce();
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<string>((r) => {
      timer = setTimeout(() => r('stalled'), 3000);
    });
    const outcome = await Promise.race([Promise.all(sends).then(() => 'sent'), stalled]);
    clearTimeout(timer);
    // Without the topic's answers re-checking the sticky partition, the 10 stayed open for good.
    expect(outcome).toBe('sent');
    const perPartition = batchSizes('r').map((b, p) => b.slice(before[p]));
    const sizes = perPartition.flat().sort((a, b) => a - b);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(1010);
    // Two halves and the remainder, each on its own partition.
    expect(sizes).toHaveLength(3);
    expect(sizes[0]).toBeLessThan(100);
    expect(sizes[1]).toBeGreaterThanOrEqual(450);
    expect(perPartition.filter((b) => b.length > 0)).toHaveLength(3);
    await producer.close();
  });

  it('spreads sendBatch() chunks appended while the partition is busy', async () => {
    t.broker.createTopic('b', 4);
    const producer = t.client.producer();
    await producer.connect(['b']);
    t.broker.holdProduce();
    const chunk = Array.from({ length: 1000 }, (_, i) => ({
      topic: 'b',
      value: `v${i}`.padEnd(100, '.'),
    }));
    const pending = [producer.sendBatch(chunk), producer.sendBatch(chunk)];
    await tick();
    t.broker.releaseProduce();
    const res = (await Promise.all(pending)).flat();
    const perPartition = [0, 1, 2, 3].map((p) => res.filter((r) => r.partition === p).length);
    // 2,000 records of ~110 B, far from a full batch's worth (1 MiB) that alone moved the
    // sticky partition: every partition takes a share, as its batches went while another was busy.
    for (const n of perPartition) expect(n).toBeGreaterThan(0);
    await producer.close();
  });

  it('stays on one partition while it carries fewer than 64 records in flight', async () => {
    t.broker.createTopic('s', 4);
    const producer = t.client.producer();
    await producer.connect(['s']);
    t.broker.holdProduce();
    const sends: Array<Promise<{ partition: number }>> = [];
    // 20 records per turn: a turn's batch goes at once (1st), the next ones follow it on the same
    // partition while it carries < 64 records in flight (20, 40, 60), then it is busy.
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 20; i++)
        sends.push(producer.send({ topic: 's', value: `t${turn}-${i}` }));
      await tick();
    }
    t.broker.releaseProduce();
    const res = await Promise.all(sends);
    const partitionOfTurn = (t: number): number => res[t * 20]!.partition;
    for (let t = 0; t < 5; t++) {
      expect(new Set(res.slice(t * 20, t * 20 + 20).map((r) => r.partition)).size).toBe(1);
    }
    expect(new Set([0, 1, 2, 3].map(partitionOfTurn)).size).toBe(1);
    // The fifth turn found 80 records in flight there: it moved on.
    expect(partitionOfTurn(4)).not.toBe(partitionOfTurn(0));
    await producer.close();
  });
});
