// The simulation's event loop: one simulated clock (milliseconds), one queue of timed events, and
// a deterministic way to let the real (asynchronous) code under test run between them.
//
// The code under test (replicas, controller, PartitionLog over MemoryFileSystem) is async: its
// I/O resolves through promises, never through real timers or sockets. So after each event the
// loop drains the microtask queue completely (`await setImmediate`: Node runs every microtask
// before the next macrotask) before it takes the next event. Everything an event triggers
// therefore finishes "at the same simulated instant", except what waits on simulated time
// (`after(ms)`: a delayed fsync, a message in flight, an RPC timeout), which is itself an event.
// With one seed and no real timers, a run replays exactly. A real timer or a wall-clock read in
// the code under test would break that; the determinism test (one seed run twice gives the same
// trace) is the guard.
//
// It does not model CPU time: code runs in zero simulated time.

import assert from 'node:assert/strict';

interface Scheduled {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

const less = (a: Scheduled, b: Scheduled) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** A binary min-heap on (at, seq): simultaneous events run in the order they were scheduled. */
export class EventQueue {
  private readonly heap: Scheduled[] = [];
  private seq = 0;

  constructor(private readonly sizeMax: number) {}

  get size(): number {
    return this.heap.length;
  }

  push(at: number, run: () => void): void {
    const h = this.heap;
    assert.ok(h.length < this.sizeMax, `simulation event queue over ${this.sizeMax} events`);
    h.push({ at, seq: this.seq++, run });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Scheduled | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Lets every pending microtask (and promise chain) run to completion. */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

export class SimLoop {
  private readonly queue: EventQueue;
  private nowMs = 0;
  private stepCount = 0;

  constructor(eventsMax = 1_000_000) {
    this.queue = new EventQueue(eventsMax);
  }

  get now(): number {
    return this.nowMs;
  }

  get steps(): number {
    return this.stepCount;
  }

  /** Runs `fn` `delayMs` from now (>= 0; 0 = after the events already due now). */
  at(delayMs: number, fn: () => void): void {
    assert.ok(delayMs >= 0 && Number.isFinite(delayMs), `bad delay ${delayMs}`);
    this.queue.push(this.nowMs + delayMs, fn);
  }

  /** A promise resolved `delayMs` of simulated time from now. */
  after(delayMs: number): Promise<void> {
    return new Promise<void>((resolve) => this.at(delayMs, resolve));
  }

  /**
   * Runs events in time order until `stop()` says so or the queue is empty, draining the
   * microtasks after each. An event that throws (an assertion in the code under test, say) is
   * passed to `onThrow` and ends the run. Returns the number of events run.
   */
  async run(stop: () => boolean, onThrow: (err: unknown) => void): Promise<number> {
    let n = 0;
    await drainMicrotasks();
    while (!stop()) {
      const next = this.queue.pop();
      if (!next) break;
      this.nowMs = next.at;
      this.stepCount++;
      n++;
      try {
        next.run();
      } catch (err) {
        onThrow(err);
        break;
      }
      await drainMicrotasks();
    }
    return n;
  }
}
