// The simulated `GroupHost` of one broker process: the simulation ticks it (one tick for every
// hosted group, as the real host's one timer does), inbound messages from its `SimTransport` are
// routed to the group by key, and a group with work gets its `process()` run, never twice at
// once, again while `hasWork()` stays true (contract rules 1 and 3).
//
// `process()` is started from a microtask, never inside the call that asked for it, so a group
// that notifies from within `step`, `tick` or a proposal is not re-entered. A rejection of
// `process()` (forbidden by rule 3) and a group that keeps `hasWork()` true for more than
// `roundsMax` rounds in a row are reported to `onBug`: the checkers turn them into violations.

import type { Message, NodeId } from '@streambus/raft';
import {
  type GroupHost,
  type GroupKey,
  groupKeyString,
  type HostedGroup,
} from '../cluster/contract.js';
import type { SimTransport } from './sim-network.js';

interface Slot {
  readonly group: HostedGroup;
  running: boolean;
  /** Work was announced while `process()` ran (kept for the trace; the loop re-checks anyway). */
  again: boolean;
}

export class SimGroupHost implements GroupHost {
  private readonly slots = new Map<string, Slot>();
  private closed = false;
  /** Messages for a group this host does not hold (yet): dropped, as Raft tolerates. */
  droppedUnknownGroup = 0;

  constructor(
    readonly transport: SimTransport,
    private readonly onBug: (detail: string) => void,
    private readonly roundsMax = 10_000,
  ) {
    transport.setMessageHandler((key, m) => this.route(key, m));
    transport.setUnreachableHandler((peer) => this.unreachable(peer));
  }

  get self(): NodeId {
    return this.transport.self;
  }

  add(group: HostedGroup): void {
    const k = groupKeyString(group.key);
    if (this.slots.has(k)) throw new Error(`group ${k} already hosted on node ${this.self}`);
    this.slots.set(k, { group, running: false, again: false });
    this.kick(k);
  }

  remove(key: GroupKey): void {
    this.slots.delete(groupKeyString(key));
  }

  notify(key: GroupKey): void {
    this.kick(groupKeyString(key));
  }

  groups(): HostedGroup[] {
    return [...this.slots.values()].map((s) => s.group);
  }

  /** One tick of the broker's timer: every group ticks once. */
  tick(): void {
    if (this.closed) return;
    for (const [k, slot] of this.slots) {
      slot.group.tick();
      this.kick(k);
    }
  }

  /** The process died: nothing is ticked, routed or processed any more. */
  close(): void {
    this.closed = true;
    this.slots.clear();
  }

  private route(key: GroupKey, m: Message): void {
    if (this.closed) return;
    const k = groupKeyString(key);
    const slot = this.slots.get(k);
    if (!slot) {
      this.droppedUnknownGroup++;
      return;
    }
    slot.group.step(m);
    this.kick(k);
  }

  private unreachable(peer: NodeId): void {
    if (this.closed) return;
    for (const [k, slot] of this.slots) {
      slot.group.reportUnreachable(peer);
      this.kick(k);
    }
  }

  private kick(k: string): void {
    const slot = this.slots.get(k);
    if (!slot || this.closed) return;
    if (slot.running) {
      slot.again = true;
      return;
    }
    slot.running = true;
    queueMicrotask(() => {
      this.drive(k, slot).catch((err: unknown) =>
        this.onBug(`host loop of group ${k} on node ${this.self} failed: ${String(err)}`),
      );
    });
  }

  private async drive(k: string, slot: Slot): Promise<void> {
    let rounds = 0;
    try {
      for (;;) {
        slot.again = false;
        if (this.closed || this.slots.get(k) !== slot) return;
        if (!slot.group.hasWork()) return;
        if (++rounds > this.roundsMax) {
          this.onBug(`group ${k} on node ${this.self} kept hasWork() for ${this.roundsMax} rounds`);
          return;
        }
        try {
          await slot.group.process();
        } catch (err) {
          this.onBug(`process() of group ${k} on node ${this.self} rejected: ${String(err)}`);
          return;
        }
      }
    } finally {
      slot.running = false;
    }
  }
}
