// `streambus consume --group` and `streambus group ...` end to end against the SDK's fake broker
// (its group coordinator): the built binary's stdout, stderr and exit codes, human and json.
import { FakeBroker } from '@streambus/client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './testing/run-cli.js';

let broker: FakeBroker;
let b: string[];

beforeAll(async () => {
  broker = await FakeBroker.start({ defaultPartitions: 2 });
  b = ['--bootstrap', broker.bootstrap];
  broker.createTopic('events', 2);
});
afterAll(async () => {
  await broker.close();
});

const lines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter((l) => l !== '');

describe('streambus group (against the fake broker)', () => {
  it('consumes as a group member, commits, describes, resets and deletes the group', async () => {
    expect((await run(['produce', 'events', ...b], 'a\nb\nc\nd\n')).code).toBe(0);
    const first = await run(['consume', 'events', '--group', 'g', '--timeout-ms', '400', ...b]);
    expect(first.code).toBe(0);
    expect(lines(first.stdout).sort()).toEqual(['a', 'b', 'c', 'd']);
    // Committed what it printed: a second member of the group prints nothing.
    const again = await run(['consume', 'events', '--group', 'g', '--timeout-ms', '400', ...b]);
    expect(again).toMatchObject({ code: 0, stdout: '' });

    const list = await run(['group', 'list', '--output', 'json', ...b]);
    expect(lines(list.stdout).map((l) => JSON.parse(l))).toEqual([
      { groupId: 'g', state: 'Empty', protocolType: 'consumer', coordinatorId: 0 },
    ]);
    const d = JSON.parse((await run(['group', 'describe', 'g', '--output', 'json', ...b])).stdout);
    expect(d.state).toBe('Empty');
    expect(d.members).toEqual([]);
    const committed = d.offsets.map(
      (o: { committedOffset: number; logEnd: number; lag: number }) => [
        o.committedOffset === o.logEnd,
        o.lag,
      ],
    );
    // Every partition that had records is committed at its log end.
    expect(committed.length).toBeGreaterThan(0);
    for (const c of committed) expect(c).toEqual([true, 0]);
    const human = await run(['group', 'describe', 'g', ...b]);
    expect(human.stdout).toContain('group g: Empty');
    expect(human.stdout).toMatch(/topic\s+partition\s+committed\s+log-end\s+lag\s+member/);

    const dry = await run([
      'group',
      'reset-offsets',
      'g',
      '--topic',
      'events',
      '--to-earliest',
      '--dry-run',
      '--output',
      'json',
      ...b,
    ]);
    expect(dry.code).toBe(0);
    const plan = JSON.parse(dry.stdout);
    expect(plan.dryRun).toBe(true);
    expect(plan.offsets.map((o: { newOffset: number }) => o.newOffset)).toEqual([0, 0]);
    // The dry run committed nothing.
    expect(
      await run(['consume', 'events', '--group', 'g', '--timeout-ms', '400', ...b]),
    ).toMatchObject({
      stdout: '',
    });
    const reset = await run([
      'group',
      'reset-offsets',
      'g',
      '--topic',
      'events',
      '--to-earliest',
      ...b,
    ]);
    expect(reset).toMatchObject({ code: 0 });
    expect(reset.stdout).toContain('reset 2 partitions of events for group g');
    const replay = await run([
      'consume',
      'events',
      '--group',
      'g',
      '--max-messages',
      '4',
      '--output',
      'json',
      ...b,
    ]);
    expect(replay.code).toBe(0);
    expect(
      lines(replay.stdout)
        .map((l) => JSON.parse(l).value)
        .sort(),
    ).toEqual(['a', 'b', 'c', 'd']);

    expect(await run(['group', 'delete', 'g', ...b])).toMatchObject({
      code: 0,
      stdout: 'deleted group g\n',
    });
    const gone = JSON.parse(
      (await run(['group', 'describe', 'g', '--output', 'json', ...b])).stdout,
    );
    expect(gone.state).toBe('Dead');
  }, 90_000);

  it('answers bad invocations with exit 2 and failed requests with exit 1', async () => {
    const none = await run(['group', 'reset-offsets', 'g', '--topic', 'events', ...b]);
    expect(none).toMatchObject({ code: 2 });
    expect(none.stderr).toContain('use exactly one of --to-earliest, --to-latest');
    const two = await run([
      'group',
      'reset-offsets',
      'g',
      '--topic',
      'events',
      '--to-latest',
      '--to-offset',
      '1',
      ...b,
    ]);
    expect(two.code).toBe(2);
    const noTopic = await run(['group', 'reset-offsets', 'g', '--to-latest', ...b]);
    expect(noTopic.code).toBe(2);
    const offset = await run(['consume', 'events', '--group', 'g', '--offset', '1', ...b]);
    expect(offset.code).toBe(2);
    expect(offset.stderr).toContain('--group: the group assigns partitions');
    const missing = await run(['group', 'delete', 'nobody', ...b]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^streambus: .*\n$/);
  }, 60_000);
});
