// Long-poll bookkeeping for fetch: a bounded set of parked fetch requests per partition, woken
// when the partition's log grows. Synchronous and free of timers: the fetch shell owns the timer
// per request and removes its waiter on wake, timeout or connection close. A waiter parked on
// several partitions is woken by the first that grows; `wake` must be idempotent.

export interface Waiter {
  wake(): void;
}

export class WaiterSet {
  private readonly waiters = new Set<Waiter>();

  constructor(readonly waitersMax: number) {}

  get size(): number {
    return this.waiters.size;
  }

  /** False when the set is full: the caller answers at once instead of waiting. */
  add(waiter: Waiter): boolean {
    if (this.waiters.size >= this.waitersMax) return false;
    this.waiters.add(waiter);
    return true;
  }

  remove(waiter: Waiter): void {
    this.waiters.delete(waiter);
  }

  /** Wakes and removes every waiter (each decides whether it has enough bytes now). */
  wakeAll(): void {
    if (this.waiters.size === 0) return;
    const woken = [...this.waiters];
    this.waiters.clear();
    for (const w of woken) w.wake();
  }
}
