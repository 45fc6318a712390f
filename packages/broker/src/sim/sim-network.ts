// The simulated network between brokers: one `SimTransport` (a `RaftTransport`) per running
// broker process, all on one `SimNetwork` driven by the simulation's clock and seed.
//
// Faults, all drawn from the seed: per-message delay (with `reorder` on, messages on one link
// overtake each other; off, a link is FIFO as TCP is), loss, duplication, symmetric partitions
// (`partition`), one-way cuts (`cut`), healing (`healLinks`), and crashed processes (`down`).
// Messages are copied on send (entry data and snapshot data included), as a real wire would, so
// a receiver can never see or change the sender's buffers. RPCs (`request`) travel the same
// links with the same delay; a request or a response that is lost or blocked ends in the
// caller's timeout (REQUEST_TIMED_OUT), a peer that is down answers NETWORK_EXCEPTION, both
// retriable. A drop for a down peer or a cut link is reported to the sender's unreachable
// handler (at most once per peer per `unreachableEveryMs`). A crash (`down`) is reported to every
// other running process after one link delay, as its TCP links closing would be (this is what
// wakes quiesced groups whose leader died); partitions and cuts stay silent.
//
// Not modelled: bandwidth, partial messages (the codec is not in the loop; cluster/ tests it),
// a process that is alive but too slow to read.

import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { Message, NodeId, SeededRandom } from '@streambus/raft';
import type {
  GroupKey,
  InboundMessageHandler,
  RaftTransport,
  RequestHandler,
} from '../cluster/contract.js';
import type { SimLoop } from './sim-loop.js';

export interface NetworkWeather {
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  readonly lossRate: number;
  readonly dupRate: number;
  /** False: each link delivers in order (TCP); true: per-message delays reorder. */
  readonly reorder: boolean;
}

export const CALM_WEATHER: NetworkWeather = Object.freeze({
  delayMinMs: 1,
  delayMaxMs: 3,
  lossRate: 0,
  dupRate: 0,
  reorder: false,
});

export interface NetworkCounters {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  blocked: number;
  requests: number;
  requestsFailed: number;
}

function cloneMessage(m: Message): Message {
  const entries = m.entries.map((e) => ({ ...e, data: e.data.slice() }));
  const snapshot = m.snapshot ? { meta: m.snapshot.meta, data: m.snapshot.data.slice() } : null;
  return { ...m, entries, snapshot };
}

const linkKey = (from: number, to: number) => from * 65536 + to;

export class SimNetwork {
  private readonly nodes = new Map<number, SimTransport>();
  private readonly blockedLinks = new Set<number>();
  private readonly linkClearAt = new Map<number, number>();
  private readonly unreachableAt = new Map<number, number>();
  weather: NetworkWeather = CALM_WEATHER;
  readonly counters: NetworkCounters = {
    sent: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    blocked: 0,
    requests: 0,
    requestsFailed: 0,
  };

  constructor(
    private readonly loop: SimLoop,
    private readonly rng: SeededRandom,
    private readonly unreachableEveryMs = 10,
  ) {}

  /** A new process of node `self` joins (its previous transport, if any, is closed). */
  transport(self: NodeId): SimTransport {
    this.nodes.get(self)?.markClosed();
    const t = new SimTransport(self, this);
    this.nodes.set(self, t);
    return t;
  }

  /** The process of `node` died: its transport stops sending and receiving. */
  down(node: NodeId): void {
    this.nodes.get(node)?.markClosed();
    this.nodes.delete(node);
    for (const peer of this.nodes.values()) {
      this.loop.at(this.weather.delayMinMs, () => {
        if (this.nodes.get(peer.self) === peer) peer.unreachable(node);
      });
    }
  }

  isBlocked(from: number, to: number): boolean {
    return this.blockedLinks.has(linkKey(from, to));
  }

  /** Cuts every link between `side` and the other nodes of `all`, both ways. */
  partition(side: ReadonlySet<number>, all: readonly number[]): void {
    for (const a of all)
      for (const b of all) if (side.has(a) !== side.has(b)) this.blockedLinks.add(linkKey(a, b));
  }

  /** Cuts the link from `from` to `to` only (one way). */
  cut(from: number, to: number): void {
    this.blockedLinks.add(linkKey(from, to));
  }

  healLinks(): void {
    this.blockedLinks.clear();
  }

  private delayMs(from: number, to: number): number {
    const w = this.weather;
    const d = w.delayMinMs + this.rng.int(w.delayMaxMs - w.delayMinMs + 1);
    if (w.reorder) return d;
    // FIFO per link: never deliver before the previous message on the same link.
    const key = linkKey(from, to);
    const at = Math.max(this.loop.now + d, this.linkClearAt.get(key) ?? 0);
    this.linkClearAt.set(key, at);
    return at - this.loop.now;
  }

  private reportUnreachable(from: SimTransport, to: number): void {
    const key = linkKey(from.self, to);
    const last = this.unreachableAt.get(key);
    if (last !== undefined && this.loop.now - last < this.unreachableEveryMs) return;
    this.unreachableAt.set(key, this.loop.now);
    from.unreachable(to as NodeId);
  }

  /** @internal */
  sendFrom(from: SimTransport, group: GroupKey, messages: readonly Message[]): void {
    for (const m of messages) {
      this.counters.sent++;
      const dest = this.nodes.get(m.to);
      if (!dest || this.isBlocked(from.self, m.to)) {
        this.counters.blocked++;
        this.reportUnreachable(from, m.to);
        continue;
      }
      if (this.rng.chance(this.weather.lossRate)) {
        this.counters.lost++;
        continue;
      }
      const copies = this.rng.chance(this.weather.dupRate) ? 2 : 1;
      if (copies === 2) this.counters.duplicated++;
      for (let i = 0; i < copies; i++) {
        const wire = cloneMessage(m);
        const g = { topicId: group.topicId, partition: group.partition };
        this.loop.at(this.delayMs(from.self, m.to), () => {
          // A link cut while the message was in flight drops it; so does a restart of either
          // end (the TCP connection it travelled on is gone).
          if (this.nodes.get(m.to) !== dest || this.isBlocked(from.self, m.to)) {
            this.counters.blocked++;
            return;
          }
          this.counters.delivered++;
          dest.deliver(g, wire);
        });
      }
    }
  }

  /** @internal */
  requestFrom(
    from: SimTransport,
    to: NodeId,
    kind: string,
    body: Uint8Array,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    this.counters.requests++;
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        fn();
      };
      const fail = (code: number, why: string) =>
        settle(() => {
          this.counters.requestsFailed++;
          reject(new StreamBusError(code, `request ${kind} to node ${to}: ${why}`));
        });
      this.loop.at(timeoutMs, () =>
        fail(ErrorCode.REQUEST_TIMED_OUT, `no answer in ${timeoutMs} ms`),
      );
      const dest = this.nodes.get(to);
      if (!dest) {
        this.loop.at(this.delayMs(from.self, to), () =>
          fail(ErrorCode.NETWORK_EXCEPTION, 'node is not reachable'),
        );
        return;
      }
      if (this.isBlocked(from.self, to) || this.rng.chance(this.weather.lossRate)) return;
      const copy = body.slice();
      this.loop.at(this.delayMs(from.self, to), () => {
        if (this.nodes.get(to) !== dest || this.isBlocked(from.self, to)) return;
        dest.serve(from.self, kind, copy).then(
          (answer) => this.respond(from, dest, () => settle(() => resolve(answer.slice()))),
          (err: unknown) => this.respond(from, dest, () => settle(() => reject(err))),
        );
      });
    });
  }

  private respond(caller: SimTransport, server: SimTransport, deliver: () => void): void {
    if (this.isBlocked(server.self, caller.self) || this.rng.chance(this.weather.lossRate)) return;
    this.loop.at(this.delayMs(server.self, caller.self), () => {
      if (this.nodes.get(caller.self) !== caller) return;
      deliver();
    });
  }
}

export class SimTransport implements RaftTransport {
  private onMessage: InboundMessageHandler = () => {};
  private onRequest: RequestHandler | null = null;
  private onUnreachable: (peer: NodeId) => void = () => {};
  private closed = false;

  constructor(
    readonly self: NodeId,
    private readonly network: SimNetwork,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  send(group: GroupKey, messages: readonly Message[]): void {
    if (this.closed || messages.length === 0) return;
    this.network.sendFrom(this, group, messages);
  }

  setMessageHandler(handler: InboundMessageHandler): void {
    this.onMessage = handler;
  }

  request(to: NodeId, kind: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) {
      return Promise.reject(
        new StreamBusError(ErrorCode.NETWORK_EXCEPTION, `transport of node ${this.self} closed`),
      );
    }
    return this.network.requestFrom(this, to, kind, body, timeoutMs);
  }

  setRequestHandler(handler: RequestHandler): void {
    this.onRequest = handler;
  }

  setUnreachableHandler(handler: (peer: NodeId) => void): void {
    this.onUnreachable = handler;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** @internal */
  markClosed(): void {
    this.closed = true;
  }

  /** @internal */
  deliver(group: GroupKey, m: Message): void {
    if (!this.closed) this.onMessage(group, m);
  }

  /** @internal */
  unreachable(peer: NodeId): void {
    if (!this.closed) this.onUnreachable(peer);
  }

  /** @internal */
  serve(from: NodeId, kind: string, body: Uint8Array): Promise<Uint8Array> {
    if (this.closed || !this.onRequest) {
      return Promise.reject(
        new StreamBusError(ErrorCode.NETWORK_EXCEPTION, `node ${this.self} serves no requests`),
      );
    }
    return this.onRequest(from, kind, body);
  }
}
