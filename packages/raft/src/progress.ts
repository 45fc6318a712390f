// The leader's view of one follower: how far its log matches (`match`), what to send next
// (`next`), and the flow-control state. Kept only on the leader.
//
// States (etcd-raft's, see its design doc on progress):
//   - probe: the leader does not know where the follower's log matches; it sends one append
//     at a time and waits for the answer (or a heartbeat answer) before sending another.
//   - replicate: the logs match at `match`; appends are pipelined optimistically (`next` moves
//     ahead as they are sent), bounded by the in-flight window (count AND bytes).
//   - snapshot: the entries the follower needs are compacted away; a snapshot is in flight and
//     nothing else is sent until it is acknowledged or times out.
// Invariants: match < next; in replicate, every in-flight index is in (match, next).

import { assert } from './errors.js';
import type { LogIndex } from './types.js';

export const ProgressState = {
  Probe: 'probe',
  Replicate: 'replicate',
  Snapshot: 'snapshot',
} as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/** A bounded ring of in-flight appends (last index, bytes), freed as acknowledgements arrive. */
export class Inflights {
  private readonly lastIndexes: number[];
  private readonly sizes: number[];
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(
    readonly countMax: number,
    readonly bytesMax: number,
  ) {
    this.lastIndexes = new Array<number>(countMax).fill(0);
    this.sizes = new Array<number>(countMax).fill(0);
  }

  full(): boolean {
    return this.count >= this.countMax || this.bytes >= this.bytesMax;
  }

  add(lastIndex: number, bytes: number): void {
    assert(this.count < this.countMax, 'inflights overflow');
    const at = (this.start + this.count) % this.countMax;
    this.lastIndexes[at] = lastIndex;
    this.sizes[at] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every in-flight append whose last index is <= `index`. */
  freeLE(index: number): void {
    while (this.count > 0 && this.lastIndexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.countMax;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.bytes = 0;
    }
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.lastIndexes[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match: LogIndex = 0 as LogIndex;
  next: LogIndex;
  state: ProgressState = ProgressState.Probe;
  /** In probe: an append is out and unanswered, so sending is paused. */
  probeSent = false;
  /** In snapshot: the index of the snapshot in flight, and the tick it was sent at. */
  pendingSnapshot: LogIndex = 0 as LogIndex;
  snapshotSentTick = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  isLearner: boolean;
  /** The highest ReadIndex round this follower has acknowledged in the current term. */
  readSeqAcked = 0;
  readonly inflights: Inflights;

  constructor(
    next: LogIndex,
    isLearner: boolean,
    inflightMsgsMax: number,
    inflightBytesMax: number,
  ) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(inflightMsgsMax, inflightBytesMax);
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.next = Math.max(this.match + 1, pending + 1) as LogIndex;
    } else {
      this.next = (this.match + 1) as LogIndex;
    }
    this.state = ProgressState.Probe;
    this.probeSent = false;
    this.pendingSnapshot = 0 as LogIndex;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = (this.match + 1) as LogIndex;
    this.probeSent = false;
    this.pendingSnapshot = 0 as LogIndex;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: LogIndex, tick: number): void {
    this.state = ProgressState.Snapshot;
    this.pendingSnapshot = snapshotIndex;
    this.snapshotSentTick = tick;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** An acknowledgement up to `index`; returns whether `match` moved. */
  maybeUpdate(index: LogIndex): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = (index + 1) as LogIndex;
    return updated;
  }

  /**
   * A rejection of the append whose previous index was `rejected`, with the follower's hint
   * `matchHint` (already mapped through the leader's log). Returns false for stale rejections.
   */
  maybeDecrTo(rejected: LogIndex, matchHint: LogIndex): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = (this.match + 1) as LogIndex;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1) as LogIndex;
    this.probeSent = false;
    return true;
  }

  /** Records an append of `count` entries ending at `lastIndex`, of `bytes` data bytes. */
  sentEntries(count: number, lastIndex: LogIndex, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (count > 0) {
        this.next = (lastIndex + 1) as LogIndex;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }
}
