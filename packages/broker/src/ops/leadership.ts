// Moving partition and controller leadership on purpose (issue 12): the hand-over of a controlled
// shutdown (SIGTERM) and preferred-leader balancing. Leadership is each Raft group's: nothing
// here writes a leader into the metadata state. A leader hands over with a Raft leader transfer
// (the target is caught up, then told to campaign at once: TimeoutNow), and the new leader's
// report to the controller (cluster-node.ts) moves the state, as for any election.
//
//   handoffTargets(...)   pure: for the partitions this broker leads, whom to hand each to
//   balanceTargets(...)   pure: for the partitions this broker leads but should not (the
//                         preferred replica, replicas[0], is live and in sync), hand back to it
//   LeadershipOps         the async shell: `handOff(deadlineMs)` (a controlled shutdown's first
//                         part), `balance()` (one round here), `balanceCluster()` (every live
//                         broker, on demand: the RebalanceLeaders API)
//
// Rules:
//   1. A hand-over target is a replica the leader's Raft progress says is in sync, live in the
//      applied state (registered, unfenced): first those whose match reaches the commit index
//      now (`caughtUp`), then the others, each in assignment order; the n-th attempt of a
//      partition tries the n-th such replica (mod their count), so one slow target does not
//      stall it. A partition with no such replica (RF 1, or every follower behind) stays led
//      here, and the shutdown reports it as left. Why caught-up first: Raft sends TimeoutNow
//      only once the target's log matches the leader's, and proposals wait meanwhile. "In
//      sync" allows 30 ticks (3 s) behind, and in a rolling restart the broker restarted just
//      before was often the preferred (first) replica while still 200-300 entries and 1.6-2.3 s
//      behind: its catch-up (58-116 ms, under load) was part of every such hand-over's stall,
//      while the other follower was 0-4 entries behind (issue 12, traced).
//   2. Raft abandons a transfer that does not finish within an election timeout; the hand-over
//      re-issues one per partition every `retryMs` until the partition is led elsewhere or the
//      deadline passes. The controller role is handed to another live voter the same way.
//   2b. Once nothing is led here, the hand-over waits (at most `metadataWaitMs`, within the
//      deadline) until the applied metadata names a live leader other than this broker for every
//      partition it handed over: until then clients refreshing Metadata are sent here, and this
//      broker, still listening, answers NOT_LEADER at once instead of refusing connections
//      (the close that follows stops the listener). Issue 12's rolling-restart tail.
//   3. Balancing moves at most `movesPerRoundMax` partitions per round, only to a preferred
//      replica that is live in the state AND in sync by this leader's Raft progress (a restarted
//      broker takes its leaderships back only once it caught up).
//   4. A periodic balance round leaves a partition this broker has led for less than
//      `balanceLedForMsMin`: a broker in a controlled shutdown is live in the state until its
//      hand-over ends, so the replica it handed a partition to saw it as the preferred, in-sync
//      leader and handed the partition straight back (a ping-pong of transfers, each a stall for
//      producers, and reports racing each other). A restarted broker's partitions have been led
//      elsewhere since its shutdown, so they go back as before. On demand (RebalanceLeaders) the
//      operator asked: no minimum.
//   5. A periodic round that left wanted moves (rule 4's minimum, or rule 3's cap) asks for its
//      next round after `balanceLedForMsMin` instead of a whole interval (`lastRoundDeferred`):
//      before, the moves rule 4 put off waited 30 s, and landed in whatever came next (the
//      cluster bench's idle window: seconds of CPU for the terms they start).
import type { NodeId } from '@streambus/raft';
import {
  type PreferredLeaderMove,
  preferredLeaderMoves,
} from '../controller/controller-planner.js';
import { isLive, type MetadataState, topicByName } from '../controller/metadata-state.js';

/** What a hand-over or balance round needs to know of one partition this broker holds. */
export interface HeldLeadership {
  readonly topic: string;
  readonly partition: number;
  readonly isLeader: boolean;
  /** The Raft leader's in-sync replicas (this broker included); [] when not leader. */
  readonly inSync: readonly number[];
  /**
   * Of those, the followers whose match reaches the commit index now (rule 1 tries them first);
   * undefined: unknown (every in-sync replica counts as caught up).
   */
  readonly caughtUp?: readonly number[] | undefined;
  /** How long this broker has led the partition in its current term (ms); undefined: unknown. */
  readonly ledForMs?: number | undefined;
  transferLeadership(to: NodeId): void;
}

export interface Transfer {
  readonly topic: string;
  readonly partition: number;
  readonly to: number;
}

const keyOf = (topic: string, partition: number) => `${topic}/${partition}`;

/** Rule 1: whom each partition led here goes to on attempt `attempt(key)`, or null (none). */
export function handoffTargets(
  state: MetadataState,
  self: number,
  held: readonly HeldLeadership[],
  attempt: (key: string) => number,
): Array<Transfer | { readonly topic: string; readonly partition: number; readonly to: null }> {
  const out: Array<Transfer | { topic: string; partition: number; to: null }> = [];
  for (const h of held) {
    if (!h.isLeader) continue;
    const replicas = topicByName(state, h.topic)?.partitions[h.partition]?.replicas ?? [];
    const eligible = replicas.filter(
      (id) => id !== self && h.inSync.includes(id) && isLive(state, id),
    );
    const caughtUp = h.caughtUp;
    const candidates =
      caughtUp === undefined
        ? eligible
        : [
            ...eligible.filter((id) => caughtUp.includes(id)),
            ...eligible.filter((id) => !caughtUp.includes(id)),
          ];
    const to =
      candidates.length === 0
        ? null
        : candidates[attempt(keyOf(h.topic, h.partition)) % candidates.length]!;
    out.push({ topic: h.topic, partition: h.partition, to });
  }
  return out;
}

/**
 * Rules 3 and 4: the partitions led here whose preferred replica should take them back, leaving
 * those led here for less than `ledForMsMin`.
 */
export function balanceTargets(
  state: MetadataState,
  self: number,
  held: readonly HeldLeadership[],
  movesMax: number,
  ledForMsMin = 0,
): Transfer[] {
  return balancePlan(state, self, held, movesMax, ledForMsMin).moves;
}

/**
 * Rules 3 to 5: `balanceTargets`' moves, and how many wanted moves the round left for later
 * (led here for less than `ledForMsMin`, or past `movesMax`) though their target is in sync.
 */
export function balancePlan(
  state: MetadataState,
  self: number,
  held: readonly HeldLeadership[],
  movesMax: number,
  ledForMsMin = 0,
): { moves: Transfer[]; deferred: number } {
  const leading = new Map<string, HeldLeadership>();
  for (const h of held) if (h.isLeader) leading.set(keyOf(h.topic, h.partition), h);
  const out: Transfer[] = [];
  let deferred = 0;
  for (const m of preferredLeaderMoves(state, Number.MAX_SAFE_INTEGER)) {
    if (m.from !== self) continue;
    const h = leading.get(keyOf(m.topic, m.partition));
    if (h === undefined || !h.inSync.includes(m.to)) continue;
    if (out.length >= movesMax || (h.ledForMs ?? Number.POSITIVE_INFINITY) < ledForMsMin) {
      deferred++;
      continue;
    }
    out.push({ topic: m.topic, partition: m.partition, to: m.to });
  }
  return { moves: out, deferred };
}

export interface LeadershipHost {
  readonly self: number;
  state(): MetadataState;
  held(): HeldLeadership[];
  /** The metadata group: is this broker the controller, its voters, hand the role over. */
  controller(): {
    readonly isLeader: boolean;
    readonly voters: readonly number[];
    transferLeadership(to: number): boolean;
  };
  /** Asks live broker `id` to run one balance round; resolves with the transfers it started. */
  balanceOn(id: number): Promise<number>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface HandOffResult {
  /** Partitions still led here at the deadline (or with nobody to take them). */
  readonly partitionsLeft: string[];
  /** Still the controller at the deadline (with other voters to take it). */
  readonly controllerLeft: boolean;
  readonly transfers: number;
}

export interface LeadershipLimits {
  /** A transfer not finished after this long is issued again (rule 2). */
  readonly retryMs: number;
  readonly pollMs: number;
  /** Partitions one balance round moves at most (rule 3). */
  readonly movesPerRoundMax: number;
  /** A periodic round leaves partitions led here for less than this (rule 4). */
  readonly balanceLedForMsMin: number;
  /** The hand-over's wait for the metadata to name the new leaders, at most (rule 2b). */
  readonly metadataWaitMs: number;
}

/** Moves still wanted that an on-demand rebalance lists at most. */
const REMAINING_LISTED_MAX = 1000;

export const LEADERSHIP_DEFAULTS: LeadershipLimits = {
  retryMs: 1000,
  pollMs: 50,
  movesPerRoundMax: 100,
  balanceLedForMsMin: 5000,
  metadataWaitMs: 2000,
};

export class LeadershipOps {
  /** Rule 5: the last periodic round left wanted moves for later (run the next one soon). */
  lastRoundDeferred = false;

  constructor(
    private readonly host: LeadershipHost,
    private readonly o: Partial<LeadershipLimits> = {},
  ) {}

  /** Rule 4's minimum (ms). */
  get balanceLedForMsMin(): number {
    return this.o.balanceLedForMsMin ?? LEADERSHIP_DEFAULTS.balanceLedForMsMin;
  }

  private get retryMs(): number {
    return this.o.retryMs ?? LEADERSHIP_DEFAULTS.retryMs;
  }

  /**
   * Hands every partition leadership and the controller role to other brokers (rules 1, 2);
   * resolves once none is left here or at `deadlineMs` (host clock), saying what was left.
   */
  async handOff(deadlineMs: number): Promise<HandOffResult> {
    const h = this.host;
    const attempts = new Map<string, number>();
    const lastTry = new Map<string, number>();
    let transfers = 0;
    let controllerTry = Number.NEGATIVE_INFINITY;
    let controllerAttempt = 0;
    const due = (key: string, now: number) =>
      now - (lastTry.get(key) ?? Number.NEGATIVE_INFINITY) >= this.retryMs;
    for (;;) {
      const now = h.now();
      const state = h.state();
      const plan = handoffTargets(state, h.self, h.held(), (k) => attempts.get(k) ?? 0);
      const movable = plan.filter((t) => t.to !== null);
      const ctl = h.controller();
      const otherVoters = ctl.voters.filter((id) => id !== h.self && isLive(state, id));
      const controllerMovable = ctl.isLeader && otherVoters.length > 0;
      if ((movable.length === 0 && !controllerMovable) || now >= deadlineMs) {
        if (now < deadlineMs) await this.awaitMetadata(attempts, deadlineMs);
        return {
          partitionsLeft: plan.map((t) => keyOf(t.topic, t.partition)),
          controllerLeft: controllerMovable,
          transfers,
        };
      }
      const held = new Map(h.held().map((x) => [keyOf(x.topic, x.partition), x]));
      for (const t of movable) {
        const key = keyOf(t.topic, t.partition);
        if (!due(key, now)) continue;
        lastTry.set(key, now);
        attempts.set(key, (attempts.get(key) ?? 0) + 1);
        held.get(key)?.transferLeadership(t.to as NodeId);
        transfers++;
      }
      if (controllerMovable && now - controllerTry >= this.retryMs) {
        controllerTry = now;
        if (ctl.transferLeadership(otherVoters[controllerAttempt++ % otherVoters.length]!)) {
          transfers++;
        }
      }
      await h.sleep(this.o.pollMs ?? LEADERSHIP_DEFAULTS.pollMs);
    }
  }

  /** Rule 2b: until the state names another live leader for every partition in `handed`. */
  private async awaitMetadata(handed: ReadonlyMap<string, number>, deadlineMs: number) {
    const h = this.host;
    const until = Math.min(
      deadlineMs,
      h.now() + (this.o.metadataWaitMs ?? LEADERSHIP_DEFAULTS.metadataWaitMs),
    );
    const stale = (): boolean => {
      const state = h.state();
      for (const key of handed.keys()) {
        const cut = key.lastIndexOf('/');
        const p = topicByName(state, key.slice(0, cut))?.partitions[Number(key.slice(cut + 1))];
        if (p !== undefined && (p.leader === h.self || !isLive(state, p.leader))) return true;
      }
      return false;
    };
    while (h.now() < until && stale()) await h.sleep(this.o.pollMs ?? LEADERSHIP_DEFAULTS.pollMs);
  }

  /**
   * One balance round on this broker (rules 3, 4: `periodic` leaves recently taken
   * leaderships); returns the transfers started.
   */
  balance(periodic = false): number {
    const h = this.host;
    const held = h.held();
    const byKey = new Map(held.map((x) => [keyOf(x.topic, x.partition), x]));
    const { moves, deferred } = balancePlan(
      h.state(),
      h.self,
      held,
      this.o.movesPerRoundMax ?? LEADERSHIP_DEFAULTS.movesPerRoundMax,
      periodic ? this.balanceLedForMsMin : 0,
    );
    if (periodic) this.lastRoundDeferred = deferred > 0;
    for (const m of moves)
      byKey.get(keyOf(m.topic, m.partition))?.transferLeadership(m.to as NodeId);
    return moves.length;
  }

  /**
   * On demand: a balance round on every live broker (this one directly, the others over their
   * peer link), repeated every `retryMs` while moves are still wanted (a follower that was a
   * moment behind by its leader's Raft progress, a transfer Raft abandoned), until the state
   * shows none or `waitMs` passed. Returns the transfers started and the moves still wanted.
   * Nothing wanted to begin with: no round, nothing started.
   */
  async balanceCluster(
    waitMs: number,
  ): Promise<{ transfersStarted: number; remaining: PreferredLeaderMove[] }> {
    const h = this.host;
    const deadline = h.now() + waitMs;
    const wanted = () => preferredLeaderMoves(h.state(), REMAINING_LISTED_MAX);
    let transfersStarted = 0;
    let remaining = wanted();
    while (remaining.length > 0) {
      const state = h.state();
      const ids = [...state.brokers.values()].filter((b) => !b.fenced).map((b) => b.id);
      const counts = await Promise.all(
        ids.map((id) =>
          id === h.self ? Promise.resolve(this.balance()) : h.balanceOn(id).catch(() => 0),
        ),
      );
      transfersStarted += counts.reduce((a, b) => a + b, 0);
      const roundEnd = Math.min(deadline, h.now() + this.retryMs);
      do {
        await h.sleep(this.o.pollMs ?? LEADERSHIP_DEFAULTS.pollMs);
        remaining = wanted();
      } while (remaining.length > 0 && h.now() < roundEnd);
      if (h.now() >= deadline) break;
    }
    return { transfersStarted, remaining };
  }
}

/** The peer-link request kind asking a broker for one balance round (answer: u32 transfers). */
export const BALANCE_LEADERS_KIND = 'broker.balance-leaders';
