// Broker-wide byte budgets shared by every connection (connection.ts):
//   inbound   bytes of request frames being received (a frame's declared size is reserved when
//             its header arrives and released when the frame is complete or its connection
//             closes); a connection that cannot reserve stops reading and waits in FIFO order.
//   outbound  bytes of responses produced but not yet taken by the kernel (queued responses,
//             the socket's write buffer, and fetch reads reserved in advance); a fetch that
//             cannot reserve answers with less data instead of waiting.
// Pure bookkeeping: no sockets, no timers. Invariants: 0 <= used; used <= capacity except by
// `charge` (an after-the-fact count of bytes that already exist, never of a reservation).
import assert from 'node:assert/strict';
import { Gauge, type Registry } from 'prom-client';

export interface BudgetWaiter {
  readonly bytes: number;
  readonly grant: () => void;
}

export class ByteBudget {
  private usedBytes = 0;
  private readonly waiters: BudgetWaiter[] = [];

  constructor(
    readonly name: string,
    readonly capacityBytes: number,
  ) {
    assert.ok(Number.isSafeInteger(capacityBytes) && capacityBytes > 0, `${name} capacity`);
  }

  get used(): number {
    return this.usedBytes;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Reserves `bytes` if they fit (and nobody waits ahead); false otherwise. */
  tryReserve(bytes: number): boolean {
    if (!(bytes >= 0)) assert.fail(`${this.name}: reserve ${bytes}`);
    if (this.waiters.length > 0 || this.usedBytes + bytes > this.capacityBytes) return false;
    this.usedBytes += bytes;
    return true;
  }

  /**
   * Queues a reservation of `bytes` (at most the capacity) granted in FIFO order as bytes free
   * up; `grant` runs once the bytes are reserved. Returns a cancel function (no-op once granted).
   */
  wait(bytes: number, grant: () => void): () => void {
    assert.ok(bytes > 0 && bytes <= this.capacityBytes, `${this.name}: wait for ${bytes}`);
    const waiter: BudgetWaiter = { bytes, grant };
    this.waiters.push(waiter);
    this.grantWaiters();
    return () => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
      this.grantWaiters();
    };
  }

  /** Adds (or, negative, removes) bytes that exist already; may pass the capacity. */
  charge(bytes: number): void {
    this.usedBytes += bytes;
    // On every response: no message string built unless it fails.
    if (this.usedBytes < 0) assert.fail(`${this.name}: used ${this.usedBytes} < 0`);
    if (bytes < 0) this.grantWaiters();
  }

  release(bytes: number): void {
    this.charge(-bytes);
  }

  private grantWaiters(): void {
    while (this.waiters.length > 0) {
      const head = this.waiters[0]!;
      if (this.usedBytes + head.bytes > this.capacityBytes) return;
      this.waiters.shift();
      this.usedBytes += head.bytes;
      head.grant();
    }
  }
}

export interface BrokerBudgets {
  readonly inbound: ByteBudget;
  readonly outbound: ByteBudget;
}

/**
 * The broker's budgets. The inbound one holds at least one whole frame (a frame waiting for a
 * reservation must be able to get one), the outbound one at least one connection's share.
 */
export function brokerBudgets(limits: {
  frameBytesMax: number;
  brokerInboundBytesMax: number;
  outboundBytesMax: number;
  brokerOutboundBytesMax: number;
}): BrokerBudgets {
  return {
    inbound: new ByteBudget(
      'inbound frames',
      Math.max(limits.brokerInboundBytesMax, limits.frameBytesMax),
    ),
    outbound: new ByteBudget(
      'outbound responses',
      Math.max(limits.brokerOutboundBytesMax, limits.outboundBytesMax),
    ),
  };
}

/**
 * `streambus_inbound_frame_bytes` (reserved for frames being received),
 * `streambus_inbound_waiting_connections` and `streambus_outbound_bytes` (responses not yet
 * taken by the kernel), computed at scrape time.
 */
export function registerBudgetGauges(registry: Registry, budgets: BrokerBudgets): void {
  const registers = [registry];
  new Gauge({
    name: 'streambus_inbound_frame_bytes',
    help: 'Bytes reserved broker-wide for request frames being received (limits.brokerInboundBytesMax)',
    registers,
    collect() {
      this.set(budgets.inbound.used);
    },
  });
  new Gauge({
    name: 'streambus_inbound_waiting_connections',
    help: 'Connections not reading while they wait for inbound frame budget',
    registers,
    collect() {
      this.set(budgets.inbound.waiting);
    },
  });
  new Gauge({
    name: 'streambus_outbound_bytes',
    help: 'Response bytes produced but not yet sent, broker-wide (limits.brokerOutboundBytesMax)',
    registers,
    collect() {
      this.set(budgets.outbound.used);
    },
  });
}
