// The `streambus` CLI end to end against real broker processes: `broker start` and `dev`
// spawned from the built binary, then topic, produce and consume commands through it.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerProcess,
  CLI_BIN,
  ROOT,
  removeDir,
  runCli,
  spawnBrokerProcess,
  tempDir,
} from './harness.js';

describe('streambus CLI against a real broker', () => {
  let broker: BrokerProcess;
  let dir: string;
  let b: string[];

  beforeAll(async () => {
    dir = tempDir();
    broker = await spawnBrokerProcess(
      [
        CLI_BIN,
        'broker',
        'start',
        '--listen',
        '127.0.0.1:0',
        '--http',
        '127.0.0.1:0',
        '--data-dir',
        dir,
      ],
      dir,
    );
    b = ['--bootstrap', broker.bootstrap];
  });
  afterAll(async () => {
    const code = await broker?.stop();
    expect(code).toBe(0);
    removeDir(dir);
  });

  it('creates a topic, produces stdin lines and consumes them back', async () => {
    expect(await runCli(['topic', 'create', 'cli-e2e', '--partitions', '2', ...b])).toMatchObject({
      code: 0,
      stdout: 'created topic cli-e2e with 2 partitions\n',
    });
    const lines = Array.from({ length: 50 }, (_, i) => `k${i % 5}=value ${i}`).join('\n');
    expect(
      await runCli(['produce', 'cli-e2e', '--key-separator', '=', ...b], `${lines}\n`),
    ).toMatchObject({
      code: 0,
      stdout: 'produced 50 records to cli-e2e\n',
    });
    const c = await runCli([
      'consume',
      'cli-e2e',
      '--from-beginning',
      '--max-messages',
      '50',
      '--output',
      'json',
      ...b,
    ]);
    expect(c.code).toBe(0);
    const recs = c.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(recs).toHaveLength(50);
    expect(new Set(recs.map((r) => r.value))).toEqual(
      new Set(Array.from({ length: 50 }, (_, i) => `value ${i}`)),
    );
    for (const r of recs) {
      expect(r.key).toBe(`k${Number(r.value.split(' ')[1]) % 5}`);
      expect(Object.keys(r).sort()).toEqual([
        'headers',
        'key',
        'offset',
        'partition',
        'timestamp',
        'value',
      ]);
    }
    const human = await runCli([
      'consume',
      'cli-e2e',
      '--partition',
      '0',
      '--from-beginning',
      '--timeout-ms',
      '500',
      ...b,
    ]);
    expect(human.code).toBe(0);
    expect(human.stdout.trim().split('\n').length).toBe(
      recs.filter((r) => r.partition === 0).length,
    );
    const d = await runCli(['topic', 'describe', 'cli-e2e', '--output', 'json', ...b]);
    const desc = JSON.parse(d.stdout);
    // 50 records, after each partition's first Raft term's no-op (a control batch at offset 0).
    expect(
      desc.partitions.reduce((s: number, p: { latestOffset: number }) => s + p.latestOffset, 0),
    ).toBe(50 + desc.partitions.length);
    expect((await runCli(['topic', 'list', ...b])).stdout.split('\n')).toContain('cli-e2e');
    expect(await runCli(['topic', 'delete', 'cli-e2e', ...b])).toMatchObject({ code: 0 });
    const gone = await runCli(['topic', 'describe', 'cli-e2e', ...b]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^streambus: .*\n$/);
  });

  it('produce --value with acks=1 prints the offset; consume --offset starts there', async () => {
    await runCli(['topic', 'create', 'cli-one', ...b]);
    const offsets: number[] = [];
    for (const v of ['a', 'b', 'c']) {
      const r = await runCli([
        'produce',
        'cli-one',
        '--acks',
        '1',
        '--value',
        v,
        '--output',
        'json',
        ...b,
      ]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ topic: 'cli-one', partition: 0 });
      offsets.push(JSON.parse(r.stdout).offset);
    }
    expect(offsets[1]).toBe(offsets[0]! + 1);
    const from = String(offsets[1]);
    const c = await runCli(['consume', 'cli-one', '--offset', from, '--timeout-ms', '500', ...b]);
    expect(c).toMatchObject({ code: 0, stdout: 'b\nc\n' });
  });
});

describe('streambus dev', () => {
  it('starts a local broker, prints how to use it, and stops on SIGTERM with exit 0', async () => {
    const dir = tempDir();
    const child = spawn(
      process.execPath,
      [
        CLI_BIN,
        'dev',
        '--data-dir',
        dir,
        '--listen',
        '127.0.0.1:0',
        '--http',
        'off',
        '--kafka-listen',
        '127.0.0.1:0',
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const deadline = Date.now() + 15_000;
      while (!out.includes('Press Ctrl-C') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const port = /listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
      expect(port, out).toBeDefined();
      expect(out).toContain(
        `streambus topic create demo --partitions 3 --bootstrap 127.0.0.1:${port}`,
      );
      expect(out).toContain('consume demo --from-beginning');
      // The Kafka listener, on the port it was given (0: a free one), printed with a kcat line.
      const kafka = /Kafka listener on (127\.0\.0\.1:\d+) /.exec(out)?.[1];
      expect(kafka, out).toBeDefined();
      expect(out).toContain(`kcat -b ${kafka} -L`);
      const r = await runCli(['topic', 'create', 'dev-topic', '--bootstrap', `127.0.0.1:${port}`]);
      expect(r.code).toBe(0);
      // The banner's commands run from here without pnpm: the repository's ./streambus launcher.
      expect(out).toContain(`  ./streambus topic create demo --partitions 3 --bootstrap`);
      // autoCreateTopics is on in dev: producing to a topic nobody created creates it.
      expect(out).toContain('topics are created on first use');
      const auto = await runCli([
        'produce',
        'dev-auto',
        '--value',
        'first',
        '--bootstrap',
        `127.0.0.1:${port}`,
      ]);
      expect(auto).toMatchObject({ code: 0, stdout: expect.stringContaining('dev-auto') });
      const back = await runCli([
        'consume',
        'dev-auto',
        '--from-beginning',
        '--max-messages',
        '1',
        '--bootstrap',
        `127.0.0.1:${port}`,
      ]);
      expect(back).toMatchObject({ code: 0, stdout: 'first\n' });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('stopped');
    } finally {
      child.kill('SIGKILL');
      removeDir(dir);
    }
  });
});
