// The host of every Raft group on one broker (the contract's `GroupHost`): one tick timer for all
// groups, inbound messages routed by GroupKey, unreachable peers reported to the groups, and a
// set of groups with pending work whose `process()` runs without overlap per group and with a
// bound on how many run at once. It knows nothing about what a group stores or how messages
// travel (the transport's business).
//
// Rules:
//   1. Only groups with work are processed: a group enters the pending set when notified, or
//      when `hasWork()` is true after it was added, ticked, stepped or told of an unreachable
//      peer, or after its own `process()` finished; and it runs only if `hasWork()` is still true
//      when its turn comes (a group pended while running may have done that work already). The
//      host never polls every group for work except right after ticking it.
//   2. A group's `process()` never runs twice at once (contract rule 3): a group notified while
//      it runs stays pending and runs again after. At most `processConcurrencyMax` groups run at
//      once; the others wait their turn in the order they became pending. Within one turn of the
//      event loop at most `processBurstMax` rounds start (so a tick's work for 1,000 groups
//      finishes in the same turn and its messages leave as one frame per peer); beyond, the
//      host yields to I/O with setImmediate.
//   3. One timer: every `tickIntervalMs` every hosted group is ticked, synchronously, in one
//      turn (so the heartbeats they emit leave as one frame per peer), then every `onTick`
//      listener runs (the broker's own per-tick work: registration heartbeats, ISR reports), so
//      a broker has one tick timer in all. In manual mode there is no timer and no automatic
//      scheduling: `tickOnce()` ticks, `runPending()` processes until no work is left
//      (deterministic tests and the simulator).
//   4. A message for a group not hosted here is dropped and counted, not an error (the group
//      may not be open yet). A group whose `step`/`tick` throws is logged and counted; the others
//      carry on. A `process()` that rejects breaks rule 3 of the contract: logged as a bug.
//   5. Idle cost: ticking is one call per awake group per interval plus one `hasWork()`; a
//      group whose tick made no work costs nothing more. Quiescing is the groups' (the Raft
//      core's `quiesce`, docs/raft.md): a quiesced group's `tick()` returns at once and it sends
//      nothing; `reportUnreachable` (a lost link, or a peer the controller fenced) wakes it. A
//      group that says it is quiesced (`quiesced`, optional) and has no work after its tick
//      leaves the awake set: it is not ticked until it is stepped, notified (any work: a
//      proposal, a transfer, finished I/O), told of an unreachable peer, or pended. With 1,000
//      idle replicas that pass was half of a broker's remaining idle main-thread time.
//   6. `onActive` listeners hear of every group that becomes pending (it has work: it was
//      notified, stepped, or its tick made work), so the broker's per-tick work can follow the
//      groups that are not quiesced instead of scanning every group (leader-reports.ts rule 7).
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { Message, NodeId } from '@streambus/raft';
import pino, { type Logger } from 'pino';
import {
  type GroupHost,
  type GroupKey,
  groupKeyString,
  type HostedGroup,
  type RaftTransport,
} from './contract.js';

export interface RaftGroupHostOptions {
  /** Where inbound messages and unreachable reports come from; the host sets its handlers. */
  readonly transport?: RaftTransport;
  /** Milliseconds per Raft tick (default 100). Ignored in manual mode. */
  readonly tickIntervalMs?: number;
  /** No timer, no automatic processing: the caller drives `tickOnce()` and `runPending()`. */
  readonly manual?: boolean;
  /** Groups whose `process()` may run at once (default 64). */
  readonly processConcurrencyMax?: number;
  /** `process()` rounds started in one turn of the event loop before yielding (default 4,096). */
  readonly processBurstMax?: number;
  /** Hosted groups at most (default 100,000). */
  readonly groupsMax?: number;
  readonly logger?: Logger;
}

export interface GroupHostStats {
  groups: number;
  ticks: number;
  /** `tick()` calls made (quiesced groups are not ticked: rule 5). */
  groupTicks: number;
  /** Groups ticked now (not asleep quiesced). */
  awake: number;
  processed: number;
  pending: number;
  running: number;
  /** Inbound messages for a group not hosted here. */
  droppedUnknownGroup: number;
  /** `step` or `tick` threw (a group's bug, contained). */
  groupErrors: number;
  /** `process()` rejected (a bug: contract rule 3). */
  processRejections: number;
}

const TICK_INTERVAL_MS_DEFAULT = 100;
const PROCESS_CONCURRENCY_MAX_DEFAULT = 64;
const GROUPS_MAX_DEFAULT = 100_000;
const PROCESS_BURST_MAX_DEFAULT = 4096;

export class RaftGroupHost implements GroupHost {
  readonly tickIntervalMs: number;
  private readonly manual: boolean;
  private readonly processConcurrencyMax: number;
  private readonly processBurstMax: number;
  private readonly groupsMax: number;
  private readonly logger: Logger;
  private readonly groups = new Map<string, HostedGroup>();
  /** Insertion-ordered: groups run in the order they became pending. */
  private readonly pending = new Set<HostedGroup>();
  /** The groups `tickOnce` ticks: all but the quiesced ones without work (rule 5). */
  private readonly awake = new Set<HostedGroup>();
  private readonly running = new Set<HostedGroup>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly tickListeners = new Set<() => void>();
  private readonly activeListeners = new Set<(g: HostedGroup) => void>();
  private timer: NodeJS.Timeout | null = null;
  private pumpScheduled = false;
  /** `process()` rounds started since the last scheduled pump (rule 2's per-turn budget). */
  private startsThisTurn = 0;
  private closed = false;
  private readonly counters = {
    ticks: 0,
    groupTicks: 0,
    processed: 0,
    droppedUnknownGroup: 0,
    groupErrors: 0,
    processRejections: 0,
  };

  constructor(options: RaftGroupHostOptions = {}) {
    this.tickIntervalMs = options.tickIntervalMs ?? TICK_INTERVAL_MS_DEFAULT;
    this.manual = options.manual ?? false;
    this.processConcurrencyMax = options.processConcurrencyMax ?? PROCESS_CONCURRENCY_MAX_DEFAULT;
    this.groupsMax = options.groupsMax ?? GROUPS_MAX_DEFAULT;
    this.processBurstMax = options.processBurstMax ?? PROCESS_BURST_MAX_DEFAULT;
    for (const [name, v] of [
      ['tickIntervalMs', this.tickIntervalMs],
      ['processConcurrencyMax', this.processConcurrencyMax],
      ['groupsMax', this.groupsMax],
      ['processBurstMax', this.processBurstMax],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 1) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `${name} ${v} is not a positive integer`,
        );
      }
    }
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'group-host' });
    const t = options.transport;
    if (t) {
      t.setMessageHandler((group, m) => this.deliver(group, m));
      t.setUnreachableHandler((peer) => this.reportUnreachable(peer));
    }
    if (!this.manual) {
      this.timer = setInterval(() => this.tickOnce(), this.tickIntervalMs);
      this.timer.unref();
    }
  }

  add(group: HostedGroup): void {
    const k = groupKeyString(group.key);
    if (this.closed) throw new StreamBusError(ErrorCode.SHUTTING_DOWN, 'group host is closed');
    if (this.groups.has(k)) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `group ${k} is already hosted`);
    }
    if (this.groups.size >= this.groupsMax) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `${this.groups.size} groups hosted already (max ${this.groupsMax})`,
      );
    }
    this.groups.set(k, group);
    this.awake.add(group);
    this.maybePend(group);
  }

  remove(key: GroupKey): void {
    const g = this.groups.get(groupKeyString(key));
    if (!g) return;
    this.groups.delete(groupKeyString(key));
    this.pending.delete(g);
    this.awake.delete(g);
  }

  has(key: GroupKey): boolean {
    return this.groups.has(groupKeyString(key));
  }

  notify(key: GroupKey): void {
    const g = this.groups.get(groupKeyString(key));
    if (g) this.pend(g);
  }

  /** An inbound message (the transport's handler). */
  deliver(group: GroupKey, m: Message): void {
    const g = this.groups.get(groupKeyString(group));
    if (!g) {
      this.counters.droppedUnknownGroup++;
      return;
    }
    this.awake.add(g);
    if (this.guard(g, 'step', () => g.step(m))) this.maybePend(g);
  }

  /** Tells every hosted group (a group ignores a peer it does not have). */
  reportUnreachable(peer: NodeId): void {
    for (const g of this.groups.values()) {
      this.awake.add(g);
      if (this.guard(g, 'reportUnreachable', () => g.reportUnreachable(peer))) this.maybePend(g);
    }
  }

  /** One tick of every awake hosted group, in one synchronous pass (rules 3, 5). */
  tickOnce(): void {
    if (this.closed) return;
    this.counters.ticks++;
    for (const g of this.awake) {
      if (!this.guard(g, 'tick', () => g.tick())) continue;
      this.counters.groupTicks++;
      if (this.hasWork(g)) this.pend(g);
      else if (g.quiesced === true) this.awake.delete(g);
    }
    for (const l of this.tickListeners) {
      try {
        l();
      } catch (err) {
        this.logger.error({ err }, 'tick listener threw');
      }
    }
  }

  /**
   * Runs `listener` once per tick, after the groups were ticked (rule 3: the broker's one
   * timer). Returns the function that removes it.
   */
  onTick(listener: () => void): () => void {
    this.tickListeners.add(listener);
    return () => this.tickListeners.delete(listener);
  }

  /** Rule 6: `listener(g)` runs (synchronously, must not throw) whenever `g` becomes pending. */
  onActive(listener: (g: HostedGroup) => void): () => void {
    this.activeListeners.add(listener);
    return () => this.activeListeners.delete(listener);
  }

  /**
   * Runs pending groups until none is pending or running (also in automatic mode, where it just
   * waits). Resolves at once when idle.
   */
  runPending(): Promise<void> {
    if (this.pending.size === 0 && this.running.size === 0) return Promise.resolve();
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.pump();
    return idle;
  }

  stats(): Readonly<GroupHostStats> {
    return {
      ...this.counters,
      groups: this.groups.size,
      awake: this.awake.size,
      pending: this.pending.size,
      running: this.running.size,
    };
  }

  /** Stops the timer and waits for the `process()` rounds in progress. */
  async close(): Promise<void> {
    this.closed = true;
    this.tickListeners.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.pending.clear();
    while (this.running.size > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  private guard(g: HostedGroup, what: string, fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      this.counters.groupErrors++;
      this.logger.error({ err, group: groupKeyString(g.key) }, `group ${what} threw`);
      return false;
    }
  }

  private hasWork(g: HostedGroup): boolean {
    try {
      return g.hasWork();
    } catch (err) {
      this.counters.groupErrors++;
      this.logger.error({ err, group: groupKeyString(g.key) }, 'group hasWork threw');
      return false;
    }
  }

  private maybePend(g: HostedGroup): void {
    if (this.hasWork(g)) this.pend(g);
  }

  private pend(g: HostedGroup): void {
    if (this.closed) return;
    this.pending.add(g);
    this.awake.add(g);
    for (const l of this.activeListeners) l(g);
    if (!this.manual) this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // After the current turn, so a burst of notifications and messages is processed together.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.startsThisTurn = 0;
      this.pump();
    });
  }

  /** Starts pending groups that are not running, up to the concurrency bound (rule 2). */
  private pump(): void {
    for (const g of this.pending) {
      if (this.running.size >= this.processConcurrencyMax) break;
      if (this.running.has(g)) continue;
      this.pending.delete(g);
      // Pending since before its last round, which may have done the work: skip if none is left.
      if (this.hasWork(g)) this.start(g);
    }
    if (this.pending.size === 0 && this.running.size === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private start(g: HostedGroup): void {
    this.running.add(g);
    this.startsThisTurn++;
    this.counters.processed++;
    let round: Promise<void>;
    try {
      round = g.process();
    } catch (err) {
      round = Promise.reject(err);
    }
    round
      .catch((err: unknown) => {
        this.counters.processRejections++;
        this.logger.error(
          { err, group: groupKeyString(g.key) },
          'group process() rejected (a bug: it must handle its own failures)',
        );
      })
      .then(() => {
        this.running.delete(g);
        if (!this.closed && this.groups.get(groupKeyString(g.key)) === g) this.maybePend(g);
        // Keep going in this turn while the budget lasts, so the messages of one burst of work
        // (a tick, an inbound frame) leave together; then yield to I/O.
        if (this.manual || this.closed || this.startsThisTurn < this.processBurstMax) this.pump();
        else this.schedulePump();
        if (this.closed && this.running.size === 0) {
          for (const w of this.idleWaiters.splice(0)) w();
        }
      });
  }
}
