// The seams of the replicated cluster (issue 9), fixed before the pieces are built so that the
// transport, the partition replicas, the controller and the simulator can be written side by
// side and plugged together.
//
//   RaftTransport  carries Raft messages (for every group) and small RPCs between brokers.
//                  Implementations: the TCP links between brokers (cluster/peer-links.ts),
//                  `MemoryTransportHub` below (in-process tests), the simulator's faulty network.
//   HostedGroup    one Raft group on this broker (a partition replica, or the controller's
//                  metadata group). Knows nothing about timers or sockets.
//   GroupHost      drives every hosted group of a broker: one tick timer, a set of groups with
//                  pending work (never a poll of all groups), inbound messages routed by group.
//
// Rules every implementation keeps:
//   1. Time inside Raft is ticks. A group never reads the wall clock; the host ticks it.
//   2. `send` never blocks and never throws for a down link: Raft tolerates loss, so a bounded
//      queue that is full, or a link that is down, drops (and counts) the message.
//   3. A group's `process()` is never run twice at once; the host calls it again while
//      `hasWork()` is true. `process()` never rejects: a failure is the group's to handle
//      (it goes offline and says why); the host only logs a rejection as a bug.
//   4. Node ids are broker ids (>= 1). The metadata group is `METADATA_GROUP`; partition groups
//      use the topic id the controller assigned (ids start at 1 and are never reused).

import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { Message, NodeId } from '@streambus/raft';

export interface GroupKey {
  readonly topicId: number;
  readonly partition: number;
}

/** The controller quorum's metadata Raft group. */
export const METADATA_GROUP: GroupKey = Object.freeze({ topicId: 0, partition: 0 });

export function groupKeyString(key: GroupKey): string {
  return `${key.topicId}/${key.partition}`;
}

export function sameGroup(a: GroupKey, b: GroupKey): boolean {
  return a.topicId === b.topicId && a.partition === b.partition;
}

export type InboundMessageHandler = (group: GroupKey, message: Message) => void;

/** Answers a peer's RPC; a rejection is sent back to the caller as a typed error. */
export type RequestHandler = (from: NodeId, kind: string, body: Uint8Array) => Promise<Uint8Array>;

export interface RaftTransport {
  /** This broker's node id. */
  readonly self: NodeId;
  /**
   * Queues `messages` (each addressed by its `to`) of one group. Never blocks, never throws for a
   * down or full link (the message is dropped and counted); messages to one peer leave in order.
   */
  send(group: GroupKey, messages: readonly Message[]): void;
  /** Where inbound Raft messages go (set once, by the host). */
  setMessageHandler(handler: InboundMessageHandler): void;
  /**
   * One RPC to a peer (broker registration, heartbeats, forwarded admin requests). Rejects with
   * a typed StreamBusError: the peer's own error, or a retriable one for a timeout or a down link.
   */
  request(to: NodeId, kind: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Serves inbound RPCs (set once). */
  setRequestHandler(handler: RequestHandler): void;
  /** Told when a peer's link goes down (the host reports it to every group with that peer). */
  setUnreachableHandler(handler: (peer: NodeId) => void): void;
  close(): Promise<void>;
}

export interface HostedGroup {
  readonly key: GroupKey;
  /** One Raft tick. */
  tick(): void;
  /** A message from a peer for this group. */
  step(message: Message): void;
  /** The transport lost its link to `peer`. */
  reportUnreachable(peer: NodeId): void;
  /** True when a `process()` would do something (the core has a Ready, or I/O finished). */
  hasWork(): boolean;
  /**
   * Optional: true while the group is quiesced (docs/raft.md), so its `tick()` would do nothing
   * that matters; the host then stops ticking it until it is notified, stepped or told of an
   * unreachable peer (group-host.ts rule 5). Undefined: ticked always.
   */
  readonly quiesced?: boolean | undefined;
  /** One round of work: persist, send, apply, advance. Never rejects (rule 3). */
  process(): Promise<void>;
}

export interface GroupHost {
  add(group: HostedGroup): void;
  remove(key: GroupKey): void;
  /** The group has new work (a proposal, a finished read): schedule its `process()`. */
  notify(key: GroupKey): void;
}

/**
 * In-process transport for tests: every broker of a hub delivers to the others on a later
 * microtask, in order per (from, to). No faults; the simulator has its own faulty network.
 */
export class MemoryTransportHub {
  private readonly nodes = new Map<number, MemoryTransport>();

  transport(self: NodeId): MemoryTransport {
    if (this.nodes.has(self)) throw new Error(`node ${self} already on this hub`);
    const t = new MemoryTransport(self, this);
    this.nodes.set(self, t);
    return t;
  }

  /** @internal */
  peer(id: number): MemoryTransport | undefined {
    return this.nodes.get(id);
  }

  /** @internal */
  leave(id: number): void {
    this.nodes.delete(id);
  }
}

export class MemoryTransport implements RaftTransport {
  private onMessage: InboundMessageHandler = () => {};
  private onRequest: RequestHandler | null = null;
  private closed = false;

  constructor(
    readonly self: NodeId,
    private readonly hub: MemoryTransportHub,
  ) {}

  send(group: GroupKey, messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const peer = this.hub.peer(m.to);
      if (!peer) continue;
      queueMicrotask(() => peer.deliver(group, m));
    }
  }

  /** @internal */
  deliver(group: GroupKey, m: Message): void {
    if (!this.closed) this.onMessage(group, m);
  }

  setMessageHandler(handler: InboundMessageHandler): void {
    this.onMessage = handler;
  }

  async request(
    to: NodeId,
    kind: string,
    body: Uint8Array,
    _timeoutMs: number,
  ): Promise<Uint8Array> {
    const peer = this.hub.peer(to);
    if (this.closed || !peer || !peer.onRequest) {
      throw new StreamBusError(ErrorCode.NETWORK_EXCEPTION, `node ${to} is not reachable`);
    }
    return peer.onRequest(this.self, kind, body);
  }

  setRequestHandler(handler: RequestHandler): void {
    this.onRequest = handler;
  }

  setUnreachableHandler(_handler: (peer: NodeId) => void): void {}

  async close(): Promise<void> {
    this.closed = true;
    this.hub.leave(this.self);
  }
}
