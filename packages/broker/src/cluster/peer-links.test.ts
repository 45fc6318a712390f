// PeerLinks over real sockets on 127.0.0.1: each node has its own net.Server that hands peer
// sockets to `adopt`, as the broker's native listener will. Covers coalescing and order for
// 1,000 groups, reconnect, RPC outcomes, a malformed frame closing one link only, handshake
// refusals and the outbound queue bound.
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';
import { type LogIndex, type Message, message, type NodeId, type Term } from '@streambus/raft';
import { afterEach, describe, expect, it } from 'vitest';
import type { GroupKey } from './contract.js';
import {
  decodeRefuse,
  encodeHello,
  isPeerPreamble,
  PEER_PREAMBLE,
  PEER_PROTOCOL_VERSION,
  PeerFrameKind,
  PeerFrameParser,
} from './peer-frame.js';
import { type PeerAddress, type PeerLinkLimits, PeerLinks } from './peer-links.js';

interface Node {
  readonly id: NodeId;
  readonly server: Server;
  readonly accepted: Set<Socket>;
  links: PeerLinks;
  readonly inbox: { group: GroupKey; message: Message }[];
  readonly unreachable: NodeId[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port };
}

/** Starts `count` nodes (ids 1..count) that all know each other. */
async function cluster(
  count: number,
  opts: { limits?: Partial<PeerLinkLimits>; clusterIds?: string[] } = {},
): Promise<Node[]> {
  const nodes: Node[] = [];
  const addresses = new Map<NodeId, PeerAddress>();
  for (let i = 1; i <= count; i++) {
    const accepted = new Set<Socket>();
    const holder: { node?: Node } = {};
    const { server, port } = await listen((socket) => {
      accepted.add(socket);
      socket.on('close', () => accepted.delete(socket));
      socket.once('data', (first: Buffer) => {
        if (isPeerPreamble(first) && holder.node) holder.node.links.adopt(socket, first);
        else socket.destroy();
      });
    });
    addresses.set(i as NodeId, { host: '127.0.0.1', port });
    const node: Node = {
      id: i as NodeId,
      server,
      accepted,
      links: undefined as unknown as PeerLinks,
      inbox: [],
      unreachable: [],
    };
    holder.node = node;
    nodes.push(node);
  }
  for (const node of nodes) {
    node.links = new PeerLinks({
      self: node.id,
      peers: addresses,
      clusterId: opts.clusterIds?.[node.id - 1] ?? 'cluster-a',
      limits: { reconnectBackoffMsMin: 10, reconnectBackoffMsMax: 100, ...opts.limits },
    });
    node.links.setMessageHandler((group, m) => node.inbox.push({ group, message: m }));
    node.links.setUnreachableHandler((peer) => node.unreachable.push(peer));
    const links = node.links;
    cleanups.push(() => links.close());
  }
  return nodes;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function allConnected(nodes: Node[]): boolean {
  return nodes.every((a) => nodes.every((b) => a === b || a.links.isConnected(b.id)));
}

function heartbeat(from: NodeId, to: NodeId, seq: number): Message {
  return message({
    type: 'heartbeat',
    from,
    to,
    term: 1 as Term,
    commit: seq as LogIndex,
  });
}

describe('PeerLinks', () => {
  it('keepalive: an idle link sends an empty frame (nothing delivered); a silent one is closed, reported and redialed', async () => {
    const [a, b] = await cluster(2, { limits: { keepaliveMs: 50, idleTimeoutMs: 400 } });
    await waitFor('link up', () => allConnected([a!, b!]));
    const before = b!.links.stats().framesReceived;
    await new Promise((r) => setTimeout(r, 60));
    a!.links.keepalive();
    await waitFor('keepalive frame', () => b!.links.stats().framesReceived > before);
    expect(b!.inbox).toEqual([]);
    // b keeps hearing from a, so it keeps the link; a pretends b has been silent too long.
    b!.links.keepalive();
    expect(b!.links.stats().idleTimeouts).toBe(0);
    // A call long after the previous one (this process stalled) decides nothing yet.
    a!.links.keepalive(Date.now() + 1_000);
    expect(a!.links.stats().idleTimeouts).toBe(0);
    a!.links.keepalive(Date.now() + 1_050);
    expect(a!.links.stats().idleTimeouts).toBe(1);
    expect(a!.unreachable).toContain(b!.id);
    await waitFor('redialed', () => allConnected([a!, b!]));
  });

  it('carries 1,000 groups between 3 nodes, in order per peer, one frame per peer per turn', async () => {
    const nodes = await cluster(3);
    await waitFor('links up', () => allConnected(nodes));
    const before = nodes.map((n) => n.links.stats().framesSent);
    // Per peer (the ops metrics streambus_peer_frames_{sent,received}_total): frames each way.
    const peerFrames = (n: Node, peer: NodeId) => {
      const t = n.links.peerTraffic().get(peer);
      return { sent: t?.framesSent ?? 0, received: t?.framesReceived ?? 0 };
    };
    const perPeerBefore = nodes.map((n) => nodes.map((p) => peerFrames(n, p.id)));
    const groups = 1000;
    // One "tick": every node sends one heartbeat per group to each other node, synchronously.
    for (const n of nodes) {
      for (let g = 0; g < groups; g++) {
        const to = nodes.filter((p) => p !== n).map((p) => heartbeat(n.id, p.id, g));
        n.links.send({ topicId: 1 + (g % 50), partition: g }, to);
      }
    }
    await waitFor('all delivered', () => nodes.every((n) => n.inbox.length === 2 * groups));
    for (const n of nodes) {
      // Two peers, one frame each: the whole tick coalesced.
      expect(n.links.stats().framesSent - before[n.id - 1]!).toBe(2);
      for (const p of nodes) {
        if (p === n) continue;
        const was = perPeerBefore[n.id - 1]![p.id - 1]!;
        const now = peerFrames(n, p.id);
        expect({ sent: now.sent - was.sent, received: now.received - was.received }).toEqual({
          sent: 1,
          received: 1,
        });
        const fromP = n.inbox.filter((x) => x.message.from === p.id);
        expect(fromP.map((x) => x.message.commit)).toEqual([...Array(groups).keys()]);
        expect(fromP.map((x) => x.group.partition)).toEqual([...Array(groups).keys()]);
        expect(fromP.every((x) => x.message.to === n.id && x.group.topicId >= 1)).toBe(true);
      }
    }
    // The other turn's messages leave in a frame of their own.
    nodes[0]!.links.send({ topicId: 1, partition: 0 }, [heartbeat(1 as NodeId, 2 as NodeId, 7)]);
    await waitFor('late one', () => nodes[1]!.inbox.length === 2 * groups + 1);
    expect(nodes[0]!.links.stats().framesSent - before[0]!).toBe(3);
  });

  it('keeps one link per pair when both sides dial at once', async () => {
    const nodes = await cluster(3, { limits: { yieldToLowerDialMs: 0 } });
    await waitFor('links up', () => allConnected(nodes));
    // Every accepted socket still open is the one link of its pair: 3 pairs in all.
    await waitFor('duplicates closed', () => nodes.reduce((n, x) => n + x.accepted.size, 0) === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(nodes.reduce((n, x) => n + x.accepted.size, 0)).toBe(3);
    expect(allConnected(nodes)).toBe(true);
    for (const n of nodes) {
      for (const p of nodes) {
        if (p !== n) n.links.send({ topicId: 2, partition: 0 }, [heartbeat(n.id, p.id, n.id)]);
      }
    }
    await waitFor('each pair delivers', () => nodes.every((n) => n.inbox.length === 2));
  });

  it('reconnects after a link socket is destroyed, and reports the peer unreachable', async () => {
    const nodes = await cluster(2);
    const [a, b] = nodes as [Node, Node];
    await waitFor('links up', () => allConnected(nodes));
    for (const s of [...a.accepted, ...b.accepted]) s.destroy();
    await waitFor('link down seen', () => a.unreachable.includes(b.id));
    await waitFor('links back', () => allConnected(nodes));
    expect(a.links.stats().reconnects + b.links.stats().reconnects).toBeGreaterThan(0);
    a.links.send({ topicId: 3, partition: 1 }, [heartbeat(a.id, b.id, 42)]);
    await waitFor('delivered after reconnect', () => b.inbox.some((x) => x.message.commit === 42));
  });

  it('drops messages beyond the peer queue bound and counts them', async () => {
    const nodes = await cluster(2, { limits: { peerQueueBytesMax: 64 * 1024 } });
    const [a, b] = nodes as [Node, Node];
    await waitFor('links up', () => allConnected(nodes));
    const big = (seq: number) =>
      message({
        type: 'append',
        from: a.id,
        to: b.id,
        term: 1 as Term,
        commit: seq as LogIndex,
        entries: [{ term: 1 as Term, index: 1 as LogIndex, type: 0, data: Buffer.alloc(20_000) }],
      });
    for (let i = 0; i < 10; i++) a.links.send({ topicId: 1, partition: 0 }, [big(i)]);
    const dropped = a.links.stats().messagesDropped;
    expect(dropped).toBe(7);
    await waitFor('the queued three', () => b.inbox.length === 3);
    expect(b.inbox.map((x) => x.message.commit)).toEqual([0, 1, 2]);
    // To a node with no link: dropped, never thrown.
    a.links.send({ topicId: 1, partition: 0 }, [heartbeat(a.id, 9 as NodeId, 1)]);
    expect(a.links.stats().messagesDropped).toBe(dropped + 1);
  });

  describe('RPC', () => {
    it('answers, carries a remote typed error back, times out and fails fast for a down peer', async () => {
      const nodes = await cluster(2);
      const [a, b] = nodes as [Node, Node];
      let parked = 0;
      b.links.setRequestHandler(async (from, kind, body) => {
        if (kind === 'echo') return Buffer.concat([Buffer.from(`${from}:`), body]);
        if (kind === 'park') {
          parked++;
          return new Promise<Uint8Array>(() => {});
        }
        throw new StreamBusError(ErrorCode.NOT_CONTROLLER, `node ${b.id} is not the controller`);
      });
      // The first dial is in progress: the request waits for it rather than failing.
      const echoed = await a.links.request(b.id, 'echo', Buffer.from('hi'), 2_000);
      expect(Buffer.from(echoed).toString()).toBe('1:hi');

      const remote = await a.links.request(b.id, 'admin', Buffer.alloc(0), 2_000).catch((e) => e);
      expect(isStreamBusError(remote, ErrorCode.NOT_CONTROLLER)).toBe(true);
      expect(remote.message).toBe('node 2 is not the controller');
      expect(remote.retriable).toBe(true);

      const timedOut = await a.links.request(b.id, 'park', Buffer.alloc(0), 50).catch((e) => e);
      expect(isStreamBusError(timedOut, ErrorCode.REQUEST_TIMED_OUT)).toBe(true);
      expect(parked).toBe(1);
      expect(a.links.stats().requestsTimedOut).toBe(1);

      // An outstanding request fails when its link closes.
      const pending = a.links.request(b.id, 'park', Buffer.alloc(0), 5_000).catch((e) => e);
      await waitFor('parked twice', () => parked === 2);
      await b.links.close();
      const lost = await pending;
      expect(isStreamBusError(lost, ErrorCode.NETWORK_EXCEPTION)).toBe(true);
      await waitFor('link down', () => !a.links.isConnected(b.id));
      const started = Date.now();
      const down = await a.links.request(b.id, 'echo', Buffer.alloc(0), 5_000).catch((e) => e);
      expect(isStreamBusError(down, ErrorCode.NETWORK_EXCEPTION)).toBe(true);
      expect(Date.now() - started).toBeLessThan(1_000);
      const unknown = await a.links
        .request(7 as NodeId, 'echo', Buffer.alloc(0), 100)
        .catch((e) => e);
      expect(isStreamBusError(unknown, ErrorCode.NETWORK_EXCEPTION)).toBe(true);
      expect(unknown.message).toMatch(/not a known peer/);
    });

    it('bounds outstanding requests', async () => {
      const nodes = await cluster(2, { limits: { requestsOutstandingMax: 2 } });
      const [a, b] = nodes as [Node, Node];
      b.links.setRequestHandler(() => new Promise<Uint8Array>(() => {}));
      await waitFor('links up', () => allConnected(nodes));
      const p1 = a.links.request(b.id, 'x', Buffer.alloc(0), 200).catch((e) => e);
      const p2 = a.links.request(b.id, 'x', Buffer.alloc(0), 200).catch((e) => e);
      const third = await a.links.request(b.id, 'x', Buffer.alloc(0), 200).catch((e) => e);
      expect(isStreamBusError(third, ErrorCode.TOO_MANY_INFLIGHT_REQUESTS)).toBe(true);
      expect(isStreamBusError(await p1, ErrorCode.REQUEST_TIMED_OUT)).toBe(true);
      expect(isStreamBusError(await p2, ErrorCode.REQUEST_TIMED_OUT)).toBe(true);
      const badKind = await a.links
        .request(b.id, 'k'.repeat(300), Buffer.alloc(0), 200)
        .catch((e) => e);
      expect(isStreamBusError(badKind, ErrorCode.INVALID_ARGUMENT)).toBe(true);
    });
  });
});

/** A raw socket speaking the peer protocol by hand, to play a broken or hostile peer. */
async function rawPeer(port: number): Promise<{
  socket: Socket;
  frames: { kind: number; body: Buffer }[];
  closed: Promise<void>;
}> {
  const socket = tcpConnect({ host: '127.0.0.1', port });
  cleanups.push(() => {
    socket.destroy();
  });
  const frames: { kind: number; body: Buffer }[] = [];
  const parser = new PeerFrameParser(1 << 20);
  socket.on('data', (c: Buffer) => frames.push(...parser.push(c)));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, frames, closed };
}

function portOf(node: Node): number {
  const a = node.server.address();
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

describe('PeerLinks against a broken peer', () => {
  it('a malformed frame closes that link only; the other two links keep working', async () => {
    const nodes = await cluster(3);
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    await waitFor('links up', () => allConnected(nodes));
    // Pose as node 2 on a new link to node 3 (it replaces 2's own link: same dialer), then
    // send a RAFT frame whose body is garbage.
    const raw = await rawPeer(portOf(n3));
    raw.socket.write(
      Buffer.concat([
        PEER_PREAMBLE,
        encodeHello({
          version: PEER_PROTOCOL_VERSION,
          from: n2.id,
          to: n3.id,
          clusterId: 'cluster-a',
        }),
      ]),
    );
    await waitFor('welcome', () => raw.frames.some((f) => f.kind === PeerFrameKind.Welcome));
    raw.socket.write(Buffer.from([0, 0, 0, 5, PeerFrameKind.Raft, 0xff, 0xff, 0xff, 0xff]));
    await raw.closed;
    expect(n3.links.stats().malformed).toBe(1);
    for (const [from, to] of [
      [n1, n3],
      [n3, n1],
      [n1, n2],
      [n2, n1],
    ] as const) {
      from.links.send({ topicId: 9, partition: 0 }, [heartbeat(from.id, to.id, 1000 + from.id)]);
    }
    await waitFor('other links deliver', () =>
      [n1, n2, n3].every((n) => n.inbox.filter((x) => x.group.topicId === 9).length >= 1),
    );
    expect(n1.links.stats().malformed + n2.links.stats().malformed).toBe(0);
    // The 2-3 pair recovers on its own.
    await waitFor('2-3 back', () => allConnected(nodes));
    n2.links.send({ topicId: 9, partition: 1 }, [heartbeat(n2.id, n3.id, 5)]);
    await waitFor('2-3 delivers', () => n3.inbox.some((x) => x.group.partition === 1));
  });

  it('a message naming another sender is malformed and closes the link', async () => {
    const nodes = await cluster(2);
    const [n1, n2] = nodes as [Node, Node];
    await waitFor('links up', () => allConnected(nodes));
    // Node 1 dialed node 2; a new link from "node 1" replaces it, then lies about the sender.
    const raw = await rawPeer(portOf(n2));
    raw.socket.write(
      Buffer.concat([
        PEER_PREAMBLE,
        encodeHello({ version: PEER_PROTOCOL_VERSION, from: n1.id, to: n2.id, clusterId: '' }),
      ]),
    );
    await waitFor('welcome', () => raw.frames.some((f) => f.kind === PeerFrameKind.Welcome));
    const { encodeRaftBatch } = await import('./raft-batch-codec.js');
    const { framePartsOf } = await import('./peer-frame.js');
    const forged = heartbeat(3 as NodeId, n2.id, 1);
    const body = encodeRaftBatch([{ group: { topicId: 1, partition: 0 }, message: forged }]);
    raw.socket.write(Buffer.concat(framePartsOf(PeerFrameKind.Raft, body.parts, body.bytes)));
    await raw.closed;
    expect(n2.links.stats().malformed).toBe(1);
    expect(n2.inbox.length).toBe(0);
  });

  it('refuses a wrong `to`, an unknown `from`, another cluster and a bad preamble, saying why', async () => {
    const nodes = await cluster(2);
    const n1 = nodes[0]!;
    const cases = [
      { from: 2, to: 9, clusterId: 'cluster-a', reason: /the link is for node 9, this is node 1/ },
      { from: 7, to: 1, clusterId: 'cluster-a', reason: /node 7 is not a known peer of node 1/ },
      { from: 2, to: 1, clusterId: 'cluster-b', reason: /belongs to cluster cluster-b/ },
    ];
    for (const c of cases) {
      const raw = await rawPeer(portOf(n1));
      raw.socket.write(
        Buffer.concat([
          PEER_PREAMBLE,
          encodeHello({
            version: PEER_PROTOCOL_VERSION,
            from: c.from as NodeId,
            to: c.to as NodeId,
            clusterId: c.clusterId,
          }),
        ]),
      );
      await raw.closed;
      const refuse = raw.frames.find((f) => f.kind === PeerFrameKind.Refuse);
      expect(refuse).toBeDefined();
      const r = decodeRefuse(refuse!.body);
      expect(r.code).toBe(ErrorCode.PEER_LINK_REFUSED);
      expect(r.reason).toMatch(c.reason);
    }
    expect(n1.links.stats().refused).toBe(3);
    // Bytes that are not the preamble after the first one: closed, counted as malformed.
    const before = n1.links.stats().malformed;
    const raw = await rawPeer(portOf(n1));
    raw.socket.write(Buffer.from([0xf5]));
    await new Promise((r) => setTimeout(r, 20));
    raw.socket.write(Buffer.from([0, 0, 0, 0, 0, 0, 0]));
    await raw.closed;
    expect(n1.links.stats().malformed).toBe(before + 1);
  });

  it('two brokers of different clusters never link', async () => {
    const nodes = await cluster(2, { clusterIds: ['cluster-a', 'cluster-b'] });
    await waitFor('refusals', () => nodes.every((n) => n.links.stats().refused >= 1));
    expect(nodes[0]!.links.isConnected(2 as NodeId)).toBe(false);
    expect(nodes[1]!.links.isConnected(1 as NodeId)).toBe(false);
  });

  it('bounds the handshakes in progress', async () => {
    const nodes = await cluster(1, { limits: { handshakesPendingMax: 2 } });
    const port = portOf(nodes[0]!);
    const raws = [await rawPeer(port), await rawPeer(port)];
    for (const r of raws) r.socket.write(PEER_PREAMBLE);
    await new Promise((r) => setTimeout(r, 30));
    const third = await rawPeer(port);
    third.socket.write(PEER_PREAMBLE);
    await third.closed;
    expect(raws.every((r) => !r.socket.destroyed && r.socket.readyState === 'open')).toBe(true);
  });
});

describe('PeerLinks with a joining broker', () => {
  it('a broker unknown to the others dials in, is admitted, and both directions work', async () => {
    const inbox: Message[] = [];
    let a: PeerLinks | null = null;
    const { port } = await listen((socket) => {
      socket.once('data', (first: Buffer) => a?.adopt(socket, first));
    });
    a = new PeerLinks({
      self: 1 as NodeId,
      peers: new Map(),
      admitUnknownPeer: (id) => id === 4,
      limits: { yieldToLowerDialMs: 0 },
    });
    const b = new PeerLinks({
      self: 4 as NodeId,
      peers: new Map([[1 as NodeId, { host: '127.0.0.1', port }]]),
      limits: { yieldToLowerDialMs: 0 },
    });
    const aLinks = a;
    cleanups.push(() => aLinks.close());
    cleanups.push(() => b.close());
    b.setRequestHandler(async (from, kind) => Buffer.from(`${kind} from ${from}`));
    a.setMessageHandler((_g, m) => inbox.push(m));
    // The joiner's registration reaches node 1 once its dial is up.
    await waitFor('joined', () => aLinks.isConnected(4 as NodeId));
    const answer = await aLinks.request(4 as NodeId, 'hello', Buffer.alloc(0), 2_000);
    expect(Buffer.from(answer).toString()).toBe('hello from 1');
    b.send({ topicId: 0, partition: 0 }, [heartbeat(4 as NodeId, 1 as NodeId, 3)]);
    await waitFor('delivered', () => inbox.length === 1);
    // A node not admitted is refused.
    const c = new PeerLinks({
      self: 5 as NodeId,
      peers: new Map([[1 as NodeId, { host: '127.0.0.1', port }]]),
      limits: { yieldToLowerDialMs: 0 },
    });
    cleanups.push(() => c.close());
    await waitFor('refused', () => c.stats().refused >= 1);
    expect(c.isConnected(1 as NodeId)).toBe(false);
  });
});
