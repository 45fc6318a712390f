// End to end: three brokers' PeerLinks and RaftGroupHosts on 127.0.0.1 carrying 60 real Raft
// groups (in-memory storage). Every group elects a leader, commits proposals on all three, and
// after one broker's links close the other two elect new leaders for the groups it led.
import { createServer, type Server } from 'node:net';
import { type NodeId, StateRole } from '@streambus/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { RaftGroupHost } from './group-host.js';
import { MemoryRaftGroup } from './memory-raft-group.js';
import { isPeerPreamble, type PeerAddress, PeerLinks } from './peer-links.js';

interface Broker {
  readonly id: NodeId;
  readonly links: PeerLinks;
  readonly host: RaftGroupHost;
  readonly groups: MemoryRaftGroup[];
  readonly server: Server;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function startCluster(groupCount: number): Promise<Broker[]> {
  const ids = [1, 2, 3] as NodeId[];
  const holders = new Map<NodeId, { links?: PeerLinks }>();
  const servers = new Map<NodeId, Server>();
  const addresses = new Map<NodeId, PeerAddress>();
  for (const id of ids) {
    const holder: { links?: PeerLinks } = {};
    holders.set(id, holder);
    const server = createServer((socket) => {
      socket.once('data', (first: Buffer) => {
        if (holder.links && isPeerPreamble(first)) holder.links.adopt(socket, first);
        else socket.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const a = server.address();
    if (!a || typeof a === 'string') throw new Error('no port');
    addresses.set(id, { host: '127.0.0.1', port: a.port });
    servers.set(id, server);
  }
  return ids.map((id) => {
    const links = new PeerLinks({ self: id, peers: addresses, clusterId: 'e2e' });
    holders.get(id)!.links = links;
    const host = new RaftGroupHost({ transport: links, tickIntervalMs: 10 });
    const groups: MemoryRaftGroup[] = [];
    for (let p = 0; p < groupCount; p++) {
      const g = new MemoryRaftGroup({ topicId: 1 + (p % 3), partition: p }, id, ids, links);
      groups.push(g);
      host.add(g);
    }
    cleanups.push(async () => {
      await host.close();
      await links.close();
    });
    return { id, links, host, groups, server: servers.get(id)! };
  });
}

function leaderOf(brokers: readonly Broker[], p: number): Broker | undefined {
  return brokers.find((b) => b.groups[p]!.node.currentRole === StateRole.Leader);
}

describe('PeerLinks + RaftGroupHost with real Raft groups', () => {
  it('elects, replicates and fails over 60 groups between three brokers', async () => {
    const groupCount = 60;
    const brokers = await startCluster(groupCount);
    await waitFor('a leader in every group', () =>
      [...Array(groupCount).keys()].every((p) => leaderOf(brokers, p) !== undefined),
    );
    for (let p = 0; p < groupCount; p++) {
      const leader = leaderOf(brokers, p)!;
      leader.groups[p]!.node.propose(Buffer.from(`record ${p}`));
      leader.host.notify(leader.groups[p]!.key);
    }
    const committedEverywhere = (bs: readonly Broker[], p: number, text: string) =>
      bs.every((b) => b.groups[p]!.committed.some((e) => Buffer.from(e.data).toString() === text));
    await waitFor('every proposal committed on all three', () =>
      [...Array(groupCount).keys()].every((p) => committedEverywhere(brokers, p, `record ${p}`)),
    );
    // One frame carries many groups: far fewer frames than messages.
    const s = brokers[0]!.links.stats();
    expect(s.messagesSent).toBeGreaterThan(5 * s.framesSent);
    expect(s.malformed + s.refused).toBe(0);
    // Leaders stay stable on the coalesced heartbeats (raft-batch-codec.ts rule 4): over 60
    // ticks of heartbeat rounds no group changes term or leader.
    const terms = brokers.map((b) => b.groups.map((g) => g.node.currentTerm));
    const leaders = [...Array(groupCount).keys()].map((p) => leaderOf(brokers, p)?.id);
    const sentBefore = s.messagesSent;
    await new Promise((r) => setTimeout(r, 600));
    expect(brokers.map((b) => b.groups.map((g) => g.node.currentTerm))).toEqual(terms);
    expect([...Array(groupCount).keys()].map((p) => leaderOf(brokers, p)?.id)).toEqual(leaders);
    expect(brokers[0]!.links.stats().messagesSent).toBeGreaterThan(sentBefore + groupCount);

    // Broker 3 goes away; the groups it led elect a leader among the other two and commit.
    const gone = brokers[2]!;
    const led = [...Array(groupCount).keys()].filter((p) => leaderOf(brokers, p) === gone);
    expect(led.length).toBeGreaterThan(0);
    await gone.host.close();
    await gone.links.close();
    const rest = brokers.slice(0, 2);
    await waitFor('new leaders', () => led.every((p) => leaderOf(rest, p) !== undefined));
    for (const p of led) {
      const leader = leaderOf(rest, p)!;
      leader.groups[p]!.node.propose(Buffer.from(`after ${p}`));
      leader.host.notify(leader.groups[p]!.key);
    }
    await waitFor('committed on the two', () =>
      led.every((p) => committedEverywhere(rest, p, `after ${p}`)),
    );
  });
});
