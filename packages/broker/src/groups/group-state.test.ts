// Unit checks of the state machine that the scenario files do not make: the input state is never
// modified (purity), the same events give the same output (determinism), the error rows fit the
// one table, pending member ids are bounded in time, and a tick with nothing due is cheap.
import { allErrors } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { GroupErrorCode } from './group-errors.js';
import { initialCoordinatorState, step } from './group-state.js';
import { durableView } from './records.js';
import { DEFAULT_GROUP_LIMITS, type GroupEvent } from './types.js';

const limits = {
  ...DEFAULT_GROUP_LIMITS,
  initialRebalanceDelayTicks: 0,
  sessionTimeoutTicksMin: 1,
};

function join(
  requestId: number,
  memberId: string | null,
  requireKnownMemberId = false,
): GroupEvent {
  return {
    type: 'join',
    requestId,
    groupId: 'g',
    memberId,
    groupInstanceId: null,
    clientId: 'c',
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: Uint8Array.of(1, 2) }],
    sessionTimeoutTicks: 10,
    rebalanceTimeoutTicks: 10,
    requireKnownMemberId,
  };
}

describe('group state machine', () => {
  it('never modifies its input state', () => {
    let s = initialCoordinatorState('x', limits);
    const events: GroupEvent[] = [
      join(1, null),
      {
        type: 'sync',
        requestId: 2,
        groupId: 'g',
        generation: 1,
        memberId: 'c-x-1',
        groupInstanceId: null,
        assignments: [{ memberId: 'c-x-1', assignment: Uint8Array.of(9) }],
      },
      {
        type: 'commit',
        requestId: 3,
        groupId: 'g',
        generation: 1,
        memberId: 'c-x-1',
        groupInstanceId: null,
        offsets: [{ topic: 't', partition: 0, offset: 4, metadata: '' }],
      },
      { type: 'leave', requestId: 4, groupId: 'g', memberId: 'c-x-1', groupInstanceId: null },
      { type: 'tick' },
    ];
    for (const [i, e] of events.entries()) {
      const before = JSON.stringify(durableView(s));
      const membersBefore = [...(s.groups.get('g')?.members.values() ?? [])].map((m) => ({ ...m }));
      const next = step(s, e, i);
      expect(JSON.stringify(durableView(s))).toBe(before);
      expect([...(s.groups.get('g')?.members.values() ?? [])].map((m) => ({ ...m }))).toEqual(
        membersBefore,
      );
      s = next.state;
    }
    expect(s.groups.get('g')?.state).toBe('Empty');
    expect(s.groups.get('g')?.offsets.size).toBe(1);
  });

  it('is deterministic: member ids come from the seed and a counter', () => {
    const run = () => {
      let s = initialCoordinatorState('seed7', limits);
      const out: unknown[] = [];
      for (const [i, e] of [
        join(1, null),
        join(2, null),
        { type: 'tick' } as GroupEvent,
      ].entries()) {
        const r = step(s, e, i);
        s = r.state;
        out.push(r.responses, r.records);
      }
      return JSON.stringify(out);
    };
    expect(run()).toBe(run());
    expect(run()).toContain('c-seed7-1');
  });

  it('forgets a MEMBER_ID_REQUIRED id that never rejoins, after its session timeout', () => {
    let s = initialCoordinatorState('x', limits);
    const r = step(s, join(1, null, true), 0);
    expect(r.responses[0]).toMatchObject({
      error: GroupErrorCode.MEMBER_ID_REQUIRED,
      memberId: 'c-x-1',
    });
    s = r.state;
    expect(s.groups.get('g')!.pendingMemberIds.size).toBe(1);
    s = step(s, { type: 'tick' }, 10).state;
    expect(s.groups.get('g')!.pendingMemberIds.size).toBe(0);
    const late = step(s, join(2, 'c-x-1'), 11);
    expect(late.responses[0]).toMatchObject({ error: GroupErrorCode.UNKNOWN_MEMBER_ID });
  });

  it('refuses a member over membersPerGroupMax, counting ids handed out', () => {
    let s = initialCoordinatorState('x', { ...limits, membersPerGroupMax: 1 });
    s = step(s, join(1, null, true), 0).state;
    const r = step(s, join(2, null, true), 0);
    expect(r.responses[0]).toMatchObject({ error: GroupErrorCode.GROUP_MAX_SIZE_REACHED });
  });

  it('answers only with codes of the one table', () => {
    const table = new Map(allErrors().map((e) => [e.code, e.name]));
    for (const name of [
      'OFFSET_METADATA_TOO_LARGE',
      'NON_EMPTY_GROUP',
      'GROUP_ID_NOT_FOUND',
      'MEMBER_ID_REQUIRED',
      'GROUP_MAX_SIZE_REACHED',
      'FENCED_INSTANCE_ID',
      'GROUP_METADATA_TOO_LARGE',
      'GROUPS_LIMIT_REACHED',
      'GROUP_OFFSETS_LIMIT_REACHED',
    ] as const) {
      expect(table.get(GroupErrorCode[name])).toBe(name);
    }
  });
});
