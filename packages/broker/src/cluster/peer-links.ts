// The TCP links between brokers: one connection per broker pair carries the Raft messages of
// every group the two share, and small RPCs (registration, heartbeats, forwarded admin
// requests). Implements the contract's `RaftTransport`. It does not know what a group or an RPC
// means; the wire format is in peer-frame.ts and raft-batch-codec.ts, and docs/cluster-transport.md
// sums up the rules.
//
// Rules:
//   1. One link per pair, both-dial-one-wins. Every broker dials every peer whose address it
//      knows and accepts links from known peers (the native listener hands them over, `adopt`);
//      toward a lower id it waits `yieldToLowerDialMs` first, so in the usual case only the lower
//      id dials. When two links to one peer are up at once anyway, both ends keep the one dialed
//      by the lower node id and close the other (its outstanding requests fail, rule 5); a newer
//      link from the same dialer replaces the older (the peer reconnected). Both-dial (not
//      lowest-id-dials) lets a joining broker reach the controller before the others know its
//      address.
//   2. Handshake: the dialer sends PEER_PREAMBLE and HELLO (version, from, to, cluster id); the
//      acceptor answers WELCOME or REFUSE. A wrong `to`, an unknown `from` (unless
//      `admitUnknownPeer` says yes), a version other than ours, or a cluster id other than ours
//      (when both are known) is refused with a logged, specific reason, and the link closes. A
//      handshake not finished within `handshakeTimeoutMs` closes the socket.
//   3. A lost link or a failed dial is reported to the unreachable handler and redialed after a
//      backoff that doubles from `reconnectBackoffMsMin` to `reconnectBackoffMsMax` (with
//      jitter), reset once a handshake succeeds.
//   4. `send` never blocks nor throws (contract rule 2): a message for a peer without a link, or
//      beyond the peer's `peerQueueBytesMax` (queued plus unsent socket bytes), or larger than a
//      frame, is dropped and counted. Everything queued for a peer within one turn of the event
//      loop leaves as one RAFT frame (split only at `frameBytesMax`), in send order.
//   5. RPC: correlation ids per broker; at most `requestsOutstandingMax` outstanding; each has a
//      timeout (REQUEST_TIMED_OUT). A request to a peer not linked yet (no dial failed since
//      start) waits for the link; to a peer whose link is down it fails at once with
//      NETWORK_EXCEPTION, and so
//      do requests outstanding on a link that closes (they may or may not have run). The peer's
//      own StreamBusError comes back with its code and message. Inbound requests run at most
//      `inboundRequestsMax` at once per link; beyond, TOO_MANY_INFLIGHT_REQUESTS.
//   6. A malformed inbound frame (bad framing, a body that does not decode, a message whose
//      from/to is not this link's pair) counts as malformed and closes that link only; nothing
//      of the frame is delivered.
//   7. Link liveness (`keepalive()`, called on the broker's tick): a link that sent nothing for
//      `keepaliveMs` sends an empty RAFT frame (no messages); a link that received nothing for
//      `idleTimeoutMs` is closed as dead (`idleTimeouts`), which reports the peer unreachable
//      (rule 3) and redials; not on a call that comes more than idleTimeoutMs / 2 after the
//      previous one (this process was stalled: what arrived meanwhile is not read yet, so the
//      next call decides). TCP alone notices a silently cut path only after minutes, and
//      quiesced Raft groups send nothing: this is what wakes them when their leader's broker is
//      cut off (docs/raft.md "Quiescence").
import { connect, type Socket } from 'node:net';
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';
import type { Message, NodeId } from '@streambus/raft';
import pino, { type Logger } from 'pino';
import type { GroupKey, InboundMessageHandler, RaftTransport, RequestHandler } from './contract.js';
import {
  decodeErrorResponse,
  decodeHello,
  decodeRefuse,
  decodeRequest,
  decodeResponse,
  decodeWelcome,
  encodeErrorResponse,
  encodeHello,
  encodeRefuse,
  encodeRequest,
  encodeResponse,
  encodeWelcome,
  framePartsOf,
  PEER_FRAME_HEADER_BYTES,
  PEER_PREAMBLE,
  PEER_PROTOCOL_VERSION,
  type PeerFrame,
  PeerFrameKind,
  PeerFrameParser,
} from './peer-frame.js';
import {
  decodeRaftBatch,
  encodedMessageBytes,
  encodeRaftBatch,
  type GroupMessage,
} from './raft-batch-codec.js';

export { isPeerPreamble } from './peer-frame.js';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface PeerLinksOptions {
  readonly self: NodeId;
  /** Known peers and their native listener addresses (this broker's own entry is ignored). */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /** The cluster id, when known (else set later with `setClusterId`). */
  readonly clusterId?: string;
  readonly logger?: Logger;
  /** Whether to accept a link from a node not in `peers` (a broker joining). Default: no. */
  readonly admitUnknownPeer?: (id: NodeId) => boolean;
  readonly limits?: Partial<PeerLinkLimits>;
}

export interface PeerLinkLimits {
  /** Largest link frame, header included. */
  readonly frameBytesMax: number;
  /** Raft messages queued plus socket bytes unsent, per peer, before messages are dropped. */
  readonly peerQueueBytesMax: number;
  /** Outbound RPCs awaiting an answer, all peers together. */
  readonly requestsOutstandingMax: number;
  /** Inbound RPCs being served at once, per link. */
  readonly inboundRequestsMax: number;
  readonly handshakeTimeoutMs: number;
  /** Adopted sockets still in their handshake; beyond, new ones are closed at once. */
  readonly handshakesPendingMax: number;
  readonly reconnectBackoffMsMin: number;
  readonly reconnectBackoffMsMax: number;
  /** How long a broker waits before dialing a lower id (which dials it too), rule 1. */
  readonly yieldToLowerDialMs: number;
  /** Rule 7: an idle link sends an empty frame after this long without sending. */
  readonly keepaliveMs: number;
  /** Rule 7: a link that received nothing for this long is closed (above keepaliveMs). */
  readonly idleTimeoutMs: number;
}

export const PEER_LINK_LIMITS_DEFAULT: PeerLinkLimits = Object.freeze({
  frameBytesMax: 64 * 1024 * 1024,
  peerQueueBytesMax: 32 * 1024 * 1024,
  requestsOutstandingMax: 1024,
  inboundRequestsMax: 256,
  handshakeTimeoutMs: 5_000,
  handshakesPendingMax: 64,
  reconnectBackoffMsMin: 50,
  reconnectBackoffMsMax: 2_000,
  yieldToLowerDialMs: 300,
  keepaliveMs: 500,
  idleTimeoutMs: 3_000,
});

/** Plain counters for the broker's metrics. */
export interface PeerLinkStats {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** Raft messages dropped: no link, queue full, or larger than a frame. */
  messagesDropped: number;
  /** Of those: no link to the peer (down, or not yet up) when sent or when flushed. */
  messagesDroppedNoLink: number;
  /** Of those: over `peerQueueBytesMax`. */
  messagesDroppedQueueFull: number;
  /** Dials started after a failed dial or a lost link. */
  reconnects: number;
  /** Links closed because nothing arrived for idleTimeoutMs (rule 7). */
  idleTimeouts: number;
  /** Links closed for a malformed inbound frame. */
  malformed: number;
  /** Handshakes refused, by either side. */
  refused: number;
  requestsTimedOut: number;
  /** Inbound messages, responses or handshakes ignored because their link or request was gone. */
  late: number;
  linksUp: number;
}

/** Per peer (ops metrics, issue 12): Raft messages, link frames and bytes each way. */
export interface PeerTraffic {
  messagesSent: number;
  messagesReceived: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

/** One socket, from its first byte to its close. */
class Link {
  /** The node at the other end; 0 until an inbound HELLO names it. */
  peer: NodeId;
  established = false;
  closed = false;
  inboundRequests = 0;
  /** Rule 7: when bytes last arrived and when this end last wrote (Date.now()). */
  lastReceivedMs = Date.now();
  lastSentMs = Date.now();
  private readonly parser: PeerFrameParser;
  private preamble: Buffer | null;
  private handshakeTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly owner: PeerLinks,
    readonly socket: Socket,
    /** Who dialed: this node (outbound) or the peer (inbound, known after HELLO). */
    public dialer: NodeId,
    peer: NodeId,
    inbound: boolean,
    frameBytesMax: number,
    handshakeTimeoutMs: number,
  ) {
    this.peer = peer;
    this.parser = new PeerFrameParser(frameBytesMax);
    this.preamble = inbound ? Buffer.alloc(0) : null;
    this.handshakeTimer = setTimeout(
      () => this.close(`handshake not finished within ${handshakeTimeoutMs} ms`),
      handshakeTimeoutMs,
    );
    this.handshakeTimer.unref();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    socket.on('close', () => this.close('socket closed'));
  }

  get inbound(): boolean {
    return this.dialer !== this.owner.self;
  }

  handshakeDone(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceivedMs = Date.now();
    this.owner.countReceived(chunk.length, this.peer);
    let rest = chunk;
    if (this.preamble !== null) {
      const need = PEER_PREAMBLE.length - this.preamble.length;
      const got = Buffer.concat([this.preamble, rest.subarray(0, need)]);
      rest = rest.subarray(need);
      if (!PEER_PREAMBLE.subarray(0, got.length).equals(got)) {
        this.owner.linkMalformed(this, 'the first bytes are not the peer preamble');
        return;
      }
      if (got.length < PEER_PREAMBLE.length) {
        this.preamble = got;
        return;
      }
      this.preamble = null;
    }
    let frames: PeerFrame[];
    try {
      frames = this.parser.push(rest);
    } catch (err) {
      this.owner.linkMalformed(this, describe(err));
      return;
    }
    for (const f of frames) {
      if (this.closed) return;
      this.owner.onFrame(this, f);
    }
  }

  write(parts: readonly Buffer[]): number {
    if (this.closed) return 0;
    this.lastSentMs = Date.now();
    let n = 0;
    this.socket.cork();
    for (const p of parts) {
      this.socket.write(p);
      n += p.length;
    }
    this.socket.uncork();
    return n;
  }

  /** Sends `last` (a REFUSE), then closes. */
  refuse(last: Buffer, reason: string): void {
    if (this.closed) return;
    this.write([last]);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
    this.close(reason);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handshakeDone();
    if (!this.socket.writableEnded) this.socket.destroy();
    this.owner.linkClosed(this, reason);
  }
}

interface Outstanding {
  readonly id: number;
  readonly peer: NodeId;
  readonly frame: Buffer[];
  link: Link | null;
  readonly resolve: (body: Uint8Array) => void;
  readonly reject: (err: StreamBusError) => void;
  readonly timer: NodeJS.Timeout;
}

interface Peer {
  readonly id: NodeId;
  address: PeerAddress | null;
  link: Link | null;
  /** Our dial in progress (connecting or handshaking). */
  dialing: Link | null;
  redialTimer: NodeJS.Timeout | null;
  backoffMs: number;
  /** True once a dial failed or a link was lost (the next dial is a reconnect). */
  everFailed: boolean;
  lastError: string;
  queue: GroupMessage[];
  /** Encoded bytes of each queued message, and their sum. */
  queueSizes: number[];
  queueBytes: number;
  /** Requests waiting for the first dial's handshake. */
  waiting: Outstanding[];
}

function newTraffic(): PeerTraffic {
  return {
    messagesSent: 0,
    messagesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };
}

function describe(err: unknown): string {
  return isStreamBusError(err) ? err.toString() : String(err);
}

function networkError(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.NETWORK_EXCEPTION, message);
}

export class PeerLinks implements RaftTransport {
  readonly self: NodeId;
  private clusterId: string;
  private readonly limits: PeerLinkLimits;
  private readonly logger: Logger;
  private readonly admitUnknownPeer: (id: NodeId) => boolean;
  private readonly peers = new Map<NodeId, Peer>();
  /** Inbound sockets before their HELLO. */
  private readonly pendingInbound = new Set<Link>();
  private readonly outstanding = new Map<number, Outstanding>();
  private nextCorrelationId = 1;
  private onMessage: InboundMessageHandler = () => {};
  private onRequest: RequestHandler | null = null;
  private onUnreachable: (peer: NodeId) => void = () => {};
  private flushScheduled = false;
  /** When `keepalive` last ran (rule 7: a late call means this process was stalled). */
  private keepaliveLastMs = 0;
  private readonly toFlush = new Set<Peer>();
  private closed = false;
  private readonly traffic = new Map<NodeId, PeerTraffic>();
  private readonly counters: PeerLinkStats = {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    messagesDropped: 0,
    messagesDroppedNoLink: 0,
    messagesDroppedQueueFull: 0,
    reconnects: 0,
    idleTimeouts: 0,
    malformed: 0,
    refused: 0,
    requestsTimedOut: 0,
    late: 0,
    linksUp: 0,
  };

  constructor(options: PeerLinksOptions) {
    if (!Number.isInteger(options.self) || options.self < 1) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `node id ${options.self} is not >= 1`);
    }
    this.self = options.self;
    this.clusterId = options.clusterId ?? '';
    this.limits = { ...PEER_LINK_LIMITS_DEFAULT, ...options.limits };
    const l = this.limits;
    if (
      l.frameBytesMax < 1024 ||
      l.reconnectBackoffMsMin > l.reconnectBackoffMsMax ||
      !(l.keepaliveMs > 0 && l.idleTimeoutMs > l.keepaliveMs)
    ) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `inconsistent peer link limits`);
    }
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'peer-links' });
    this.admitUnknownPeer = options.admitUnknownPeer ?? (() => false);
    for (const [id, address] of options.peers) {
      if (id !== this.self) this.addPeer(id, address);
    }
  }

  // --- RaftTransport ---------------------------------------------------------------------------

  send(group: GroupKey, messages: readonly Message[]): void {
    for (const m of messages) {
      const peer = this.peers.get(m.to);
      const link = peer?.link;
      if (this.closed || !peer || !link) {
        this.counters.messagesDropped++;
        this.counters.messagesDroppedNoLink++;
        continue;
      }
      const bytes = encodedMessageBytes(m);
      const queued = peer.queueBytes + link.socket.writableLength;
      if (queued + bytes > this.limits.peerQueueBytesMax) {
        this.counters.messagesDropped++;
        this.counters.messagesDroppedQueueFull++;
        continue;
      }
      peer.queue.push({ group, message: m });
      peer.queueSizes.push(bytes);
      peer.queueBytes += bytes;
      this.toFlush.add(peer);
    }
    if (this.toFlush.size > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushAll());
    }
  }

  setMessageHandler(handler: InboundMessageHandler): void {
    this.onMessage = handler;
  }

  setRequestHandler(handler: RequestHandler): void {
    this.onRequest = handler;
  }

  setUnreachableHandler(handler: (peer: NodeId) => void): void {
    this.onUnreachable = handler;
  }

  request(to: NodeId, kind: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) {
      return Promise.reject(new StreamBusError(ErrorCode.SHUTTING_DOWN, 'peer links are closed'));
    }
    const peer = this.peers.get(to);
    if (!peer) return Promise.reject(networkError(`node ${to} is not a known peer`));
    if (!peer.link && peer.everFailed && !peer.dialing) {
      return Promise.reject(
        networkError(`the link to node ${to} is down (${peer.lastError || 'not connected'})`),
      );
    }
    if (this.outstanding.size >= this.limits.requestsOutstandingMax) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.TOO_MANY_INFLIGHT_REQUESTS,
          `${this.outstanding.size} peer requests outstanding (max ${this.limits.requestsOutstandingMax})`,
        ),
      );
    }
    const id = this.allocateCorrelationId();
    let frame: Buffer[];
    try {
      frame = encodeRequest(id, kind, body);
    } catch (err) {
      return Promise.reject(err); // a kind longer than RPC_KIND_BYTES_MAX: INVALID_ARGUMENT
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.finish(id)) return;
        peer.waiting = peer.waiting.filter((w) => w.id !== id);
        this.counters.requestsTimedOut++;
        reject(
          new StreamBusError(
            ErrorCode.REQUEST_TIMED_OUT,
            `request ${kind} to node ${to} unanswered after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const o: Outstanding = { id, peer: to, frame, link: null, resolve, reject, timer };
      this.outstanding.set(id, o);
      if (peer.link) this.sendRequest(peer.link, o);
      else peer.waiting.push(o);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sockets: Socket[] = [];
    for (const peer of this.peers.values()) {
      if (peer.redialTimer) clearTimeout(peer.redialTimer);
      peer.redialTimer = null;
      for (const l of [peer.link, peer.dialing]) if (l) sockets.push(l.socket);
    }
    for (const l of this.pendingInbound) sockets.push(l.socket);
    for (const o of [...this.outstanding.values()]) {
      this.finish(o.id);
      o.reject(new StreamBusError(ErrorCode.SHUTTING_DOWN, 'peer links are closing'));
    }
    const closedAll = sockets.map(
      (s) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', resolve))),
    );
    for (const s of sockets) s.destroy();
    await Promise.all(closedAll);
  }

  // --- Peers and sockets -----------------------------------------------------------------------

  /** Adds a peer (a broker that joined) or updates its address; dials it if there is no link. */
  addPeer(id: NodeId, address: PeerAddress | null): void {
    if (id === this.self || this.closed) return;
    let peer = this.peers.get(id);
    if (!peer) {
      peer = {
        id,
        address,
        link: null,
        dialing: null,
        redialTimer: null,
        backoffMs: this.limits.reconnectBackoffMsMin,
        everFailed: false,
        lastError: '',
        queue: [],
        queueSizes: [],
        queueBytes: 0,
        waiting: [],
      };
      this.peers.set(id, peer);
    } else if (address) {
      peer.address = address;
    }
    if (peer.address && !peer.link && !peer.dialing && !peer.redialTimer) {
      if (peer.id > this.self) this.dial(peer);
      else this.scheduleDial(peer, this.limits.yieldToLowerDialMs);
    }
  }

  /** The cluster id, once the metadata log names it; checked in later handshakes. */
  setClusterId(clusterId: string): void {
    this.clusterId = clusterId;
  }

  /** True when a handshaken link to `peer` is up. */
  isConnected(peer: NodeId): boolean {
    return this.peers.get(peer)?.link != null;
  }

  /**
   * Takes over a socket the native listener accepted whose first bytes (`alreadyRead`, already
   * consumed from the socket) start with the peer preamble (`isPeerPreamble`). The caller
   * removes its own listeners first; from here on the socket is this object's.
   */
  adopt(socket: Socket, alreadyRead: Uint8Array): void {
    if (this.closed || this.pendingInbound.size >= this.limits.handshakesPendingMax) {
      if (!this.closed) {
        this.logger.warn(
          { handshakesPendingMax: this.limits.handshakesPendingMax },
          'too many peer handshakes in progress; closing a new one',
        );
      }
      socket.destroy();
      return;
    }
    const link = new Link(
      this,
      socket,
      0 as NodeId,
      0 as NodeId,
      true,
      this.limits.frameBytesMax,
      this.limits.handshakeTimeoutMs,
    );
    this.pendingInbound.add(link);
    if (alreadyRead.length > 0) link.onData(Buffer.from(alreadyRead));
  }

  /** Traffic per peer since start (peers this broker exchanged frames with; bounded by them). */
  peerTraffic(): ReadonlyMap<NodeId, Readonly<PeerTraffic>> {
    return this.traffic;
  }

  private trafficOf(peer: NodeId): PeerTraffic {
    let t = this.traffic.get(peer);
    if (t === undefined) {
      // Only known peers get an entry (the map stays bounded by them).
      if (!this.peers.has(peer)) {
        return newTraffic();
      }
      t = newTraffic();
      this.traffic.set(peer, t);
    }
    return t;
  }

  stats(): Readonly<PeerLinkStats> {
    let up = 0;
    for (const p of this.peers.values()) if (p.link) up++;
    this.counters.linksUp = up;
    return { ...this.counters };
  }

  private dial(peer: Peer): void {
    const address = peer.address;
    if (this.closed || !address) return;
    if (peer.everFailed) this.counters.reconnects++;
    const socket = connect({ host: address.host, port: address.port });
    const link = new Link(
      this,
      socket,
      this.self,
      peer.id,
      false,
      this.limits.frameBytesMax,
      this.limits.handshakeTimeoutMs,
    );
    peer.dialing = link;
    socket.once('connect', () => {
      if (link.closed) return;
      link.write([
        PEER_PREAMBLE,
        encodeHello({
          version: PEER_PROTOCOL_VERSION,
          from: this.self,
          to: peer.id,
          clusterId: this.clusterId,
        }),
      ]);
    });
  }

  private scheduleRedial(peer: Peer): void {
    const delay = peer.backoffMs * (0.5 + Math.random() / 2);
    peer.backoffMs = Math.min(peer.backoffMs * 2, this.limits.reconnectBackoffMsMax);
    const yieldMs = peer.id < this.self ? this.limits.yieldToLowerDialMs : 0;
    this.scheduleDial(peer, delay + yieldMs);
  }

  private scheduleDial(peer: Peer, delay: number): void {
    if (this.closed || !peer.address || peer.redialTimer || peer.link || peer.dialing) return;
    peer.redialTimer = setTimeout(() => {
      peer.redialTimer = null;
      if (!peer.link && !peer.dialing) this.dial(peer);
    }, delay);
    peer.redialTimer.unref();
  }

  // --- Link events (called by Link) ------------------------------------------------------------

  /** @internal */
  countReceived(bytes: number, peer: NodeId = 0 as NodeId): void {
    this.counters.bytesReceived += bytes;
    if (peer !== 0) this.trafficOf(peer).bytesReceived += bytes;
  }

  /** @internal */
  linkMalformed(link: Link, reason: string): void {
    this.counters.malformed++;
    this.logger.warn(
      { peer: link.peer || undefined, reason },
      'malformed peer frame; closing link',
    );
    link.close(`malformed frame: ${reason}`);
  }

  /** @internal */
  linkClosed(link: Link, reason: string): void {
    this.pendingInbound.delete(link);
    for (const o of [...this.outstanding.values()]) {
      if (o.link === link && this.finish(o.id)) {
        o.reject(networkError(`the link to node ${o.peer} closed: ${reason}`));
      }
    }
    const peer = link.peer ? this.peers.get(link.peer) : undefined;
    if (!peer || this.closed) return;
    const wasUp = peer.link === link;
    const wasDial = peer.dialing === link;
    if (!wasUp && !wasDial) return; // a loser of rule 1, or refused before it counted
    if (wasUp) peer.link = null;
    if (wasDial) peer.dialing = null;
    peer.everFailed = true;
    peer.lastError = reason;
    if (wasUp) this.logger.info({ peer: peer.id, reason }, 'peer link down');
    else this.logger.debug({ peer: peer.id, reason }, 'peer dial failed');
    if (peer.link) return;
    if (!peer.dialing) {
      // Rule 5: once a dial failed or the link was lost, requests fail fast.
      const waiting = peer.waiting;
      peer.waiting = [];
      for (const o of waiting) {
        if (this.finish(o.id)) o.reject(networkError(`node ${peer.id} is unreachable: ${reason}`));
      }
    }
    this.reportUnreachable(peer.id);
    this.scheduleRedial(peer);
  }

  /** @internal */
  onFrame(link: Link, f: PeerFrame): void {
    this.counters.framesReceived++;
    if (link.peer !== 0) this.trafficOf(link.peer).framesReceived++;
    try {
      if (!link.established) this.onHandshakeFrame(link, f);
      else this.onLinkFrame(link, f);
    } catch (err) {
      if (isStreamBusError(err)) this.linkMalformed(link, describe(err));
      else throw err;
    }
  }

  private onHandshakeFrame(link: Link, f: PeerFrame): void {
    if (f.kind === PeerFrameKind.Refuse) {
      const r = decodeRefuse(f.body);
      this.counters.refused++;
      this.logger.warn(
        { peer: link.peer || undefined, code: r.code, reason: r.reason },
        'peer refused the link',
      );
      link.close(`refused by the peer: ${r.reason}`);
      return;
    }
    if (link.inbound) {
      if (f.kind !== PeerFrameKind.Hello) {
        throw new StreamBusError(ErrorCode.INVALID_REQUEST, `expected HELLO, got kind ${f.kind}`);
      }
      const h = decodeHello(f.body);
      const refusal = this.checkHello(h.version, h.from, h.to, h.clusterId);
      if (refusal) {
        this.refuseLink(link, refusal, h.from);
        return;
      }
      link.peer = h.from;
      link.dialer = h.from;
      if (!this.peers.has(h.from)) this.addPeer(h.from, null);
      this.writeFrame(link, [
        encodeWelcome({
          version: PEER_PROTOCOL_VERSION,
          from: this.self,
          clusterId: this.clusterId,
        }),
      ]);
      this.establish(link);
      return;
    }
    if (f.kind !== PeerFrameKind.Welcome) {
      throw new StreamBusError(ErrorCode.INVALID_REQUEST, `expected WELCOME, got kind ${f.kind}`);
    }
    const w = decodeWelcome(f.body);
    let refusal: string | null = null;
    if (w.version !== PEER_PROTOCOL_VERSION) {
      refusal = `peer protocol version ${w.version}, this broker speaks ${PEER_PROTOCOL_VERSION}`;
    } else if (w.from !== link.peer) {
      refusal = `dialed node ${link.peer} but node ${w.from} answered`;
    } else {
      refusal = this.clusterMismatch(w.clusterId);
    }
    if (refusal) {
      this.refuseLink(link, refusal, link.peer);
      return;
    }
    this.establish(link);
  }

  private checkHello(version: number, from: NodeId, to: NodeId, clusterId: string): string | null {
    if (version !== PEER_PROTOCOL_VERSION) {
      return `peer protocol version ${version}, this broker speaks ${PEER_PROTOCOL_VERSION}`;
    }
    if (to !== this.self) return `the link is for node ${to}, this is node ${this.self}`;
    if (from === this.self || from < 1) return `node ${from} cannot link to node ${this.self}`;
    if (!this.peers.has(from) && !this.admitUnknownPeer(from)) {
      return `node ${from} is not a known peer of node ${this.self}`;
    }
    return this.clusterMismatch(clusterId);
  }

  private clusterMismatch(clusterId: string): string | null {
    if (clusterId === '' || this.clusterId === '' || clusterId === this.clusterId) return null;
    return `the peer belongs to cluster ${clusterId}, this broker to cluster ${this.clusterId}`;
  }

  private refuseLink(link: Link, reason: string, peer: NodeId): void {
    this.counters.refused++;
    this.logger.warn({ peer: peer || undefined, reason }, 'refusing peer link');
    link.refuse(encodeRefuse({ code: ErrorCode.PEER_LINK_REFUSED, reason }), `refused: ${reason}`);
  }

  private establish(link: Link): void {
    link.handshakeDone();
    this.pendingInbound.delete(link);
    const peer = this.peers.get(link.peer);
    if (!peer || this.closed) {
      link.close('no such peer');
      return;
    }
    if (peer.dialing === link) peer.dialing = null;
    const existing = peer.link;
    if (existing && existing !== link) {
      const lower = Math.min(this.self, peer.id);
      const keepNew = existing.dialer === link.dialer || link.dialer === lower;
      const loser = keepNew ? existing : link;
      if (keepNew) peer.link = link;
      link.established = true;
      // Rule 1: the loser is closed without counting as a lost link (peer.link is the winner).
      loser.close(
        existing.dialer === link.dialer
          ? 'replaced by a newer link from the same dialer'
          : `duplicate link; node ${lower}'s dial wins`,
      );
      if (!keepNew) return;
    } else {
      peer.link = link;
      link.established = true;
    }
    peer.backoffMs = this.limits.reconnectBackoffMsMin;
    peer.lastError = '';
    if (peer.redialTimer) clearTimeout(peer.redialTimer);
    peer.redialTimer = null;
    this.logger.info({ peer: peer.id, dialer: link.dialer }, 'peer link up');
    const waiting = peer.waiting;
    peer.waiting = [];
    for (const o of waiting) if (this.outstanding.has(o.id)) this.sendRequest(link, o);
  }

  private onLinkFrame(link: Link, f: PeerFrame): void {
    switch (f.kind) {
      case PeerFrameKind.Raft: {
        // Decode it all first: a malformed frame delivers nothing (rule 6).
        const items = decodeRaftBatch(f.body);
        for (const { message } of items) {
          if (message.from !== link.peer || message.to !== this.self) {
            throw new StreamBusError(
              ErrorCode.INVALID_REQUEST,
              `message from ${message.from} to ${message.to} on the link ${link.peer}-${this.self}`,
            );
          }
        }
        this.counters.messagesReceived += items.length;
        this.trafficOf(link.peer).messagesReceived += items.length;
        for (const { group, message } of items) {
          try {
            this.onMessage(group, message);
          } catch (err) {
            this.logger.error({ err, peer: link.peer }, 'inbound message handler threw (a bug)');
          }
        }
        return;
      }
      case PeerFrameKind.Request:
        this.serveRequest(link, f.body);
        return;
      case PeerFrameKind.Response: {
        const r = decodeResponse(f.body);
        this.answered(link, r.correlationId)?.resolve(r.body);
        return;
      }
      case PeerFrameKind.Error: {
        const e = decodeErrorResponse(f.body);
        this.answered(link, e.correlationId)?.reject(new StreamBusError(e.code, e.message));
        return;
      }
      case PeerFrameKind.Refuse: {
        const r = decodeRefuse(f.body);
        this.logger.warn({ peer: link.peer, reason: r.reason }, 'peer closed the link');
        link.close(`closed by the peer: ${r.reason}`);
        return;
      }
      default:
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `handshake frame kind ${f.kind} on an established link`,
        );
    }
  }

  private serveRequest(link: Link, body: Buffer): void {
    const req = decodeRequest(body);
    const answerError = (code: number, message: string) =>
      this.writeFrame(link, [encodeErrorResponse(req.correlationId, code, message)]);
    const handler = this.onRequest;
    if (!handler) {
      answerError(ErrorCode.INVALID_REQUEST, `node ${this.self} serves no peer requests yet`);
      return;
    }
    if (link.inboundRequests >= this.limits.inboundRequestsMax) {
      answerError(
        ErrorCode.TOO_MANY_INFLIGHT_REQUESTS,
        `${link.inboundRequests} requests from node ${link.peer} in progress`,
      );
      return;
    }
    link.inboundRequests++;
    const from = link.peer;
    Promise.resolve()
      .then(() => handler(from, req.kind, req.body))
      .then(
        (out) => {
          link.inboundRequests--;
          if (!link.closed) this.writeFrame(link, encodeResponse(req.correlationId, out));
          else this.counters.late++;
        },
        (err: unknown) => {
          link.inboundRequests--;
          const code = isStreamBusError(err) ? err.code : ErrorCode.UNKNOWN_SERVER_ERROR;
          const message = err instanceof Error ? err.message : String(err);
          if (!isStreamBusError(err)) {
            this.logger.error({ err, kind: req.kind, from }, 'peer request handler failed');
          }
          if (!link.closed) answerError(code, message);
          else this.counters.late++;
        },
      )
      .catch((err: unknown) => this.logger.error({ err }, 'answering a peer request failed'));
  }

  private sendRequest(link: Link, o: Outstanding): void {
    o.link = link;
    this.writeFrame(link, o.frame);
  }

  private writeFrame(link: Link, parts: readonly Buffer[]): void {
    const n = link.write(parts);
    if (n > 0) {
      this.counters.framesSent++;
      this.counters.bytesSent += n;
      if (link.peer !== 0) {
        const t = this.trafficOf(link.peer);
        t.framesSent++;
        t.bytesSent += n;
      }
    }
  }

  /** The request an answer on `link` settles, removed; null (counted late) when gone. */
  private answered(link: Link, correlationId: number): Outstanding | null {
    const o = this.outstanding.get(correlationId);
    if (!o || o.link !== link || !this.finish(o.id)) {
      this.counters.late++;
      return null;
    }
    return o;
  }

  /** Removes an outstanding request; false when it was already answered or failed. */
  private finish(id: number): boolean {
    const o = this.outstanding.get(id);
    if (!o) return false;
    clearTimeout(o.timer);
    this.outstanding.delete(id);
    return true;
  }

  private allocateCorrelationId(): number {
    for (;;) {
      const id = this.nextCorrelationId;
      this.nextCorrelationId = id >= 0xffffffff ? 1 : id + 1;
      if (!this.outstanding.has(id)) return id;
    }
  }

  private reportUnreachable(peer: NodeId): void {
    try {
      this.onUnreachable(peer);
    } catch (err) {
      this.logger.error({ err, peer }, 'unreachable handler threw (a bug)');
    }
  }

  /**
   * Rule 7, on the broker's tick: empty frames on links idle for keepaliveMs, and links that
   * received nothing for idleTimeoutMs closed (reported unreachable, redialed).
   */
  keepalive(nowMs: number = Date.now()): void {
    if (this.closed) return;
    const stalled =
      this.keepaliveLastMs > 0 && nowMs - this.keepaliveLastMs > this.limits.idleTimeoutMs / 2;
    this.keepaliveLastMs = nowMs;
    for (const peer of this.peers.values()) {
      const link = peer.link;
      if (!link || link.closed) continue;
      if (!stalled && nowMs - link.lastReceivedMs >= this.limits.idleTimeoutMs) {
        this.counters.idleTimeouts++;
        link.close(`nothing received from node ${peer.id} for ${nowMs - link.lastReceivedMs} ms`);
        continue;
      }
      if (nowMs - link.lastSentMs >= this.limits.keepaliveMs && !this.toFlush.has(peer)) {
        const body = encodeRaftBatch([]);
        this.writeFrame(link, framePartsOf(PeerFrameKind.Raft, body.parts, body.bytes));
      }
    }
  }

  private flushAll(): void {
    this.flushScheduled = false;
    const peers = [...this.toFlush];
    this.toFlush.clear();
    for (const peer of peers) this.flush(peer);
  }

  /** Rule 4: the peer's queue as few frames as `frameBytesMax` allows, in order. */
  private flush(peer: Peer): void {
    const queue = peer.queue;
    const sizes = peer.queueSizes;
    peer.queue = [];
    peer.queueSizes = [];
    peer.queueBytes = 0;
    const link = peer.link;
    if (!link || link.closed) {
      this.counters.messagesDropped += queue.length;
      this.counters.messagesDroppedNoLink += queue.length;
      return;
    }
    const bodyBytesMax = this.limits.frameBytesMax - PEER_FRAME_HEADER_BYTES - 4;
    let start = 0;
    let bytes = 0;
    const emit = (end: number) => {
      if (end <= start) return;
      const slice = queue.slice(start, end);
      const body = encodeRaftBatch(slice);
      this.writeFrame(link, framePartsOf(PeerFrameKind.Raft, body.parts, body.bytes));
      this.counters.messagesSent += slice.length;
      this.trafficOf(peer.id).messagesSent += slice.length;
    };
    for (let i = 0; i < queue.length; i++) {
      const m = sizes[i]!;
      if (m > bodyBytesMax) {
        emit(i);
        this.counters.messagesDropped++;
        this.logger.warn(
          { peer: peer.id, bytes: m, frameBytesMax: this.limits.frameBytesMax },
          'raft message larger than a peer frame dropped',
        );
        start = i + 1;
        bytes = 0;
        continue;
      }
      if (bytes + m > bodyBytesMax) {
        emit(i);
        start = i;
        bytes = 0;
      }
      bytes += m;
    }
    emit(queue.length);
  }
}
