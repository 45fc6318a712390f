// Configurations and quorum arithmetic: the configuration-entry codec, applying a single-server
// change (add learner, promote to voter, remove), and the majority rules for commit, votes and
// check-quorum. Pure functions; the node decides when a configuration is in force.
//
// Configuration entry format (EntryType.Conf `data`), all integers big-endian:
//   u8  version = 1
//   u16 voterCount, then voterCount x u32 node id (ascending)
//   u16 learnerCount, then learnerCount x u32 node id (ascending)
// The entry carries the whole resulting configuration, not the delta, so recovery needs only the
// last configuration entry of the log.

import { RaftError, RaftErrorCode } from './errors.js';
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type LogIndex,
  type NodeId,
} from './types.js';

const CONF_VERSION = 1;
const NODES_MAX = 0xffff;

export const EMPTY_CONF: ConfState = Object.freeze({ voters: [], learners: [] });

export function encodeConfState(conf: ConfState): Uint8Array {
  const out = new Uint8Array(1 + 2 + 4 * conf.voters.length + 2 + 4 * conf.learners.length);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint8(at, CONF_VERSION);
  at += 1;
  for (const list of [conf.voters, conf.learners]) {
    view.setUint16(at, list.length);
    at += 2;
    for (const id of list) {
      view.setUint32(at, id);
      at += 4;
    }
  }
  return out;
}

function bad(message: string): RaftError {
  return new RaftError(RaftErrorCode.INVALID_ARGUMENT, `configuration entry: ${message}`);
}

export function decodeConfState(data: Uint8Array): ConfState {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.byteLength < 5) throw bad(`too short (${data.byteLength} bytes)`);
  if (view.getUint8(0) !== CONF_VERSION) throw bad(`unknown version ${view.getUint8(0)}`);
  let at = 1;
  const lists: NodeId[][] = [];
  for (let k = 0; k < 2; k++) {
    if (at + 2 > data.byteLength) throw bad('truncated count');
    const count = view.getUint16(at);
    at += 2;
    if (at + 4 * count > data.byteLength) throw bad('truncated node list');
    const list: NodeId[] = [];
    for (let i = 0; i < count; i++) {
      list.push(view.getUint32(at) as NodeId);
      at += 4;
    }
    lists.push(list);
  }
  if (at !== data.byteLength) throw bad(`${data.byteLength - at} trailing bytes`);
  const conf = { voters: lists[0]!, learners: lists[1]! };
  checkConf(conf);
  return conf;
}

/** Invariant 1 of ConfState: sorted, unique, disjoint, ids >= 1. */
export function checkConf(conf: ConfState): void {
  for (const list of [conf.voters, conf.learners]) {
    for (let i = 0; i < list.length; i++) {
      const id = list[i]!;
      if (!Number.isSafeInteger(id) || id < 1 || id > 0xffffffff) throw bad(`bad node id ${id}`);
      if (i > 0 && list[i - 1]! >= id) throw bad('node ids not strictly ascending');
    }
  }
  if (conf.voters.length + conf.learners.length > NODES_MAX) throw bad('too many nodes');
  for (const id of conf.learners) {
    if (conf.voters.includes(id)) throw bad(`node ${id} is both voter and learner`);
  }
}

const sorted = (ids: readonly NodeId[]): NodeId[] => [...ids].sort((a, b) => a - b);

/**
 * The configuration after one single-server change. Rejects changes that do nothing, that
 * would leave no voter, or that are not single-server.
 */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState {
  const id = change.node;
  if (!Number.isSafeInteger(id) || id < 1) throw bad(`bad node id ${id}`);
  const isVoter = conf.voters.includes(id);
  const isLearner = conf.learners.includes(id);
  switch (change.type) {
    case ConfChangeType.AddLearner:
      if (isVoter) throw bad(`node ${id} is a voter; demotion is not supported`);
      if (isLearner) throw bad(`node ${id} is already a learner`);
      return { voters: conf.voters, learners: sorted([...conf.learners, id]) };
    case ConfChangeType.AddVoter:
      if (isVoter) throw bad(`node ${id} is already a voter`);
      return {
        voters: sorted([...conf.voters, id]),
        learners: conf.learners.filter((l) => l !== id),
      };
    case ConfChangeType.Remove:
      if (!isVoter && !isLearner) throw bad(`node ${id} is not a member`);
      if (isVoter && conf.voters.length === 1) throw bad(`cannot remove the last voter ${id}`);
      return {
        voters: conf.voters.filter((v) => v !== id),
        learners: conf.learners.filter((l) => l !== id),
      };
    default:
      throw bad(`unknown change type ${String((change as { type: unknown }).type)}`);
  }
}

export function confEquals(a: ConfState, b: ConfState): boolean {
  return (
    a.voters.length === b.voters.length &&
    a.learners.length === b.learners.length &&
    a.voters.every((v, i) => v === b.voters[i]) &&
    a.learners.every((v, i) => v === b.learners[i])
  );
}

export function majority(voterCount: number): number {
  return (voterCount >> 1) + 1;
}

/**
 * The highest index that a majority of voters has durably stored: the majority-th largest of
 * `matchOf(voter)`. With no voters there is nothing to commit (returns 0). Up to
 * INSERTION_SORT_MAX voters (every real group) sorted in `scratch` by insertion:
 * `Array.prototype.sort` allocates a work array on every call, and a leader calls this on every
 * acknowledgement (issue 9: about 2 KiB of garbage per produce request).
 */
const INSERTION_SORT_MAX = 16;

export function quorumCommitIndex(
  voters: readonly NodeId[],
  matchOf: (id: NodeId) => number,
  scratch: number[],
): LogIndex {
  const n = voters.length;
  if (n === 0) return 0 as LogIndex;
  scratch.length = n;
  if (n > INSERTION_SORT_MAX) {
    for (let i = 0; i < n; i++) scratch[i] = matchOf(voters[i]!);
    scratch.sort((a, b) => b - a);
    return scratch[majority(n) - 1]! as LogIndex;
  }
  for (let i = 0; i < n; i++) {
    const m = matchOf(voters[i]!);
    let j = i;
    for (; j > 0 && scratch[j - 1]! < m; j--) scratch[j] = scratch[j - 1]!;
    scratch[j] = m;
  }
  return scratch[majority(n) - 1]! as LogIndex;
}

export const VoteResult = { Pending: 'pending', Won: 'won', Lost: 'lost' } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** The outcome of an election given the answers so far (missing voters are pending). */
export function tallyVotes(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const answer = votes.get(v);
    if (answer === true) granted++;
    else if (answer === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return VoteResult.Won;
  if (rejected > voters.length - need) return VoteResult.Lost;
  return VoteResult.Pending;
}
