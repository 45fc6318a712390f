// One member of the consumer-group churn test (cluster-groups-churn.test.ts), as a process of
// its own so the test can kill -9 it: `node churn-member.js BOOTSTRAP GROUP TOPIC`. It consumes
// TOPIC in GROUP and reports on stdout, one line each:
//   A <generation> <memberId> <topic/partition,...>   after every assignment (all it owns)
//   R <lost 0|1> <topic/partition,...>                 before partitions are revoked
//   P <partition> <offset>                             a record processed (printed = processed)
//   C                                                  closed cleanly (after SIGTERM)
// SIGTERM closes the consumer (it commits what it processed and leaves the group).
import { writeSync } from 'node:fs';
import { StreamBusClient, type TopicPartition } from '@streambus/client';

const [bootstrap, groupId, topic] = process.argv.slice(2);
if (bootstrap === undefined || groupId === undefined || topic === undefined) {
  process.stderr.write('usage: churn-member BOOTSTRAP GROUP TOPIC\n');
  process.exit(2);
}

const tps = (list: readonly TopicPartition[]) =>
  list.map((tp) => `${tp.topic}/${tp.partition}`).join(',');
// Written synchronously: a record counts as processed only once its line is out, before the
// loop asks for the next one (and so before any commit can cover it), even under kill -9.
let out = '';
const pause = new Int32Array(new SharedArrayBuffer(4));
const flush = (): void => {
  let buf = Buffer.from(out);
  out = '';
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf));
    } catch (err) {
      // A full non-blocking pipe: wait for the test to read it.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
};

const client = new StreamBusClient({
  bootstrap,
  clientId: 'churn',
  retry: { retriesMax: 50, backoffInitialMs: 50, backoffMaxMs: 500, totalTimeoutMs: 30_000 },
});
const consumer = client.consumer({
  groupId,
  sessionTimeoutMs: 3_000,
  heartbeatIntervalMs: 300,
  maxPollIntervalMs: 15_000,
  autoCommitIntervalMs: 500,
  maxWaitMs: 200,
  onAssigned: (e) => {
    out += `A ${e.generation} ${e.memberId} ${tps(e.assignment)}\n`;
    flush();
  },
  onRevoked: (e) => {
    out += `R ${e.lost ? 1 : 0} ${tps(e.partitions)}\n`;
    flush();
  },
});

let closing = false;
process.on('SIGTERM', () => {
  if (closing) return;
  closing = true;
  void consumer
    .close()
    .then(() => client.close())
    .then(() => {
      out += 'C\n';
      flush();
      process.exit(0);
    });
});

await consumer.subscribe({ topics: [topic] });
try {
  for await (const r of consumer) {
    out += `P ${r.partition} ${r.offset}\n`;
    flush();
  }
} catch (err) {
  flush();
  process.stderr.write(`member failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}
