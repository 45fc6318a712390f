// Changing the controller's voters (issue 12): `streambus cluster voters add ID | remove ID`
// (native API 36 AlterControllerVoters). Two pure parts, as for partition reassignment:
//
//   planControllerVoters   the controller's planner: one voter more or less, as a
//                          `set-controller-voters` record (the voter set wanted, in the state and
//                          its snapshots, so a restart or a snapshot keeps it)
//   nextVoterStep          what the controller leader does next to move the metadata Raft group
//                          there (controller-node.ts rule 5)
//
// Rules:
//   1. One voter at a time: a change is refused (CONTROLLER_VOTER_CHANGE_IN_PROGRESS, retriable)
//      while the group's voters are not yet the set last recorded.
//   2. A new voter must be a registered, live broker; every broker is a learner of the group
//      already (rule 5 of controller-node.ts), and it is promoted only once it is caught up (its
//      match reached the commit index), as a partition's learner is.
//   3. Removing is refused when it would leave no voter, or leave fewer live voters (registered,
//      unfenced) than a majority of the voters left (INVALID_CONTROLLER_VOTER_CHANGE, naming
//      why). The voter removed stays a learner while it is registered (it keeps the log).
//   4. The leader removes itself last: outside the set, it hands the controller role to a caught-up
//      voter of the set first, and that leader finishes.
//   5. Adding a voter already voting, or removing one that is not, plans nothing (a retry).
//   6. Once a set is recorded, the `--peers` of a restart do not change it (they only seed a
//      fresh metadata log), and the automatic promotion up to `votersTarget` stops: the operator
//      owns the quorum from then on.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { type MetadataRecord, REPLICAS_MAX } from './metadata-records.js';
import { applyRecord, type MetadataState } from './metadata-state.js';

export type VoterChangeOp = 'add' | 'remove';

export interface VoterChange {
  readonly op: VoterChangeOp;
  readonly brokerId: number;
}

function fail(code: number, message: string): never {
  throw new StreamBusError(code, message);
}

const list = (ids: readonly number[]): string => `[${ids.join(',')}]`;

function isLive(state: MetadataState, id: number): boolean {
  const b = state.brokers.get(id);
  return b !== undefined && !b.fenced;
}

/** The records for one voter more or less (rules 1-3, 5); `voters` = the group's voters now. */
export function planControllerVoters(
  state: MetadataState,
  voters: readonly number[],
  change: VoterChange,
): MetadataRecord[] {
  // A broker that left the registry is on its way out of the group (controller-node.ts rule 5).
  const now = voters.filter((id) => state.departed?.includes(id) !== true).sort((a, b) => a - b);
  const wanted = state.controllerVoters;
  if (wanted !== undefined && !sameIds(wanted, now)) {
    fail(
      ErrorCode.CONTROLLER_VOTER_CHANGE_IN_PROGRESS,
      `the controller voters are still moving from ${list(now)} to ${list(wanted)}: one change at a time`,
    );
  }
  const id = change.brokerId;
  let next: number[];
  if (change.op === 'add') {
    if (now.includes(id)) return [];
    const b = state.brokers.get(id);
    if (b === undefined || b.fenced) {
      fail(
        ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
        `broker ${id} is ${b === undefined ? 'not a registered broker' : 'not live (fenced)'}: it cannot become a controller voter`,
      );
    }
    if (now.length >= REPLICAS_MAX) {
      fail(
        ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
        `the controller already has ${now.length} voters, the most it may have`,
      );
    }
    next = [...now, id].sort((a, b) => a - b);
  } else {
    if (!now.includes(id)) return [];
    next = now.filter((v) => v !== id);
    if (next.length === 0) {
      fail(
        ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
        `broker ${id} is the last controller voter: the controller quorum cannot be empty`,
      );
    }
    const live = next.filter((v) => isLive(state, v));
    const majority = Math.floor(next.length / 2) + 1;
    if (live.length < majority) {
      fail(
        ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
        `removing broker ${id} would leave the voters ${list(next)} with ${live.length} live (${list(live)}), fewer than the majority of ${majority} they need`,
      );
    }
  }
  const unknown = next.find((v) => !state.brokers.has(v));
  if (unknown !== undefined) {
    fail(
      ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
      `voter ${unknown} is not a registered broker yet: start it (or wait for its registration) before changing the voters`,
    );
  }
  const record: MetadataRecord = { type: 'set-controller-voters', voters: next };
  const applied = applyRecord(state, record);
  if (applied.noop !== null) throw new Error(`assertion: planned a no-op: ${applied.noop}`);
  return [record];
}

export interface VoterView {
  /** The controller leader running the step. */
  readonly self: number;
  /** The voters wanted (the state's `controllerVoters`). */
  readonly target: readonly number[];
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  /** Registered and unfenced. */
  readonly live: (id: number) => boolean;
  /** Its Raft match reaches the commit index. */
  readonly caughtUp: (id: number) => boolean;
}

export type VoterStep =
  | { readonly kind: 'none' }
  | { readonly kind: 'wait'; readonly why: string }
  | { readonly kind: 'add-voter'; readonly node: number }
  | { readonly kind: 'remove'; readonly node: number }
  | { readonly kind: 'transfer'; readonly to: number };

/** The next membership change towards `target` (rules 2, 4): adds first, then removals. */
export function nextVoterStep(v: VoterView): VoterStep {
  for (const id of v.target) {
    if (v.voters.includes(id)) continue;
    if (!v.learners.includes(id)) return { kind: 'wait', why: `broker ${id} is not a learner yet` };
    if (!v.live(id)) return { kind: 'wait', why: `broker ${id} is not live` };
    if (!v.caughtUp(id)) return { kind: 'wait', why: `broker ${id} is catching up` };
    return { kind: 'add-voter', node: id };
  }
  for (const id of v.voters) {
    if (!v.target.includes(id) && id !== v.self) return { kind: 'remove', node: id };
  }
  if (!v.target.includes(v.self)) {
    const to = v.target.find((id) => v.voters.includes(id) && v.caughtUp(id));
    return to === undefined
      ? { kind: 'wait', why: 'no voter of the new set is caught up to take the controller role' }
      : { kind: 'transfer', to };
  }
  return { kind: 'none' };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => b[i] === id);
}
