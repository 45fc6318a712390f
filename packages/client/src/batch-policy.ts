// Adaptive batching (the producer's default, no lingerMs): when a partition's open batch closes.
// Pure and synchronous: it reads the partition's flow (requests and records in flight, the
// recent volume outstanding, whether a batch closed now could be sent at once) and answers;
// producer.ts owns the timers and queues.
//
// The rules, as Kafka's and NATS's clients batch under load:
//   - An idle partition (nothing in flight; for the sticky partition of keyless records, nothing
//     of its topic) sends the records of a turn of the event loop at the end of that turn: a low
//     rate waits for nothing, and the records of one turn share a request.
//   - The partition keeps `recentRecords`, the most records it had outstanding (in flight plus
//     the batch being closed) lately, decaying by a 64th at each close other than a split within
//     a turn (below; the turn's volume is not known until it ends): a publish loop's window. Within a turn, a batch that can be sent at once closes as soon as it holds half of
//     that (at least splitRecordsMin), and the rest of the turn fills the next batch: a window
//     leaves as two overlapping requests instead of one, so the broker writes one half while it
//     fsyncs the other (group commit) and the client handles one half's answer meanwhile.
//   - While requests are in flight, a turn's records go at its end once they are a quarter of
//     `recentRecords` (a paced sender's few records per turn always are); fewer keep filling the
//     open batch, which is looked at again (the same rule) at the end of each turn in which a
//     request was answered, after the records that answer freed were sent again in that turn
//     and joined it; so the halves do not fray into small requests, and a window that frayed
//     merges back into halves.
//   - A partition that cannot send now (inflightMax requests out, or a recovery) keeps filling
//     its open batch until it can.
// batchBytesMax still closes any batch that would pass it (producer.ts).

/** One partition's state as the policy sees it. */
export interface PartitionFlow {
  /** Produce requests (first attempts) in flight, or closed and about to go. */
  readonly inflightRequests: number;
  /** Records in those requests. */
  readonly inflightRecords: number;
  /** The recent outstanding volume in records (observe()). */
  readonly recentRecords: number;
  /** A batch closed now would wait for a recovery to end. */
  readonly blocked: boolean;
  /** Records in the open batch. */
  readonly openRecords: number;
  /**
   * Nothing is in flight of the volume `recentRecords` counts: the partition's own requests, or
   * for a topic's sticky partition (whose volume is the topic's keyless flow) the topic's.
   */
  readonly idle: boolean;
}

export class AdaptiveBatchPolicy {
  constructor(
    /** Requests in flight per partition (5 for an idempotent producer, else 1). */
    readonly inflightMax: number,
    /** The smallest batch a turn is split at (a turn with fewer records sends one). */
    readonly splitRecordsMin: number,
  ) {
    if (!Number.isInteger(inflightMax) || inflightMax < 1) {
      throw new RangeError(`inflightMax: expected a positive integer, got ${inflightMax}`);
    }
    if (!Number.isInteger(splitRecordsMin) || splitRecordsMin < 1) {
      throw new RangeError(`splitRecordsMin: expected a positive integer, got ${splitRecordsMin}`);
    }
  }

  /**
   * The new recentRecords when a batch closes with `outstandingRecords` then outstanding. A
   * batch split off within a turn (`split`, closeOnAppend) does not decay it: the rest of the
   * turn is still being appended, so the outstanding volume is not known yet, and a decay there
   * would cut the next half short (a window of 1,000 left as 500 + 492 + a request of 8).
   */
  observe(recentRecords: number, outstandingRecords: number, split = false): number {
    const decayed = split ? recentRecords : recentRecords - Math.ceil(recentRecords / 64);
    return Math.max(outstandingRecords, decayed);
  }

  /** A batch closed now would be sent at once. */
  canSendNow(f: PartitionFlow): boolean {
    return !f.blocked && f.inflightRequests < this.inflightMax;
  }

  /**
   * How many records the open batch may hold before it closes within the turn (checked after
   * each append): half the recent volume, at least splitRecordsMin; unbounded (Infinity) while
   * it could not be sent at once, so it accumulates, and with an in-flight bound of 1.
   */
  splitRecords(f: PartitionFlow): number {
    // With one request in flight (no idempotence) a split half could not overlap: it would wait.
    if (this.inflightMax < 2 || !this.canSendNow(f)) return Number.POSITIVE_INFINITY;
    return Math.max(this.splitRecordsMin, Math.ceil(f.recentRecords / 2));
  }

  /** After an append: close the open batch now (it goes at once; the next records open another). */
  closeOnAppend(f: PartitionFlow): boolean {
    return f.openRecords >= this.splitRecords(f);
  }

  /**
   * At the end of a turn that appended to the batch, and whenever a request is answered or a
   * recovery ends: close it now, or keep filling it until one of those.
   */
  closeWhenDue(f: PartitionFlow): boolean {
    if (f.openRecords === 0 || !this.canSendNow(f)) return false;
    return f.idle || f.openRecords * 4 >= f.recentRecords;
  }
}
