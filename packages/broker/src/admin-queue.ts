// The admin serialization: topic creation, deletion, config changes and repairs run one at a
// time, in the order they arrived, so no two of them interleave their file and registry steps.
// A failed step does not stop the queue. With the controller (issue 9) the queue serializes the
// broker's reactions to applied metadata records the same way.

export class AdminQueue {
  private chain: Promise<unknown> = Promise.resolve();

  /** Runs `work` after every step queued before it; its result or rejection is the caller's. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work);
    this.chain = next.catch(() => {});
    return next;
  }

  /** Settles once every step queued so far has settled (never rejects). */
  idle(): Promise<void> {
    return this.chain.then(() => {});
  }
}
