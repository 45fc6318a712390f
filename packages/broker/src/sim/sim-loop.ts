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
import { EventQueue } from '@streambus/raft/testing';

/** Lets every pending microtask (and promise chain) run to completion. */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

export class SimLoop {
  private readonly queue = new EventQueue<() => void>();
  private nowMs = 0;
  private stepCount = 0;

  constructor(private readonly eventsMax = 1_000_000) {}

  get now(): number {
    return this.nowMs;
  }

  get steps(): number {
    return this.stepCount;
  }

  /** Runs `fn` `delayMs` from now (>= 0; 0 = after the events already due now). */
  at(delayMs: number, fn: () => void): void {
    assert.ok(delayMs >= 0 && Number.isFinite(delayMs), `bad delay ${delayMs}`);
    assert.ok(this.queue.size < this.eventsMax, `simulation event queue over ${this.eventsMax}`);
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
        next.event();
      } catch (err) {
        onThrow(err);
        break;
      }
      await drainMicrotasks();
    }
    return n;
  }
}
