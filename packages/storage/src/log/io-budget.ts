// IoBudget: a token bucket over bytes for background I/O (the log cleaner). Callers `spend` the
// bytes they just read or wrote; when the bucket runs dry, `spend` waits until it refills. The
// clock and the wait are injected, so a test counts bytes against a simulated clock instead of
// timing anything.

export interface IoBudgetOptions {
  /** Sustained rate; > 0. */
  bytesPerSecond: number;
  /** Bucket size: bytes that may go at once after an idle spell (default one second's worth). */
  burstBytes?: number;
  nowMs?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export class IoBudget {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  private readonly nowMs: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private tokens: number;
  private lastMs: number;
  /** Bytes spent so far. */
  spentBytes = 0;
  /** Time spent waiting for the bucket (ms, by the injected clock). */
  waitedMs = 0;

  constructor(options: IoBudgetOptions) {
    if (!(options.bytesPerSecond > 0)) throw new RangeError('bytesPerSecond must be > 0');
    this.bytesPerSecond = options.bytesPerSecond;
    this.burstBytes = Math.max(1, options.burstBytes ?? options.bytesPerSecond);
    this.nowMs = options.nowMs ?? Date.now;
    this.sleep =
      options.sleep ??
      ((ms) => new Promise<void>((resolve) => setTimeout(resolve, Math.ceil(ms)).unref()));
    this.tokens = this.burstBytes;
    this.lastMs = this.nowMs();
  }

  private refill(): void {
    const now = this.nowMs();
    const elapsed = Math.max(0, now - this.lastMs);
    this.lastMs = now;
    this.tokens = Math.min(this.burstBytes, this.tokens + (elapsed * this.bytesPerSecond) / 1000);
  }

  /** Takes `bytes` from the bucket, waiting (once) for it to refill when it goes below zero. */
  async spend(bytes: number): Promise<void> {
    if (bytes <= 0) return;
    this.refill();
    this.tokens -= bytes;
    this.spentBytes += bytes;
    if (this.tokens < 0) {
      const ms = (-this.tokens * 1000) / this.bytesPerSecond;
      this.waitedMs += ms;
      await this.sleep(ms);
      this.refill();
    }
  }
}
