// The CLI end to end against the SDK's in-memory fake broker: spawns the built binary, checks
// stdout, stderr and exit codes. (test/src/cli.test.ts runs the same against real brokers.)
import { FakeBroker } from '@streambus/client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './testing/run-cli.js';

let broker: FakeBroker;
let b: string[];

beforeAll(async () => {
  broker = await FakeBroker.start({ defaultPartitions: 1 });
  b = ['--bootstrap', broker.bootstrap];
});
afterAll(async () => {
  await broker.close();
});

describe('streambus (against the fake broker)', () => {
  it('creates, lists, describes and deletes topics, in human and json output', async () => {
    expect(
      await run([
        'topic',
        'create',
        'orders',
        '--partitions',
        '3',
        '--config',
        'retention.ms=1000',
        ...b,
      ]),
    ).toMatchObject({
      code: 0,
      stdout: 'created topic orders with 3 partitions\n',
    });
    // json output echoes the configs it set.
    const json = await run([
      'topic',
      'create',
      'audit',
      '--config',
      'retention.ms=5000',
      '--config',
      'durability=none',
      '--output',
      'json',
      ...b,
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      created: 'audit',
      partitions: 1,
      replicationFactor: 1,
      configs: { 'retention.ms': '5000', durability: 'none' },
    });
    expect(await run(['topic', 'delete', 'audit', ...b])).toMatchObject({ code: 0 });
    const list = await run(['topic', 'list', '--output', 'json', ...b]);
    expect(
      list.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([{ name: 'orders' }]);
    const d = await run(['topic', 'describe', 'orders', '--output', 'json', ...b]);
    const desc = JSON.parse(d.stdout);
    expect(desc.partitions).toHaveLength(3);
    expect(desc.configs).toEqual({ 'retention.ms': '1000' });
    const human = await run(['topic', 'describe', 'orders', ...b]);
    expect(human.stdout).toContain('topic orders: 3 partitions');
    expect(human.stdout).toContain('retention.ms=1000');
    expect(await run(['topic', 'delete', 'orders', ...b])).toMatchObject({
      code: 0,
      stdout: 'deleted topic orders\n',
    });
  });

  it('produces stdin lines with keys and consumes them back as JSON', async () => {
    await run(['topic', 'create', 'lines', ...b]);
    const p = await run(
      ['produce', 'lines', '--key-separator', ':', ...b],
      'k1:one\nk2:two\nthree\n',
    );
    expect(p).toMatchObject({ code: 0, stdout: 'produced 3 records to lines\n' });
    const single = await run([
      'produce',
      'lines',
      '--value',
      'four',
      '--key',
      'k4',
      '--output',
      'json',
      ...b,
    ]);
    expect(JSON.parse(single.stdout)).toEqual({ topic: 'lines', partition: 0, offset: 3 });
    const c = await run([
      'consume',
      'lines',
      '--from-beginning',
      '--max-messages',
      '4',
      '--output',
      'json',
      ...b,
    ]);
    expect(c.code).toBe(0);
    const recs = c.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(recs.map((r) => [r.key, r.value, r.offset])).toEqual([
      ['k1', 'one', 0],
      ['k2', 'two', 1],
      [null, 'three', 2],
      ['k4', 'four', 3],
    ]);
    expect(recs[0]).toMatchObject({ partition: 0, headers: {} });
    expect(typeof recs[0].timestamp).toBe('number');
    const plain = await run(['consume', 'lines', '--offset', '2', '--timeout-ms', '300', ...b]);
    expect(plain).toMatchObject({ code: 0, stdout: 'three\nfour\n' });
  });

  it('consume starts at the beginning by default (as the SDK), --from-end at the end', async () => {
    broker.createTopic('starts', 1);
    expect((await run(['produce', 'starts', ...b], 'a\nb\n')).code).toBe(0);
    const dflt = await run(['consume', 'starts', '--timeout-ms', '300', ...b]);
    expect(dflt).toMatchObject({ code: 0, stdout: 'a\nb\n' });
    const end = await run(['consume', 'starts', '--from-end', '--timeout-ms', '300', ...b]);
    expect(end).toMatchObject({ code: 0, stdout: '' });
    const both = await run(['consume', 'starts', '--from-end', '--offset', '1', ...b]);
    expect(both).toMatchObject({
      code: 2,
      stderr: 'streambus: use one of --from-beginning, --from-end and --offset\n',
    });
    const missing = await run(['consume', 'nope', '--timeout-ms', '300', ...b]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("topic 'nope' does not exist: create it with");
  });

  it('takes the bootstrap address from STREAMBUS_BOOTSTRAP', async () => {
    const r = await run(['topic', 'list'], undefined, { STREAMBUS_BOOTSTRAP: broker.bootstrap });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('lines');
  });

  it('reports errors as one line with exit code 1, usage errors with 2', async () => {
    const missing = await run(['topic', 'describe', 'nope', ...b]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^streambus: .*nope.*\n$/);
    const usage = await run(['produce', 'lines', '--acks', '7', ...b]);
    expect(usage).toMatchObject({
      code: 2,
      stderr: "streambus: --acks: expected 0, 1 or all, got '7'\n",
    });
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^streambus: unknown command 'frobnicate'/);
    const badAddr = await run(['topic', 'list', '--bootstrap', 'nohost']);
    expect(badAddr.code).toBe(2);
    expect(badAddr.stderr).toMatch(/^streambus: bootstrap address: expected HOST:PORT/);
    const down = await run(['topic', 'list', '--bootstrap', '127.0.0.1:1']);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toContain('streambus dev');
  });
});
