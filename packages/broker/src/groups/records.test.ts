// The record codec (canonical, bounds-checked, CORRUPT_DATA only) and replay: random runs of the
// state machine, through the scenario driver's clients, rebuild to the live state from their
// records whenever every group is Stable or Empty.
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupScenario } from './group-scenario.js';
import { initialCoordinatorState } from './group-state.js';
import { decodeGroupRecord, durableView, encodeGroupRecord, replay } from './records.js';
import type { GroupRecord } from './types.js';

const name = fc.constantFrom('g', 'h', 'c1-s-1', 'ü', 'a/b');
const tick = fc.integer({ min: 0, max: 2 ** 40 });
const bytes = fc.uint8Array({ maxLength: 12 });
const optName = fc.option(name, { nil: null });

const member = fc.record({
  memberId: name,
  groupInstanceId: optName,
  clientId: name,
  sessionTimeoutTicks: fc.nat(1000),
  rebalanceTimeoutTicks: fc.nat(1000),
  protocols: fc.array(fc.record({ name, metadata: bytes }), { maxLength: 3 }),
  assignment: bytes,
});

const groupRecordArb = fc
  .uniqueArray(member, { selector: (m) => m.memberId, maxLength: 3 })
  .chain((members) =>
    fc.record({
      type: fc.constant('group' as const),
      groupId: name,
      stateTick: tick,
      protocolType: optName,
      protocolName: optName,
      generation: fc.nat(1000),
      leaderId:
        members.length === 0
          ? fc.constant(null)
          : fc.constantFrom(...members.map((m) => m.memberId)),
      members: fc.constant(members),
    }),
  );

const recordArb: fc.Arbitrary<GroupRecord> = fc.oneof(
  groupRecordArb,
  fc.record({ type: fc.constant('group-tombstone' as const), groupId: name }),
  fc.record({
    type: fc.constant('offset' as const),
    groupId: name,
    topic: name,
    partition: fc.nat(2 ** 31 - 1),
    offset: fc.nat(),
    metadata: fc.string({ maxLength: 20 }),
    commitTick: tick,
  }),
  fc.record({
    type: fc.constant('offset-tombstone' as const),
    groupId: name,
    topic: name,
    partition: fc.nat(1000),
  }),
);

describe('group record codec', () => {
  it('round-trips every record, canonically', () => {
    fc.assert(
      fc.property(recordArb, (rec) => {
        const { key, value } = encodeGroupRecord(rec);
        const back = decodeGroupRecord(key, value);
        expect(back).toEqual(rec);
        const again = encodeGroupRecord(back);
        expect(Buffer.from(again.key).equals(Buffer.from(key))).toBe(true);
        expect(again.value === null ? null : Buffer.from(again.value).toString('hex')).toBe(
          value === null ? null : Buffer.from(value).toString('hex'),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('refuses damaged bytes with CORRUPT_DATA only, or decodes them canonically', () => {
    fc.assert(
      fc.property(
        recordArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        (rec, at, xor, truncate) => {
          const { key, value } = encodeGroupRecord(rec);
          const target = value !== null && at % 2 === 0 ? value : key;
          const damaged = truncate
            ? target.slice(0, at % target.length)
            : target.map((b, i) => (i === at % target.length ? b ^ xor : b));
          const k = target === key ? damaged : key;
          const v = target === key ? value : damaged;
          try {
            const back = decodeGroupRecord(k, v);
            // Whatever decodes must be the canonical encoding of what it decoded to.
            const again = encodeGroupRecord(back);
            expect(Buffer.from(again.key).equals(Buffer.from(k))).toBe(true);
            if (v !== null) expect(Buffer.from(again.value!).equals(Buffer.from(v))).toBe(true);
          } catch (err) {
            expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('names the unknown versions and the broken invariants', () => {
    const { key, value } = encodeGroupRecord({
      type: 'group',
      groupId: 'g',
      stateTick: 1,
      protocolType: 'consumer',
      protocolName: 'range',
      generation: 1,
      leaderId: null,
      members: [],
    });
    expect(() => decodeGroupRecord(Uint8Array.of(9, ...key.subarray(1)), value)).toThrow(
      /unknown key version 9/,
    );
    expect(() => decodeGroupRecord(key, Uint8Array.of(7, ...value!.subarray(1)))).toThrow(
      /unknown value version 7/,
    );
    expect(() => decodeGroupRecord(key, Uint8Array.of(...value!, 0))).toThrow(/trailing bytes/);
  });
});

// Random runs: commands for three clients (one static) of two groups over two topics, with time
// moving (sessions are 10 ticks, rebalance timeouts 20).
const client = fc.constantFrom('c1', 'c2', 's1', 's1');
const group = fc.constantFrom('g', 'g', 'g', 'h');
const command0 = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(group, client).map(([g, c]) => `join ${g} ${c} topics=t1,t2`) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(group, client)
      .map(([g, c]) => `join ${g} ${c} new instance=i-${c} topics=t1,t2`),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(group, client, fc.constantFrom('range', 'roundrobin', 'cooperative-sticky'))
      .map(([g, c, p]) => `join ${g} ${c} protocols=${p},cooperative-sticky`),
  },
  { weight: 4, arbitrary: fc.tuple(group, client).map(([g, c]) => `sync ${g} ${c} assign`) },
  { weight: 2, arbitrary: fc.tuple(group, client).map(([g, c]) => `heartbeat ${g} ${c}`) },
  { weight: 1, arbitrary: fc.tuple(group, client).map(([g, c]) => `leave ${g} ${c}`) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(group, client, fc.nat(3), fc.nat(99))
      .map(([g, c, p, o]) => `commit ${g} ${c} t1/${p}=${o}`),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(group, fc.nat(99)).map(([g, o]) => `commit ${g} t2/0=${o}:simple`),
  },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 8 }).map((d) => `+${d}`) },
  { weight: 1, arbitrary: group.map((g) => `delete ${g}`) },
  { weight: 1, arbitrary: group.map((g) => `delete-offsets ${g} t2/0`) },
);

/** Clients belong to one group: c1 of g is `gc1`. */
const command = command0.map((c) =>
  c.replace(/^(\w+(?:-\w+)?) ([gh]) (\w+)/, (_m, cmd, g, cl) =>
    /^c\d|^s\d/.test(cl) ? `${cmd} ${g} ${g}${cl}` : `${cmd} ${g} ${cl}`,
  ),
);

describe('replay(records) equals the live state', () => {
  it('at every point where every group is Stable or Empty', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 60 }), (commands) => {
        const env = new GroupScenario();
        env.run('topics t1=4 t2=1');
        let compared = 0;
        for (const c of commands) {
          let out: string[];
          try {
            out = env.run(c.startsWith('+') ? `tick ${env.tick + Number(c.slice(1))}` : c);
          } catch (err) {
            // A client that has not joined yet cannot sync or heartbeat: skip the command.
            if (String(err).includes('unknown client')) continue;
            throw err;
          }
          expect(out.join('\n')).not.toContain('OWNERSHIP BUG');
          const live = env.current;
          const quiet = [...live.groups.values()].every(
            (g) => g.state === 'Stable' || g.state === 'Empty',
          );
          if (!quiet) continue;
          const rebuilt = replay(initialCoordinatorState('r', live.limits), env.records, env.tick);
          expect(durableView(rebuilt)).toEqual(durableView(live));
          compared++;
        }
        return compared >= 0;
      }),
      { numRuns: 150 },
    );
  });
});
