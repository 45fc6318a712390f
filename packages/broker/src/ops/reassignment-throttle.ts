// The reassignment throttle (issue 12): a broker-wide bytes/s budget for the catch-up traffic a
// partition leader sends to replicas joining by reassignment (`reassignmentBytesPerSecond`, 0 =
// unlimited; dynamic). It sits between the partition replicas and the peer links: a Raft
// message to a throttled (group, peer) pair waits in that pair's queue until the token bucket
// holds credit for it (the bucket fills at the budget, up to one second's worth); messages of a
// pair that has a queue wait behind it, so each pair's messages leave in order. Everything else
// passes straight through. The bytes counted are the entry payloads (and a snapshot's data).
// An append larger than the credit left is split: the entries that fit leave (at least one),
// the rest stays at the head of the queue as an append that follows them. So a burst is at most
// one second of budget plus one entry, not a whole append (up to `appendBytesMax`, 1 MiB).
//
// Back-pressure: a pair holding a second of budget or more is `backlogged`, and the replica's
// Raft leader sends that follower no more appends until it drains (RaftConfig.sendPaused). So
// a pair's queue stays near one second of budget plus one append, and every byte of the budget
// carries new entries. Without it the leader kept sending (a heartbeat response frees one slot
// of its in-flight window, 64 MiB), the queue grew by an append per heartbeat past its bound,
// dropped, and the follower's rejects made the leader resend from its match: a 100 MB move
// under a 4 MiB/s budget sent 194 MB and ran at 2.2 MB/s, stalled for 20 s in the middle.
//
// Bounds: at most `queuedBytesMax` bytes and `queuedMessagesMax` messages wait in all; past
// either a message is dropped (counted), which Raft tolerates (the leader resends from the
// follower's match). A pair no longer throttled (the reassignment completed, or the budget set
// to 0) is flushed at the next pump.
import { type Message, MessageType } from '@streambus/raft';
import type { GroupKey, RaftTransport } from '../cluster/contract.js';

export interface ReassignmentThrottleOptions {
  /** The budget now, bytes per second (0 = unlimited). Read on every pump: it may change. */
  readonly bytesPerSecond: () => number;
  /** Whether messages of `group` to `to` are reassignment catch-up traffic. */
  readonly throttled: (group: GroupKey, to: number) => boolean;
  /** Where messages leave. */
  readonly send: (group: GroupKey, messages: readonly Message[]) => void;
  readonly nowMs: () => number;
  readonly queuedBytesMax?: number;
  readonly queuedMessagesMax?: number;
}

interface Pair {
  readonly group: GroupKey;
  readonly to: number;
  readonly queue: Array<{ message: Message; bytes: number }>;
  /** Entry bytes in `queue`. */
  bytes: number;
}

function pairKey(group: GroupKey, to: number): string {
  return `${group.topicId}/${group.partition}:${to}`;
}

export function messageBytes(m: Message): number {
  let n = m.snapshot?.data.byteLength ?? 0;
  for (const e of m.entries) n += e.data.byteLength;
  return n;
}

/**
 * Splits append `m` so that its first part carries at most `creditBytes` of entry payload (at
 * least one entry); the second part follows it (its previous index and term are the first
 * part's last entry). Null when `m` is not an append of two or more entries or fits whole.
 */
export function splitAppend(
  m: Message,
  creditBytes: number,
): { first: Message; rest: Message; firstBytes: number } | null {
  if (m.type !== MessageType.Append || m.entries.length < 2) return null;
  let n = 0;
  let bytes = 0;
  while (n < m.entries.length) {
    const b = m.entries[n]!.data.byteLength;
    if (n > 0 && bytes + b > creditBytes) break;
    bytes += b;
    n++;
  }
  if (n >= m.entries.length) return null;
  const last = m.entries[n - 1]!;
  return {
    first: { ...m, entries: m.entries.slice(0, n) },
    rest: { ...m, index: last.index, logTerm: last.term, entries: m.entries.slice(n) },
    firstBytes: bytes,
  };
}

export class ReassignmentThrottle {
  private readonly o: ReassignmentThrottleOptions;
  private readonly pairs = new Map<string, Pair>();
  private tokens = 0;
  private lastMs: number;
  private queuedBytes = 0;
  private queuedMessages = 0;
  /** Counters for metrics and tests. */
  readonly stats = { throttledBytes: 0, droppedMessages: 0 };
  private readonly queuedBytesMax: number;
  private readonly queuedMessagesMax: number;

  constructor(o: ReassignmentThrottleOptions) {
    this.o = o;
    this.lastMs = o.nowMs();
    this.queuedBytesMax = o.queuedBytesMax ?? 64 * 1024 * 1024;
    this.queuedMessagesMax = o.queuedMessagesMax ?? 10_000;
  }

  /** Bytes waiting in all queues. */
  get waitingBytes(): number {
    return this.queuedBytes;
  }

  send(group: GroupKey, messages: readonly Message[]): void {
    if (messages.length === 0) return;
    const unlimited = this.o.bytesPerSecond() <= 0;
    if (this.pairs.size === 0 && this.allFree(group, messages, unlimited)) {
      // Nothing queued and nothing throttled (every replicated produce, outside reassignments):
      // straight through, without a pair key or a copy per call (issue 9, garbage per request).
      this.o.send(group, messages);
      return;
    }
    const through: Message[] = [];
    for (const m of messages) {
      const k = pairKey(group, m.to);
      const pair = this.pairs.get(k);
      if (pair === undefined && (unlimited || !this.o.throttled(group, m.to))) {
        through.push(m);
        continue;
      }
      const bytes = messageBytes(m);
      if (
        this.queuedBytes + bytes > this.queuedBytesMax ||
        this.queuedMessages + 1 > this.queuedMessagesMax
      ) {
        this.stats.droppedMessages++;
        continue;
      }
      const p = pair ?? { group, to: m.to, queue: [], bytes: 0 };
      if (pair === undefined) this.pairs.set(k, p);
      p.queue.push({ message: m, bytes });
      p.bytes += bytes;
      this.queuedBytes += bytes;
      this.queuedMessages++;
    }
    if (through.length > 0) this.o.send(group, through);
    if (this.pairs.size > 0) this.pump();
  }

  /**
   * Whether `group`'s traffic to `to` waits behind a second of budget or more (at least one
   * byte): its leader should send it nothing more for now (RaftConfig.sendPaused). A pure read.
   */
  backlogged(group: GroupKey, to: number): boolean {
    // Asked before every append a leader sends: nothing queued (the usual case) costs no key.
    if (this.pairs.size === 0) return false;
    const p = this.pairs.get(pairKey(group, to));
    if (p === undefined) return false;
    const rate = this.o.bytesPerSecond();
    return rate > 0 && p.bytes >= Math.max(1, rate) && this.o.throttled(group, to);
  }

  private allFree(group: GroupKey, messages: readonly Message[], unlimited: boolean): boolean {
    if (unlimited) return true;
    for (const m of messages) if (this.o.throttled(group, m.to)) return false;
    return true;
  }

  /** Sends what the budget allows now (called on every send and on the house tick). */
  pump(): void {
    const now = this.o.nowMs();
    const rate = this.o.bytesPerSecond();
    const elapsed = Math.max(0, now - this.lastMs);
    this.lastMs = now;
    // One second's worth of burst at most.
    this.tokens = rate > 0 ? Math.min(rate, this.tokens + (elapsed * rate) / 1000) : 0;
    for (const [k, p] of this.pairs) {
      const free = rate <= 0 || !this.o.throttled(p.group, p.to);
      const out: Message[] = [];
      while (p.queue.length > 0) {
        const head = p.queue[0]!;
        if (!free && head.bytes > 0 && this.tokens <= 0) break;
        // Credit may go negative by one entry at most: an append larger than the credit left is
        // split, and only its first entries leave now.
        const split =
          !free && head.bytes > this.tokens ? splitAppend(head.message, this.tokens) : null;
        let leaving = head;
        if (split !== null) {
          p.queue[0] = { message: split.rest, bytes: head.bytes - split.firstBytes };
          leaving = { message: split.first, bytes: split.firstBytes };
        } else {
          p.queue.shift();
          this.queuedMessages--;
        }
        if (!free) {
          this.tokens -= leaving.bytes;
          this.stats.throttledBytes += leaving.bytes;
        }
        this.queuedBytes -= leaving.bytes;
        p.bytes -= leaving.bytes;
        out.push(leaving.message);
      }
      if (out.length > 0) this.o.send(p.group, out);
      if (p.queue.length === 0) this.pairs.delete(k);
    }
  }
}

/** `transport` with its `send` going through `throttle` (everything else unchanged). */
export function throttledTransport(
  transport: RaftTransport,
  throttle: ReassignmentThrottle,
): RaftTransport {
  return {
    get self() {
      return transport.self;
    },
    send: (group, messages) => throttle.send(group, messages),
    setMessageHandler: (h) => transport.setMessageHandler(h),
    request: (to, kind, body, timeoutMs) => transport.request(to, kind, body, timeoutMs),
    setRequestHandler: (h) => transport.setRequestHandler(h),
    setUnreachableHandler: (h) => transport.setUnreachableHandler(h),
    // The links belong to the cluster node, which closes them.
    close: () => Promise.resolve(),
  };
}
