import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyConfChange,
  decodeConfState,
  encodeConfState,
  majority,
  quorumCommitIndex,
  tallyVotes,
  VoteResult,
} from './conf.js';
import { RaftError } from './errors.js';
import { ConfChangeType, type ConfState, type NodeId } from './types.js';

const idSet = fc.uniqueArray(fc.integer({ min: 1, max: 1000 }), { maxLength: 9 });

describe('configuration codec', () => {
  it('round-trips any valid configuration', () => {
    fc.assert(
      fc.property(idSet, idSet, (a, b) => {
        const voters = [...a].sort((x, y) => x - y) as NodeId[];
        const learners = b.filter((x) => !a.includes(x)).sort((x, y) => x - y) as NodeId[];
        const conf: ConfState = { voters, learners };
        expect(decodeConfState(encodeConfState(conf))).toEqual(conf);
      }),
    );
  });
  it('rejects truncated, trailing and unordered input with a typed error', () => {
    const good = encodeConfState({ voters: [1, 2] as NodeId[], learners: [] });
    for (const bad of [
      good.subarray(0, 6),
      new Uint8Array([...good, 0]),
      new Uint8Array([2, 0, 0, 0, 0]),
    ]) {
      expect(() => decodeConfState(bad)).toThrow(RaftError);
    }
    const unordered = encodeConfState({ voters: [2, 1] as NodeId[], learners: [] });
    expect(() => decodeConfState(unordered)).toThrow(/ascending/);
  });
});

describe('single-server changes', () => {
  const c: ConfState = { voters: [1, 2, 3] as NodeId[], learners: [4] as NodeId[] };
  it('adds learners, promotes and removes', () => {
    expect(applyConfChange(c, { type: ConfChangeType.AddLearner, node: 5 as NodeId })).toEqual({
      voters: [1, 2, 3],
      learners: [4, 5],
    });
    expect(applyConfChange(c, { type: ConfChangeType.AddVoter, node: 4 as NodeId })).toEqual({
      voters: [1, 2, 3, 4],
      learners: [],
    });
    expect(applyConfChange(c, { type: ConfChangeType.Remove, node: 2 as NodeId })).toEqual({
      voters: [1, 3],
      learners: [4],
    });
  });
  it('refuses no-op and unsafe changes', () => {
    expect(() => applyConfChange(c, { type: ConfChangeType.AddVoter, node: 1 as NodeId })).toThrow(
      RaftError,
    );
    expect(() =>
      applyConfChange(c, { type: ConfChangeType.AddLearner, node: 2 as NodeId }),
    ).toThrow(RaftError);
    expect(() => applyConfChange(c, { type: ConfChangeType.Remove, node: 9 as NodeId })).toThrow(
      RaftError,
    );
    const one: ConfState = { voters: [1] as NodeId[], learners: [] };
    expect(() => applyConfChange(one, { type: ConfChangeType.Remove, node: 1 as NodeId })).toThrow(
      /last voter/,
    );
  });
  it('keeps every majority of the old and new configurations intersecting', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.boolean(), (n, add) => {
        const oldSize = n;
        const newSize = add ? n + 1 : Math.max(1, n - 1);
        if (newSize === oldSize) return;
        // Single-server change: the union has max(old, new) members; two quorums intersect iff
        // their sizes sum to more than the union.
        expect(majority(oldSize) + majority(newSize)).toBeGreaterThan(Math.max(oldSize, newSize));
      }),
    );
  });
});

describe('quorum arithmetic against a naive model', () => {
  it('commit index = largest index held by a majority', () => {
    // One scratch reused across cases (as a node does), sizes on both sides of the insertion
    // sort's bound.
    const scratch: number[] = [];
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 50 }), { minLength: 1, maxLength: 40 }), (matches) => {
        const voters = matches.map((_, i) => (i + 1) as NodeId);
        const got = quorumCommitIndex(voters, (id) => matches[id - 1]!, scratch);
        let naive = 0;
        for (let idx = 0; idx <= 50; idx++) {
          if (matches.filter((m) => m >= idx).length >= Math.floor(matches.length / 2) + 1)
            naive = idx;
        }
        expect(got).toBe(naive);
      }),
    );
  });
  it('votes: won, lost or pending as counting says', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(true, false, undefined), { minLength: 1, maxLength: 9 }),
        (answers) => {
          const voters = answers.map((_, i) => (i + 1) as NodeId);
          const votes = new Map<NodeId, boolean>();
          answers.forEach((a, i) => {
            if (a !== undefined) votes.set((i + 1) as NodeId, a);
          });
          const yes = answers.filter((a) => a === true).length;
          const no = answers.filter((a) => a === false).length;
          const need = Math.floor(answers.length / 2) + 1;
          const expected =
            yes >= need
              ? VoteResult.Won
              : answers.length - no < need
                ? VoteResult.Lost
                : VoteResult.Pending;
          expect(tallyVotes(voters, votes)).toBe(expected);
        },
      ),
    );
  });
});
