// The cluster harness's own guarantees, apart from any cluster behaviour: free ports are
// distinct, and a cluster whose brokers cannot start fails with their output and leaves no
// process, temp dir, proxy or namespace behind, for each network kind this machine has.
import { readdirSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { UV_THREADPOOL_SIZE_DEFAULT } from '@streambus/broker';
import { describe, expect, it } from 'vitest';
import {
  type ClusterNetwork,
  clusterNetworkFor,
  freePorts,
  TestCluster,
} from './cluster-harness.js';
import { testNamespaces } from './netns.js';

// This process's only (other test files run alongside in their own processes, with their own
// clusters, dirs and namespaces coming and going meanwhile).
function clusterDirs(): string[] {
  return readdirSync(tmpdir()).filter((d) => d.startsWith(`streambus-cluster-${process.pid}-`));
}

function ownNamespaces(): string[] {
  return testNamespaces().filter((n) => n.startsWith(`sbtest-${process.pid}-`));
}

describe('cluster harness', () => {
  it('chooses distinct free ports', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const p of ports) expect(p).toBeGreaterThan(0);
  });

  const networks: ClusterNetwork[] = ['direct', 'proxy'];
  if (clusterNetworkFor().network === 'netns') networks.push('netns');
  for (const network of networks) {
    it(`a broker that cannot start fails start() and leaves nothing behind (${network})`, async () => {
      const before = clusterDirs();
      const namespacesBefore = ownNamespaces();
      let error: Error | null = null;
      try {
        await TestCluster.start({
          nodes: 2,
          network,
          brokerArgs: ['--no-such-flag'],
          startTimeoutMs: 15_000,
        });
      } catch (err) {
        error = err as Error;
      }
      expect(error?.message).toMatch(/broker \d exited before starting/);
      // The brokers' own words are in the message (the CLI names the unknown option).
      expect(error?.message).toMatch(/unknown option '--/);
      expect(clusterDirs()).toEqual(before);
      expect(ownNamespaces()).toEqual(namespacesBefore);
    }, 30_000);
  }
  it('a start whose chosen port was taken first is made again on new ports', async () => {
    // The busy-machine race made certain: broker 2's first start is given a port already held.
    const held = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
    const heldPort = (held.address() as net.AddressInfo).port;
    let firstOfTwo = true;
    const before = clusterDirs();
    try {
      const cluster = await TestCluster.start({
        nodes: 2,
        startTimeoutMs: 20_000,
        nodeArgs: (id) => {
          if (id !== 2 || !firstOfTwo) return [];
          firstOfTwo = false;
          return ['--http', `127.0.0.1:${heldPort}`];
        },
      });
      try {
        expect(firstOfTwo).toBe(false);
        expect(cluster.size).toBe(2);
        // The harness gives its brokers the launchers' libuv pool size (thread-pool.ts).
        for (const id of [1, 2]) {
          expect(cluster.broker(id).output()).toContain(
            `"uvThreadpoolSize":${UV_THREADPOOL_SIZE_DEFAULT}`,
          );
        }
        // The thrown-away start left no dir behind: only the running cluster's own.
        expect(clusterDirs().filter((d) => !before.includes(d))).toHaveLength(1);
      } finally {
        await cluster.close();
      }
    } finally {
      await new Promise((r) => held.close(() => r(null)));
    }
    expect(clusterDirs()).toEqual(before);
  }, 90_000);
});
