// The consumer-group consumer (issue 10; docs/client.md "Consumer groups"): `client.consumer({
// groupId })`, then subscribe({ topics } | { pattern }) and `for await`. It joins the group
// through its coordinator (FindCoordinator, then JoinGroup/SyncGroup on a lane of its own, as
// those may be held by the coordinator for a whole rebalance), runs the assignor when it is the
// group's leader (@streambus/protocol's range, roundrobin, cooperative-sticky over Kafka's
// consumer-protocol bytes), and feeds the partitions it is given to an assign-mode Consumer
// (consumer.ts), which does the fetching, starting each at the group's committed offset or at
// autoOffsetReset.
//
// Membership runs in the background, one sequential loop (`run`): join and sync when needed,
// otherwise heartbeat every heartbeatIntervalMs, auto-commit every autoCommitIntervalMs, check
// the subscribed topics every metadataRefreshMs, and leave when the application has not asked
// for a record within maxPollIntervalMs. Cooperative rebalancing (KIP-429, the default
// assignor): the member keeps consuming what it owns while the group rebalances, lists it in its
// subscription, gives up only what the assignment no longer holds (committing it first), and
// rejoins so the next rebalance hands those partitions on. The eager assignors (range,
// roundrobin) give up everything before each join.
//
// Offsets: a record counts as processed when the application asks for the next one (or leaves
// the loop), so every commit (auto, on revoke, on close, commit()) is at-least-once: it never
// covers a record the application has not finished. Records of a partition that was revoked
// while they were in hand are not handed out.
//
// Requests go through the one retry layer (context.ts run/runUntil); NOT_COORDINATOR and
// COORDINATOR_NOT_AVAILABLE make its hook forget the coordinator (cluster.ts), so the retry
// finds the new one. Group answers (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
// MEMBER_ID_REQUIRED) are protocol steps, not retries: the loop rejoins. The loop itself keeps
// the member in its group until close(): a coordinator that stays away longer than a retry
// policy is tried again after a backoff, and only a non-retriable error ends it (surfacing at
// the iterator). The same holds for fetching: a retriable fetch failure that outlasts the retry
// policy is retried at the next poll, never handed to the application.
import {
  ApiKey,
  ASSIGNORS,
  decodeAssignment,
  decodeSubscription,
  ErrorCode,
  encodeAssignment,
  encodeSubscription,
  type JoinGroupResponse,
  StreamBusError,
  type TopicPartition,
} from '@streambus/protocol';
import { Admin } from './admin.js';
import type { BrokerConnection } from './connection.js';
import { Consumer, type ConsumerOptions, type ConsumerRecord, type StartFrom } from './consumer.js';
import type { ClientContext } from './context.js';
import { coordinatorRequest } from './coordinator.js';
import { GroupDefaults } from './limits.js';
import { checkOptionNames, OptionNames } from './options.js';

export type AssignorName = 'cooperative-sticky' | 'range' | 'roundrobin';

export interface AssignmentEvent {
  readonly generation: number;
  readonly memberId: string;
  /** Partitions this member got in this generation that it did not own before. */
  readonly partitions: readonly TopicPartition[];
  /** Everything it owns now. */
  readonly assignment: readonly TopicPartition[];
}

export interface RevocationEvent {
  readonly generation: number;
  readonly memberId: string;
  readonly partitions: readonly TopicPartition[];
  /**
   * true when the membership was lost (fenced, session expired): the partitions may already be
   * someone else's, so nothing was committed for them.
   */
  readonly lost: boolean;
}

export interface GroupConsumerOptions extends ConsumerOptions {
  readonly groupId: string;
  /** Static membership (KIP-345): a restart within the session timeout keeps the assignment. */
  readonly groupInstanceId?: string;
  /** Commit processed offsets every autoCommitIntervalMs, on revoke and on close (default true). */
  readonly autoCommit?: boolean;
  readonly autoCommitIntervalMs?: number;
  /** The coordinator removes a member it has not heard from for this long (default 45 s). */
  readonly sessionTimeoutMs?: number;
  /** Default: a third of the session timeout, at most 3 s. */
  readonly heartbeatIntervalMs?: number;
  /**
   * The member leaves the group when the application has not asked for a record for this long
   * (default 5 min), and rejoins when it asks again; also the group's rebalance timeout.
   */
  readonly maxPollIntervalMs?: number;
  /** Default 'cooperative-sticky' (incremental rebalancing). */
  readonly assignor?: AssignorName;
  /** How often the subscribed topics (pattern matches, partition counts) are checked (30 s). */
  readonly metadataRefreshMs?: number;
  readonly onAssigned?: (event: AssignmentEvent) => void | Promise<void>;
  readonly onRevoked?: (event: RevocationEvent) => void | Promise<void>;
}

export type SubscribeOptions =
  | { readonly topics: readonly string[] }
  | { readonly pattern: RegExp };

export interface CommitOffset {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to consume (as in Kafka): one past the last processed record. */
  readonly offset: number;
}

/** `seek()`: an owned partition and where to go (an offset, or a position to look up). */
export interface SeekTarget {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to hand out, or 'earliest', 'latest', `{ timestamp }` (ms since the epoch). */
  readonly offset: number | 'earliest' | 'latest' | { readonly timestamp: number };
}

export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** Next offset to process (null before the start position is known). */
  readonly position: number | null;
  readonly logEnd: number;
  /** logEnd - position (null while the position is unknown). */
  readonly lag: number | null;
}

/** A partition this member owns; a new object each time it is (re)assigned. */
interface Owned {
  readonly topic: string;
  readonly partition: number;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;
const tpKey = (tp: TopicPartition) => key(tp.topic, tp.partition);
const EMPTY = new Uint8Array(0);
const PROTOCOL_TYPE = 'consumer';
/** Answers that end this member's generation: its partitions are lost, it joins again. */
const MEMBERSHIP_ERRORS: ReadonlySet<number> = new Set([
  ErrorCode.UNKNOWN_MEMBER_ID,
  ErrorCode.ILLEGAL_GENERATION,
]);

function intOption(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > 0x7fffffff) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `${name}: expected an integer in ${min}..2^31-1, got ${v}`,
    );
  }
  return v;
}

/**
 * Races promises against an event (close, unsubscribe) that may never come. Unlike
 * Promise.race with a pending promise, which adds a reaction to it per race that stays until it
 * settles (one per poll, forever, on a consumer that is never closed), each race here is
 * forgotten as soon as its promise settles. After fire(), races resolve null at once until
 * reset().
 */
class Interrupts {
  private readonly waiting = new Set<() => void>();
  private fired = false;

  race<T>(p: Promise<T>): Promise<T | null> {
    if (this.fired) {
      p.catch(() => undefined);
      return Promise.resolve(null);
    }
    return new Promise<T | null>((resolve, reject) => {
      const cancel = () => resolve(null);
      this.waiting.add(cancel);
      p.then(
        (v) => {
          this.waiting.delete(cancel);
          resolve(v);
        },
        (err: unknown) => {
          this.waiting.delete(cancel);
          reject(err);
        },
      );
    });
  }

  fire(): void {
    this.fired = true;
    for (const cancel of this.waiting) cancel();
    this.waiting.clear();
  }

  reset(): void {
    this.fired = false;
  }

  /** Races waiting now (bounded by the callers: one poll per iterator, one loop request). */
  get size(): number {
    return this.waiting.size;
  }
}

function checkTopicPartition(what: string, tp: unknown): TopicPartition {
  const o = tp as { topic?: unknown; partition?: unknown } | null;
  if (typeof o !== 'object' || o === null || typeof o.topic !== 'string' || o.topic === '') {
    throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${what}.topic: expected a name`);
  }
  intOption(`${what}.partition`, o.partition as number, 0);
  return { topic: o.topic, partition: o.partition as number };
}

function byTopic<T extends TopicPartition>(tps: Iterable<T>): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const tp of tps) {
    const list = out.get(tp.topic) ?? [];
    list.push(tp);
    out.set(tp.topic, list);
  }
  return out;
}

function sortTps<T extends TopicPartition>(tps: T[]): TopicPartition[] {
  return tps
    .map((tp) => ({ topic: tp.topic, partition: tp.partition }))
    .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

export class GroupConsumer {
  readonly groupId: string;
  private readonly inner: Consumer;
  private readonly admin: Admin;
  private readonly groupInstanceId: string | null;
  private readonly autoCommit: boolean;
  private readonly autoCommitIntervalMs: number;
  private readonly sessionTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly maxPollIntervalMs: number;
  private readonly assignor: AssignorName;
  private readonly metadataRefreshMs: number;
  private readonly autoOffsetReset: 'earliest' | 'latest' | 'none';
  private readonly onAssigned: GroupConsumerOptions['onAssigned'];
  private readonly onRevoked: GroupConsumerOptions['onRevoked'];
  private static lanes = 0;
  /** JoinGroup and SyncGroup wait a whole rebalance: their own connection. */
  private readonly lane = `group-${++GroupConsumer.lanes}`;

  private subscription: SubscribeOptions | null = null;
  /** The topics subscribed to now (a pattern's matches), sorted, with partition counts. */
  private topics: string[] = [];
  private partitionCounts = new Map<string, number>();
  private memberIdValue = '';
  private generationValue = -1;
  private readonly owned = new Map<string, Owned>();
  /** Partitions being revoked: commit() still covers them until onRevoked returns. */
  private readonly revoking = new Map<string, Owned>();
  /** Next offset after the records processed, per owned partition. */
  private readonly processed = new Map<string, number>();
  /** What this member last committed, per partition (so an unchanged offset is not sent again). */
  private readonly committed = new Map<string, number>();
  private rejoinNeeded = true;
  private loop: Promise<void> | null = null;
  private fatal: unknown = null;
  private closing = false;
  private closeDone: Promise<void> | null = null;
  private wakeLoop: (() => void) | null = null;
  private wakePending = false;
  /** Ends what waits on close(): the iterators' polls, the loop's joins, syncs and heartbeats. */
  private readonly closeRaces = new Interrupts();
  /** Last time the application asked for a record, and whether it is waiting for one now. */
  private lastPollMs = Date.now();
  private pollPending = false;
  /** Left the group after maxPollIntervalMs; rejoins when the application polls again. */
  private leftForPoll = false;
  private nextAutoCommitMs = 0;
  private nextMetadataMs = 0;
  /** unsubscribe(): the membership loop stops at its next step (a join or sync is abandoned). */
  private stopRequested = false;
  /** Ends the loop's joins, syncs and heartbeats at unsubscribe() (and close()). */
  private readonly stopRaces = new Interrupts();
  private unsubscribing: Promise<void> | null = null;

  constructor(
    private readonly ctx: ClientContext,
    options: GroupConsumerOptions,
  ) {
    const {
      groupId,
      groupInstanceId,
      autoCommit,
      autoCommitIntervalMs,
      sessionTimeoutMs,
      heartbeatIntervalMs,
      maxPollIntervalMs,
      assignor,
      metadataRefreshMs,
      onAssigned,
      onRevoked,
      ...consumerOptions
    } = options;
    if (typeof groupId !== 'string' || groupId === '' || groupId.length > 255) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `groupId: expected a non-empty string of at most 255 characters, got ${JSON.stringify(groupId)}`,
      );
    }
    if (
      groupInstanceId !== undefined &&
      (typeof groupInstanceId !== 'string' ||
        groupInstanceId === '' ||
        groupInstanceId.length > 255)
    ) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        'groupInstanceId: expected a non-empty string of at most 255 characters',
      );
    }
    if (autoCommit !== undefined && typeof autoCommit !== 'boolean') {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'autoCommit: expected a boolean');
    }
    const name = assignor ?? GroupDefaults.assignor;
    if (!ASSIGNORS.has(name)) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `assignor: expected one of ${[...ASSIGNORS.keys()].join(', ')}, got '${String(name)}'`,
      );
    }
    for (const [n, f] of [
      ['onAssigned', onAssigned],
      ['onRevoked', onRevoked],
    ] as const) {
      if (f !== undefined && typeof f !== 'function') {
        throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${n}: expected a function`);
      }
    }
    this.groupId = groupId;
    this.groupInstanceId = groupInstanceId ?? null;
    this.autoCommit = autoCommit ?? true;
    this.autoCommitIntervalMs = intOption(
      'autoCommitIntervalMs',
      autoCommitIntervalMs ?? GroupDefaults.autoCommitIntervalMs,
      1,
    );
    this.sessionTimeoutMs = intOption(
      'sessionTimeoutMs',
      sessionTimeoutMs ?? GroupDefaults.sessionTimeoutMs,
      1,
    );
    this.heartbeatIntervalMs = intOption(
      'heartbeatIntervalMs',
      heartbeatIntervalMs ??
        Math.max(
          1,
          Math.min(GroupDefaults.heartbeatIntervalMs, Math.floor(this.sessionTimeoutMs / 3)),
        ),
      1,
    );
    this.maxPollIntervalMs = intOption(
      'maxPollIntervalMs',
      maxPollIntervalMs ?? GroupDefaults.maxPollIntervalMs,
      1,
    );
    this.metadataRefreshMs = intOption(
      'metadataRefreshMs',
      metadataRefreshMs ?? GroupDefaults.metadataRefreshMs,
      1,
    );
    this.assignor = name;
    this.onAssigned = onAssigned;
    this.onRevoked = onRevoked;
    this.inner = new Consumer(ctx, consumerOptions, { emptyBatches: true });
    this.autoOffsetReset = consumerOptions.autoOffsetReset ?? 'earliest';
    this.admin = new Admin(ctx);
  }

  /** The member id the coordinator gave ('' before the first join). */
  get memberId(): string {
    return this.memberIdValue;
  }

  /** The generation of the current assignment (-1 before the first). */
  get generation(): number {
    return this.generationValue;
  }

  private get cooperative(): boolean {
    return this.assignor === 'cooperative-sticky';
  }

  /**
   * Subscribes to topics, or to every topic matching a pattern (internal `__` topics excepted;
   * topics created later join at the next check, metadataRefreshMs). Starts the membership in
   * the background; calling it again changes the subscription (a rebalance). A named topic that
   * does not exist yet is kept in the subscription and assigned once it exists.
   */
  async subscribe(options: SubscribeOptions): Promise<void> {
    this.checkOpen();
    checkOptionNames('subscribe', options, OptionNames.subscribe);
    const o = options as { topics?: unknown; pattern?: unknown };
    if ((o.topics === undefined) === (o.pattern === undefined)) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        'subscribe: expected { topics: [...] } or { pattern: /.../ }',
      );
    }
    let subscription: SubscribeOptions;
    if (o.topics !== undefined) {
      if (
        !Array.isArray(o.topics) ||
        o.topics.length === 0 ||
        !o.topics.every((t) => typeof t === 'string' && t !== '')
      ) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          'subscribe.topics: expected a non-empty list of topic names',
        );
      }
      subscription = { topics: [...new Set(o.topics as string[])].sort() };
    } else {
      if (!(o.pattern instanceof RegExp)) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          'subscribe.pattern: expected a RegExp',
        );
      }
      // Without g/y, test() keeps no state between topics.
      subscription = {
        pattern: new RegExp(o.pattern.source, o.pattern.flags.replace(/[gy]/g, '')),
      };
    }
    // An unsubscribe in progress finishes (commits, leaves) before the member joins again.
    if (this.unsubscribing !== null) {
      await this.unsubscribing;
      this.checkOpen();
    }
    this.subscription = subscription;
    this.rejoinNeeded = true;
    this.lastPollMs = Date.now();
    if (this.loop === null) {
      this.stopRequested = false;
      this.stopRaces.reset();
      this.loop = this.run().catch((err: unknown) => this.setFatal(err));
    }
    this.wake();
  }

  /**
   * Gives up every partition (committing their processed offsets first, with auto-commit, then
   * onRevoked) and leaves the group, static members too: the subscription is empty until the
   * next subscribe(), which joins again. The iterators stay open (they wait for records). A
   * no-op when not subscribed.
   */
  unsubscribe(): Promise<void> {
    this.checkOpen();
    if (this.loop === null) return this.unsubscribing ?? Promise.resolve();
    this.unsubscribing ??= this.unsubscribeOnce().finally(() => {
      this.unsubscribing = null;
    });
    return this.unsubscribing;
  }

  private async unsubscribeOnce(): Promise<void> {
    this.stopRequested = true;
    this.stopRaces.fire();
    this.wake();
    await this.loop;
    try {
      if (this.owned.size > 0 && !this.ctx.signal.aborted) {
        await this.revoke([...this.owned.values()], false);
      }
      if (this.memberIdValue !== '' && !this.ctx.signal.aborted) {
        await this.leaveGroup('the consumer unsubscribed');
      }
    } finally {
      this.loop = null;
      this.subscription = null;
      this.topics = [];
      this.partitionCounts = new Map();
      this.memberIdValue = '';
      this.generationValue = -1;
      this.leftForPoll = false;
      this.rejoinNeeded = true;
    }
  }

  /**
   * Moves an owned partition's position: the next record handed out of it is at `offset` (or
   * the first one after it, in a compacted log), and the next commit without arguments commits
   * `offset` even before that record (as Kafka commits the position). `offset` may also be
   * 'earliest', 'latest' or `{ timestamp }` (ms): resolved as the assign-mode consumer's
   * `from` is (ListOffsets, at the next fetch); the next commit without arguments then covers
   * the partition from its first record handed out. Records of it already polled are dropped.
   * PARTITION_NOT_OWNED for a partition this member does not own.
   */
  seek(target: SeekTarget): void {
    this.checkOpen();
    checkOptionNames('seek', target, OptionNames.commitOffset);
    const tp = checkTopicPartition('seek', target);
    const to = target.offset;
    const numeric = typeof to === 'number';
    if (numeric && (!Number.isSafeInteger(to) || to < 0)) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `seek.offset: expected a non-negative integer, 'earliest', 'latest' or { timestamp }, got ${to}`,
      );
    }
    const k = tpKey(tp);
    this.ownedOrThrow('seek', tp);
    // Checks a start position (the assign-mode consumer's code) before anything changes here.
    this.inner.seek(tp.topic, tp.partition, to);
    // A new owner object: records polled before the seek no longer match it (records()).
    this.owned.set(k, { topic: tp.topic, partition: tp.partition });
    if (numeric) this.processed.set(k, to);
    else this.processed.delete(k);
  }

  /**
   * Stops fetching owned partitions: records of them not yet polled are not handed out until
   * resume() (those of the poll in hand, at most maxPollRecords, still are). The membership goes
   * on (heartbeats, commits); an application that keeps iterating while everything is paused
   * is polling, so maxPollIntervalMs is not tripped. A partition revoked and assigned again
   * starts unpaused; one kept across a rebalance stays paused. PARTITION_NOT_OWNED for a
   * partition this member does not own (nothing is paused then).
   */
  pause(partitions: readonly TopicPartition[]): void {
    this.setPaused('pause', partitions, true);
  }

  /** Fetches paused partitions again, from where they stopped. PARTITION_NOT_OWNED as pause. */
  resume(partitions: readonly TopicPartition[]): void {
    this.setPaused('resume', partitions, false);
  }

  /** The owned partitions that are paused now, sorted. */
  paused(): TopicPartition[] {
    return sortTps(this.inner.assignment().filter((a) => a.paused && this.owned.has(tpKey(a))));
  }

  private setPaused(what: string, partitions: readonly TopicPartition[], paused: boolean): void {
    this.checkOpen();
    if (!Array.isArray(partitions)) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `${what}: expected a list of { topic, partition }`,
      );
    }
    const list = partitions.map((p, i) => checkTopicPartition(`${what}[${i}]`, p));
    // All or nothing: every partition is checked before any changes.
    for (const tp of list) this.ownedOrThrow(what, tp);
    for (const [topic, tps] of byTopic(list)) {
      const ps = tps.map((tp) => tp.partition);
      if (paused) this.inner.pause(topic, ps);
      else this.inner.resume(topic, ps);
    }
  }

  private ownedOrThrow(what: string, tp: TopicPartition): void {
    if (!this.owned.has(tpKey(tp))) {
      throw new StreamBusError(
        ErrorCode.PARTITION_NOT_OWNED,
        `${what}: ${tp.topic}/${tp.partition} is not assigned to this member of group '${this.groupId}' (it owns ${this.owned.size} partitions)`,
      );
    }
  }

  /** The partitions owned now, sorted. */
  assignment(): TopicPartition[] {
    return sortTps([...this.owned.values()]);
  }

  /** `for await (const record of consumer)`: same as records(). */
  [Symbol.asyncIterator](): AsyncIterator<ConsumerRecord> {
    return this.records();
  }

  /**
   * Records of the partitions this member owns, in offset order per partition, until close().
   * A record is processed once the next one is asked for (or the loop is left): commits cover
   * it from then on. A membership error that cannot be recovered (FENCED_INSTANCE_ID, a group
   * the coordinator refuses, NO_COMMITTED_OFFSET) ends the iteration with that error.
   */
  async *records(): AsyncGenerator<ConsumerRecord, void, undefined> {
    this.checkOpen();
    while (!this.closing && !this.ctx.signal.aborted) {
      const batches = await this.pollBatches();
      // Who owned each batch's partition when it was polled: a seek or a revocation since then
      // replaces the owner object, and the batch is not handed out.
      const owners = batches.map((b) => this.owned.get(key(b.topic, b.partition)));
      for (const b of batches) {
        // The position before the first record handed out (lag() and commits start from it).
        const k = key(b.topic, b.partition);
        if (this.owned.has(k) && !this.processed.has(k) && b.records.length > 0) {
          this.processed.set(k, b.records[0]!.offset);
        }
      }
      for (const [i, b] of batches.entries()) {
        const k = key(b.topic, b.partition);
        const owner = owners[i];
        if (owner === undefined || this.owned.get(k) !== owner) continue;
        if (b.records.length === 0) {
          // Only control batches (a new leader's no-op): nothing to hand out, but the position,
          // and so the next commit, moves past them.
          if (!this.closing) this.processed.set(k, b.nextOffset);
          continue;
        }
        const last = b.records[b.records.length - 1]!;
        for (const r of b.records) {
          // Revoked (or revoked and given back) since the poll: the rest is not ours to hand out.
          if (this.owned.get(k) !== owner || this.closing) break;
          try {
            yield {
              topic: b.topic,
              partition: b.partition,
              offset: r.offset,
              timestamp: r.timestamp,
              key: r.key,
              value: r.value,
              headers: r.headers,
            };
          } finally {
            // Runs when the application asks for the next record or leaves the loop.
            this.lastPollMs = Date.now();
            if (this.owned.get(k) === owner || this.revoking.get(k) === owner) {
              // After a batch's last record: past the control batches that follow it too.
              this.processed.set(k, r === last ? b.nextOffset : r.offset + 1);
            }
          }
        }
      }
    }
  }

  /**
   * The asynchronous commit (Kafka's commitAsync): `commit(offsets)` started and not awaited.
   * It never throws nor rejects: `onDone` gets null once committed, or the error (a bad
   * argument, or any error `commit` would reject with). Commits keep their order on the wire.
   */
  commitAsync(offsets?: readonly CommitOffset[], onDone?: (err: Error | null) => void): void {
    const done = (err: Error | null): void => {
      try {
        onDone?.(err);
      } catch {
        // The callback's own failure is the application's; it never becomes an unhandled rejection.
      }
    };
    // commit is async: a bad argument or a closed consumer rejects too, it never throws here.
    this.commit(offsets).then(
      () => done(null),
      (err: unknown) => done(err as Error),
    );
  }

  /**
   * Commits offsets and waits for the coordinator's answer: without arguments the processed
   * position of every owned partition that moved since its last commit; with a list, exactly
   * those offsets (each the next offset to consume). UNKNOWN_MEMBER_ID before the first
   * assignment; ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID when the group moved on (the member
   * rejoins; its partitions' records may be processed again elsewhere: at-least-once).
   */
  async commit(offsets?: readonly CommitOffset[]): Promise<void> {
    this.checkOpen();
    let list: CommitOffset[];
    if (offsets === undefined) {
      list = this.processedOffsets([...this.owned.values(), ...this.revoking.values()]);
    } else {
      if (!Array.isArray(offsets)) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          'commit: expected a list of { topic, partition, offset }',
        );
      }
      list = offsets.map((o, i) => {
        checkOptionNames(`commit[${i}]`, o, OptionNames.commitOffset);
        if (typeof o.topic !== 'string' || o.topic === '') {
          throw new StreamBusError(
            ErrorCode.INVALID_ARGUMENT,
            `commit[${i}].topic: expected a name`,
          );
        }
        intOption(`commit[${i}].partition`, o.partition, 0);
        if (!Number.isSafeInteger(o.offset) || o.offset < 0) {
          throw new StreamBusError(
            ErrorCode.INVALID_ARGUMENT,
            `commit[${i}].offset: expected a non-negative integer, got ${o.offset}`,
          );
        }
        return { topic: o.topic, partition: o.partition, offset: o.offset };
      });
    }
    await this.commitOffsets(list);
  }

  /**
   * Lag of every owned partition: its log end (ListOffsets latest, asked now) minus the next
   * offset to process.
   */
  async lag(): Promise<PartitionLag[]> {
    this.checkOpen();
    const positions = new Map(
      this.inner.assignment().map((a) => [key(a.topic, a.partition), a.position]),
    );
    const out: PartitionLag[] = [];
    for (const [topic, tps] of byTopic(this.owned.values())) {
      const ends = await this.admin.listOffsets(
        topic,
        'latest',
        tps.map((tp) => tp.partition),
      );
      for (const e of ends) {
        const k = key(topic, e.partition);
        const position = this.processed.get(k) ?? positions.get(k) ?? null;
        out.push({
          topic,
          partition: e.partition,
          position,
          logEnd: e.offset,
          lag: position === null ? null : Math.max(0, e.offset - position),
        });
      }
    }
    return out.sort((a, b) =>
      a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1,
    );
  }

  /**
   * Ends the iterators, commits the processed offsets (with auto-commit), calls onRevoked, and
   * leaves the group (a static member stays, to come back within its session timeout without a
   * rebalance). Idempotent.
   */
  close(): Promise<void> {
    this.closeDone ??= this.closeOnce();
    return this.closeDone;
  }

  private async closeOnce(): Promise<void> {
    this.closing = true;
    this.closeRaces.fire();
    this.stopRaces.fire();
    this.wake();
    await this.unsubscribing?.catch(() => undefined);
    // The loop ends at its next step; a join or sync it waits on is abandoned (raced with close).
    await this.loop;
    try {
      if (this.owned.size > 0 && !this.ctx.signal.aborted) {
        await this.revoke([...this.owned.values()], false);
      }
      if (this.groupInstanceId === null && this.memberIdValue !== '' && !this.ctx.signal.aborted) {
        await this.leaveGroup('the consumer is closing');
      }
    } finally {
      await this.inner.close();
    }
  }

  // --- the membership loop ------------------------------------------------------------------

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closing && !this.stopRequested && !this.ctx.signal.aborted) {
      try {
        if (this.leftForPoll) {
          await this.sleep(this.heartbeatIntervalMs);
        } else if (this.rejoinNeeded || this.generationValue < 0) {
          await this.joinAndSync();
        } else {
          await this.sleep(this.heartbeatIntervalMs);
          if (!this.closing && !this.rejoinNeeded) await this.periodic();
        }
        failures = 0;
      } catch (err) {
        if (this.closing || this.stopRequested || this.ctx.signal.aborted) return;
        if (!(err instanceof StreamBusError) || !err.retriable) throw err;
        // The coordinator stayed away longer than the retry policy: the member keeps trying.
        failures++;
        await this.sleep(
          Math.min(
            this.ctx.retryPolicy.backoffMaxMs,
            this.ctx.retryPolicy.backoffInitialMs * 2 ** failures,
          ),
        );
      }
    }
  }

  /** Heartbeat, auto-commit, subscription check and the max-poll-interval check. */
  private async periodic(): Promise<void> {
    const now = Date.now();
    if (!this.pollPending && now - this.lastPollMs > this.maxPollIntervalMs) {
      await this.leaveForPollTimeout();
      return;
    }
    await this.heartbeat();
    if (this.rejoinNeeded || this.closing) return;
    if (this.autoCommit && now >= this.nextAutoCommitMs) {
      this.nextAutoCommitMs = now + this.autoCommitIntervalMs;
      await this.autoCommitOwned();
    }
    if (now >= this.nextMetadataMs) {
      this.nextMetadataMs = now + this.metadataRefreshMs;
      const before = this.subscriptionKey();
      await this.refreshSubscription();
      if (this.subscriptionKey() !== before) this.rejoinNeeded = true;
    }
  }

  private async autoCommitOwned(): Promise<void> {
    try {
      await this.commitOffsets(this.processedOffsets([...this.owned.values()]));
    } catch (err) {
      // A rebalance in progress or a generation that moved on: the rejoin commits what it can.
      if (err instanceof StreamBusError && !err.retriable) return;
      throw err;
    }
  }

  private subscriptionKey(): string {
    return JSON.stringify([this.topics, [...this.partitionCounts]]);
  }

  private async heartbeat(): Promise<void> {
    const res = await this.raceClose(
      this.coordinatorRequest(
        (conn) =>
          conn.request(ApiKey.HEARTBEAT, {
            groupId: this.groupId,
            generation: this.generationValue,
            memberId: this.memberIdValue,
            groupInstanceId: this.groupInstanceId,
          }),
        this.sessionTimeoutMs,
      ),
    );
    if (res === null) return;
    await this.onGroupError(res.errorCode, res.errorMessage, 'heartbeat');
  }

  /**
   * Reacts to a group answer's error code: a rebalance (rejoin, keeping the partitions), a lost
   * membership (partitions lost, rejoin), or a fatal error (thrown, not retriable).
   */
  private async onGroupError(
    code: number,
    message: string | undefined,
    what: string,
  ): Promise<void> {
    if (code === 0) return;
    if (code === ErrorCode.REBALANCE_IN_PROGRESS) {
      this.rejoinNeeded = true;
      return;
    }
    if (MEMBERSHIP_ERRORS.has(code)) {
      await this.loseMembership(code === ErrorCode.UNKNOWN_MEMBER_ID);
      return;
    }
    throw new StreamBusError(code, message ?? `${what} in group '${this.groupId}'`);
  }

  /** The coordinator forgot this member or its generation: its partitions are lost. */
  private async loseMembership(forgetMemberId: boolean): Promise<void> {
    if (forgetMemberId) this.memberIdValue = '';
    const lost = [...this.owned.values()];
    this.generationValue = -1;
    this.rejoinNeeded = true;
    if (lost.length > 0) await this.revoke(lost, true);
  }

  private async joinAndSync(): Promise<void> {
    // Eager protocols give up everything before they join (committing it first).
    if (!this.cooperative && this.owned.size > 0) {
      await this.revoke([...this.owned.values()], false);
    }
    await this.refreshSubscription();
    this.nextMetadataMs = Date.now() + this.metadataRefreshMs;
    this.rejoinNeeded = false;
    const metadata = encodeSubscription({
      topics: this.topics,
      ownedPartitions: this.cooperative ? sortTps([...this.owned.values()]) : [],
      userData: EMPTY,
    });
    let join: JoinGroupResponse;
    for (;;) {
      const res = await this.raceClose(
        this.coordinatorRequest(
          (conn) =>
            conn.request(
              ApiKey.JOIN_GROUP,
              {
                groupId: this.groupId,
                memberId: this.memberIdValue,
                groupInstanceId: this.groupInstanceId,
                protocolType: PROTOCOL_TYPE,
                protocols: [{ name: this.assignor, metadata }],
                sessionTimeoutMs: this.sessionTimeoutMs,
                rebalanceTimeoutMs: this.maxPollIntervalMs,
                clientId: this.ctx.cluster.clientId,
              },
              this.maxPollIntervalMs,
            ),
          this.maxPollIntervalMs,
          this.lane,
        ),
      );
      if (res === null) return;
      if (res.errorCode === ErrorCode.MEMBER_ID_REQUIRED) {
        // KIP-394: join again with the id the coordinator handed out.
        this.memberIdValue = res.memberId;
        continue;
      }
      if (res.errorCode === ErrorCode.REBALANCE_IN_PROGRESS) continue;
      if (res.errorCode === ErrorCode.UNKNOWN_MEMBER_ID) {
        await this.loseMembership(true);
        this.rejoinNeeded = false;
        continue;
      }
      if (res.errorCode !== 0) {
        throw new StreamBusError(
          res.errorCode,
          res.errorMessage ?? `join of group '${this.groupId}'`,
        );
      }
      join = res;
      break;
    }
    this.memberIdValue = join.memberId;
    const assignments =
      join.leaderId === join.memberId && !join.skipAssignment ? await this.assign(join) : [];
    const sync = await this.raceClose(
      this.coordinatorRequest(
        (conn) =>
          conn.request(
            ApiKey.SYNC_GROUP,
            {
              groupId: this.groupId,
              generation: join.generation,
              memberId: join.memberId,
              groupInstanceId: this.groupInstanceId,
              protocolType: PROTOCOL_TYPE,
              protocolName: join.protocolName,
              assignments,
            },
            this.maxPollIntervalMs,
          ),
        this.maxPollIntervalMs,
        this.lane,
      ),
    );
    if (sync === null) return;
    if (sync.errorCode !== 0) {
      await this.onGroupError(sync.errorCode, sync.errorMessage, 'sync');
      this.rejoinNeeded = true;
      return;
    }
    this.generationValue = join.generation;
    const assigned = new Map<string, TopicPartition>();
    for (const tp of decodeAssignment(sync.assignment).partitions) assigned.set(tpKey(tp), tp);
    const revoked = [...this.owned.values()].filter((o) => !assigned.has(tpKey(o)));
    const added = [...assigned.values()].filter((tp) => !this.owned.has(tpKey(tp)));
    if (revoked.length > 0) {
      await this.revoke(revoked, false);
      // KIP-429: rejoin so the next rebalance can hand the revoked partitions on.
      if (this.cooperative) this.rejoinNeeded = true;
    }
    await this.addPartitions(added);
    this.nextAutoCommitMs = Date.now() + this.autoCommitIntervalMs;
    await this.onAssigned?.({
      generation: this.generationValue,
      memberId: this.memberIdValue,
      partitions: sortTps(added),
      assignment: this.assignment(),
    });
  }

  /** The leader's part: the assignor over every member's subscription. */
  private async assign(
    join: JoinGroupResponse,
  ): Promise<Array<{ memberId: string; assignment: Buffer }>> {
    const assignor = ASSIGNORS.get(join.protocolName);
    if (assignor === undefined) {
      throw new StreamBusError(
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
        `group '${this.groupId}' chose assignor '${join.protocolName}', which this client lacks`,
      );
    }
    const members = join.members.map((m) => {
      const s = decodeSubscription(m.metadata);
      return { memberId: m.memberId, topics: s.topics, ownedPartitions: s.ownedPartitions };
    });
    const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
    const counts = new Map<string, number>();
    if (topics.length > 0) {
      const md = await this.ctx.run(() => this.ctx.cluster.refreshMetadata(topics, false));
      for (const t of md.topics) if (t.errorCode === 0) counts.set(t.name, t.partitions.length);
    }
    return [...assignor.assign(members, counts)].map(([memberId, partitions]) => ({
      memberId,
      assignment: encodeAssignment({ partitions, userData: EMPTY }),
    }));
  }

  /** The subscribed topics now: the named ones, or the pattern's matches; with partition counts. */
  private async refreshSubscription(): Promise<void> {
    const sub = this.subscription;
    if (sub === null) return;
    const md = await this.ctx.run(() =>
      this.ctx.cluster.refreshMetadata('topics' in sub ? [...sub.topics] : null, false),
    );
    const counts = new Map<string, number>();
    for (const t of md.topics) if (t.errorCode === 0) counts.set(t.name, t.partitions.length);
    this.topics =
      'topics' in sub
        ? [...sub.topics]
        : [...counts.keys()].filter((t) => !t.startsWith('__') && sub.pattern.test(t)).sort();
    this.partitionCounts = new Map(
      this.topics.filter((t) => counts.has(t)).map((t) => [t, counts.get(t)!]),
    );
  }

  /** Starts fetching newly assigned partitions from the group's committed offsets. */
  private async addPartitions(added: readonly TopicPartition[]): Promise<void> {
    if (added.length === 0) return;
    const committed = await this.fetchCommitted(added);
    const starts = new Map<string, { topic: string; from: StartFrom; partitions: number[] }>();
    for (const tp of added) {
      const offset = committed.get(tpKey(tp)) ?? -1;
      let from: StartFrom;
      if (offset >= 0) from = { offset };
      else if (this.autoOffsetReset === 'none') {
        throw new StreamBusError(
          ErrorCode.NO_COMMITTED_OFFSET,
          `group '${this.groupId}' has no committed offset for ${tp.topic}/${tp.partition} and autoOffsetReset is 'none'`,
        );
      } else from = this.autoOffsetReset;
      const k = `${tp.topic}\u0000${JSON.stringify(from)}`;
      const entry = starts.get(k) ?? { topic: tp.topic, from, partitions: [] };
      entry.partitions.push(tp.partition);
      starts.set(k, entry);
      this.owned.set(tpKey(tp), { topic: tp.topic, partition: tp.partition });
      if (offset >= 0) this.committed.set(tpKey(tp), offset);
    }
    for (const s of starts.values()) {
      try {
        await this.inner.assign({ topic: s.topic, partitions: s.partitions, from: s.from });
      } catch (err) {
        // Deleted since the assignment: not ours to consume; the next refresh drops the topic.
        if (!(err instanceof StreamBusError) || err.code !== ErrorCode.TOPIC_NOT_FOUND) throw err;
        for (const p of s.partitions) this.owned.delete(key(s.topic, p));
      }
    }
  }

  private async fetchCommitted(tps: readonly TopicPartition[]): Promise<Map<string, number>> {
    const res = await this.coordinatorRequest(async (conn) => {
      const r = await conn.request(ApiKey.OFFSET_FETCH, {
        groupId: this.groupId,
        topics: [...byTopic(tps)].map(([name, list]) => ({
          name,
          partitions: list.map((tp) => ({ partition: tp.partition })),
        })),
      });
      return r;
    });
    if (res.errorCode !== 0) {
      throw new StreamBusError(res.errorCode, res.errorMessage ?? `offsets of '${this.groupId}'`);
    }
    const out = new Map<string, number>();
    for (const t of res.topics) {
      for (const p of t.partitions) {
        if (p.errorCode !== 0 && p.errorCode !== ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) {
          throw new StreamBusError(
            p.errorCode,
            p.errorMessage ?? `offset of ${t.name}/${p.partition}`,
          );
        }
        out.set(key(t.name, p.partition), p.errorCode === 0 ? p.offset : -1);
      }
    }
    return out;
  }

  /**
   * Gives partitions up: no more records of them are handed out; with `lost` false their
   * processed offsets are committed (auto-commit) before onRevoked, then they are unassigned.
   */
  private async revoke(partitions: readonly Owned[], lost: boolean): Promise<void> {
    for (const o of partitions) {
      const k = tpKey(o);
      this.owned.delete(k);
      this.revoking.set(k, o);
    }
    try {
      if (!lost && this.autoCommit && this.generationValue >= 0) {
        await this.commitOffsets(this.processedOffsets(partitions)).catch((err: unknown) => {
          // The generation moved on: their records may be processed again (at-least-once).
          if (!(err instanceof StreamBusError)) throw err;
        });
      }
      await this.onRevoked?.({
        generation: this.generationValue,
        memberId: this.memberIdValue,
        partitions: sortTps([...partitions]),
        lost,
      });
    } finally {
      for (const [topic, list] of byTopic(partitions)) {
        for (const o of list) {
          const k = tpKey(o);
          this.revoking.delete(k);
          this.processed.delete(k);
          this.committed.delete(k);
        }
        this.inner.unassign(
          topic,
          list.map((o) => o.partition),
        );
      }
    }
  }

  /** The processed positions of these partitions that moved since their last commit. */
  private processedOffsets(partitions: readonly Owned[]): CommitOffset[] {
    const out: CommitOffset[] = [];
    for (const o of partitions) {
      const offset = this.processed.get(tpKey(o));
      if (offset !== undefined && offset !== this.committed.get(tpKey(o))) {
        out.push({ topic: o.topic, partition: o.partition, offset });
      }
    }
    return out;
  }

  private async commitOffsets(list: readonly CommitOffset[]): Promise<void> {
    if (list.length === 0) return;
    if (this.generationValue < 0 || this.memberIdValue === '') {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_MEMBER_ID,
        `not a member of group '${this.groupId}' yet: commit after the first assignment`,
      );
    }
    const res = await this.coordinatorRequest(async (conn) => {
      const r = await conn.request(ApiKey.OFFSET_COMMIT, {
        groupId: this.groupId,
        generation: this.generationValue,
        memberId: this.memberIdValue,
        groupInstanceId: this.groupInstanceId,
        topics: [...byTopic(list)].map(([name, tps]) => ({
          name,
          partitions: tps.map((tp) => ({
            partition: tp.partition,
            offset: tp.offset,
            metadata: null,
          })),
        })),
      });
      return r;
    });
    let failed: StreamBusError | null = null;
    for (const t of res.topics) {
      for (const p of t.partitions) {
        if (p.errorCode === 0) {
          const c = list.find((x) => x.topic === t.name && x.partition === p.partition);
          if (c !== undefined) this.committed.set(key(t.name, p.partition), c.offset);
        } else {
          failed ??= new StreamBusError(
            p.errorCode,
            p.errorMessage ?? `commit of ${t.name}/${p.partition} in group '${this.groupId}'`,
          );
        }
      }
    }
    if (failed !== null) {
      if (MEMBERSHIP_ERRORS.has(failed.code)) {
        this.rejoinNeeded = true;
        this.wake();
      }
      throw failed;
    }
  }

  private async leaveGroup(reason: string): Promise<void> {
    const memberId = this.memberIdValue;
    this.memberIdValue = '';
    this.generationValue = -1;
    await this.coordinatorRequest((conn) =>
      conn.request(ApiKey.LEAVE_GROUP, {
        groupId: this.groupId,
        members: [{ memberId, groupInstanceId: this.groupInstanceId, reason }],
      }),
    ).catch(() => undefined);
  }

  /** maxPollIntervalMs passed without a poll: give the partitions back and leave. */
  private async leaveForPollTimeout(): Promise<void> {
    this.leftForPoll = true;
    if (this.owned.size > 0) await this.revoke([...this.owned.values()], false);
    await this.leaveGroup(`no poll within maxPollIntervalMs (${this.maxPollIntervalMs} ms)`);
  }

  private coordinatorRequest<T>(
    send: (conn: BrokerConnection) => Promise<T>,
    budgetMs?: number,
    lane?: string,
  ): Promise<T> {
    return coordinatorRequest(this.ctx, this.groupId, send, {
      ...(budgetMs === undefined ? {} : { budgetMs }),
      ...(lane === undefined ? {} : { lane }),
    });
  }

  /** The request's answer, or null when close() came first (the request is abandoned). */
  private async raceClose<T>(p: Promise<T>): Promise<T | null> {
    return this.stopRaces.race(p);
  }

  private async pollBatches() {
    if (this.fatal !== null) throw this.fatal;
    this.lastPollMs = Date.now();
    if (this.leftForPoll) {
      this.leftForPoll = false;
      this.rejoinNeeded = true;
      this.wake();
    }
    this.pollPending = true;
    try {
      const batches = (await this.closeRaces.race(this.inner.poll())) ?? [];
      if (this.fatal !== null) throw this.fatal;
      return batches;
    } catch (err) {
      // The membership's error, not the inner consumer's closing because of it.
      if (this.fatal !== null) throw this.fatal;
      // A leader that stayed away longer than the retry policy (a leadership move under load):
      // as the membership loop does for the coordinator, the fetch is tried again at the next
      // poll, after a backoff; the application never sees a retriable error.
      if (err instanceof StreamBusError && err.retriable && !this.closing) {
        await this.closeRaces.race(
          new Promise<void>((resolve) => setTimeout(resolve, this.ctx.retryPolicy.backoffMaxMs)),
        );
        return [];
      }
      throw err;
    } finally {
      this.pollPending = false;
      this.lastPollMs = Date.now();
    }
  }

  private setFatal(err: unknown): void {
    this.fatal = err;
    // The iterator's poll wakes (its consumer's idle wait ends) and throws it.
    void this.inner.close();
  }

  /** Sleeps up to `ms`; a wake() since the last sleep (or during it) ends it at once. */
  private sleep(ms: number): Promise<void> {
    if (this.wakePending || this.closing || this.stopRequested) {
      this.wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeLoop = done;
    });
  }

  private wake(): void {
    const w = this.wakeLoop;
    this.wakeLoop = null;
    if (w === null) this.wakePending = true;
    else w();
  }

  private checkOpen(): void {
    if (this.closing || this.ctx.signal.aborted) {
      throw new StreamBusError(ErrorCode.CLIENT_CLOSED, 'consumer closed');
    }
  }
}
