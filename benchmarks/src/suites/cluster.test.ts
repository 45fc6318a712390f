// The cluster suite's guards on their own: it refuses to measure a cluster that does not
// replicate (a cluster of one asked for replication factor 3 fails naming what it answered), and
// its CPU reading of /proc counts this process's own work.
import { StreamBusClient } from '@streambus/client';
import { afterAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../../../test/dist/cluster-harness.js';
import { cpuSeconds, createReplicated } from './cluster.js';

describe('cluster suite guards', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const f of open.reverse()) await f().catch(() => undefined);
  });

  it('fails, saying so, when the topic does not get its replicas', async () => {
    const one = await TestCluster.start({ nodes: 1 });
    open.push(() => one.close());
    const client = new StreamBusClient({ bootstrap: one.bootstrap });
    open.push(() => client.close());
    await expect(createReplicated(client, 'rf3', 1, 3, 'none', 1500)).rejects.toThrow(
      /did not get 3 replicas .*replicas \[1\].*the cluster does not replicate/,
    );
    // With what one broker can give, the same check passes.
    await createReplicated(client, 'rf1', 1, 1, 'none', 5000);
  }, 40_000);

  it('reads CPU seconds from /proc that grow with work', () => {
    const before = cpuSeconds(process.pid);
    // Work until /proc shows 0.1 s of CPU, bounded by 5 s of wall time: on a loaded machine
    // 300 ms of wall time gave this process less than 0.1 s of CPU (a failure that was not one).
    const until = Date.now() + 5000;
    let x = 0;
    while (Date.now() < until && cpuSeconds(process.pid) - before <= 0.1) {
      for (let i = 0; i < 100_000; i++) x += Math.sqrt(x + 1);
    }
    expect(x).toBeGreaterThan(0);
    expect(cpuSeconds(process.pid) - before).toBeGreaterThan(0.1);
  });
});
