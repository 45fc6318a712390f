// Exit codes and start-up messages of every command, as one rule (packages/cli/src/output.ts
// ExitCode): 2 for a wrong invocation (flags, configuration file, STREAMBUS_* variables), 1 for a
// valid command that failed (unreachable broker, port in use, data directory unusable), 0 ok.
// Also the environment rule both broker entry points share (client variables ignored, a
// misspelt one answered with the nearest name) and the broker start flags.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROKER_MAIN,
  type BrokerProcess,
  CLI_BIN,
  ROOT,
  removeDir,
  runCli,
  spawnBrokerProcess,
  tempDir,
} from './harness.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node file args` to its exit (killed after timeoutMs), with extra environment. */
function runNode(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], {
      cwd: ROOT,
      env: { ...process.env, STREAMBUS_BOOTSTRAP: undefined, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const dirs: string[] = [];
function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

const ephemeral = ['--listen', '127.0.0.1:0', '--http', 'off'];
let taken: net.Server;
let takenPort: number;

beforeAll(async () => {
  taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  takenPort = (taken.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => taken.close(() => resolve()));
  for (const d of dirs) removeDir(d);
});

describe('exit codes: broker start', () => {
  it('2 for a bad flag, file or variable; 1 for a port in use or an unusable data directory', async () => {
    const d = dir();
    const file = join(d, 'not-a-dir');
    writeFileSync(file, 'x');
    const start = (args: string[], env?: NodeJS.ProcessEnv) =>
      runCli(['broker', 'start', '--data-dir', d, ...args], '', 20_000, env);
    const [badListen, missingFile, keyValue, badEnv, badLevel, portInUse, httpInUse, notDir] =
      await Promise.all([
        start(['--listen', '127.0.0.1:7070x']),
        start(['--config', join(d, 'missing.yaml')]),
        start(['--config', 'durability=none']),
        start(ephemeral, { STREAMBUS_DIR: d }),
        start([...ephemeral, '--log-level', 'loud']),
        // Each its own data directory: two brokers starting on one directory race on its files
        // (nothing locks a data directory yet), which is not what these two cases test.
        start(['--listen', `127.0.0.1:${takenPort}`, '--http', 'off', '--data-dir', dir()]),
        start(['--listen', '127.0.0.1:0', '--http', `127.0.0.1:${takenPort}`, '--data-dir', dir()]),
        start([...ephemeral, '--data-dir', file]),
      ]);
    expect(badListen).toMatchObject({
      code: 2,
      stderr: "streambus: listen: expected HOST:PORT, got '127.0.0.1:7070x'\n",
    });
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toMatch(/^streambus: config: cannot read .*: no such file/);
    expect(keyValue.code).toBe(2);
    expect(keyValue.stderr).toMatch(
      /^streambus: config: expected a YAML or JSON configuration file, got 'durability=none'/,
    );
    expect(keyValue.stderr).toContain('STREAMBUS_DEFAULTS_DURABILITY=none');
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/^streambus: STREAMBUS_DIR: .*did you mean STREAMBUS_DATA_DIR\?/);
    expect(badLevel.code).toBe(2);
    expect(badLevel.stderr).toMatch(/^streambus: logLevel: expected one of fatal, /);
    expect(portInUse).toMatchObject({
      code: 1,
      stderr: `streambus: cannot listen on 127.0.0.1:${takenPort} for the native listener (--listen): address in use\n`,
    });
    expect(httpInUse).toMatchObject({
      code: 1,
      stderr: `streambus: cannot listen on 127.0.0.1:${takenPort} for the HTTP admin port (--http): address in use\n`,
    });
    expect(notDir).toMatchObject({
      code: 1,
      stderr: `streambus: data directory ${file} is not usable (${file} is not a directory)\n`,
    });
  });
});

describe('exit codes: client commands', () => {
  it('2 for bad arguments, 1 for an unreachable broker, per command', async () => {
    const down = ['--bootstrap', '127.0.0.1:1'];
    const cases: Array<[string[], number, RegExp]> = [
      [['topic', 'create', 't', '--partitions', '0', ...down], 2, /--partitions: expected/],
      [['topic', 'create', 't', '--config', 'retention.ms', ...down], 2, /expected KEY=VALUE/],
      [['topic', 'create', ...down], 2, /missing required argument 'name'/],
      [['topic', 'create', 't', ...down], 1, /is a broker running\?/],
      [['topic', 'list', '--output', 'yaml', ...down], 2, /--output: expected human or json/],
      [['topic', 'list', '--bootstrap', 'nohost'], 2, /bootstrap address: expected HOST:PORT/],
      [['produce', 't', '--acks', '2', ...down], 2, /--acks: expected 0, 1 or all/],
      [['produce', 't', '--key', 'k', '--key-separator', ':', ...down], 2, /cannot be used/],
      [['produce', 't', '--value', 'v', ...down], 1, /is a broker running\?/],
      [['consume', 't', '--max-messages', '0', ...down], 2, /--max-messages: expected/],
      [
        ['consume', 't', '--from-beginning', '--offset', '1', ...down],
        2,
        /use one of --from-beginning, --from-end and --offset/,
      ],
      [['consume', 't', '--timeout-ms', '100', ...down], 1, /is a broker running\?/],
      [['dev', '--listen', 'nowhere'], 2, /listen: expected HOST:PORT/],
      [['frobnicate'], 2, /unknown command 'frobnicate'/],
    ];
    const runs = await Promise.all(cases.map(([args]) => runCli(args)));
    cases.forEach(([args, code, message], i) => {
      const r = runs[i] as Exit;
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    });
    const help = await runCli(['topic', 'create', '--help']);
    expect(help.code).toBe(0);
  });
});

describe('the environment rule, on both broker entry points', () => {
  let brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) await b.stop();
    brokers = [];
  });

  it('a client variable never stops a broker; a misspelt one gets the nearest name', async () => {
    const env = { STREAMBUS_BOOTSTRAP: '127.0.0.1:9' };
    const viaMain = dir();
    const viaCli = dir();
    const viaSilent = dir();
    const [main, cli, silent] = await Promise.all([
      spawnBrokerProcess([BROKER_MAIN, ...ephemeral, '--data-dir', viaMain], viaMain, 15_000, env),
      spawnBrokerProcess(
        [CLI_BIN, 'broker', 'start', ...ephemeral, '--data-dir', viaCli, '--log-level', 'warn'],
        viaCli,
        15_000,
        env,
      ),
      spawnBrokerProcess(
        [
          CLI_BIN,
          'broker',
          'start',
          ...ephemeral,
          '--data-dir',
          viaSilent,
          '--log-level',
          'silent',
        ],
        viaSilent,
      ),
    ]);
    brokers.push(main, cli, silent);
    // --log-level warn: the started line still comes (supervisors wait for it), info lines not.
    expect(cli.output()).not.toContain('"broker listening"');
    expect(main.output()).toContain('"broker listening"');
    expect(await main.stop()).toBe(0);
    expect(await cli.stop()).toBe(0);
    // silent: nothing but the started line, not even the shutdown lines.
    expect(await silent.stop()).toBe(0);
    expect(silent.output().trim().split('\n')).toEqual([
      expect.stringContaining('"msg":"broker started"'),
    ]);
    brokers = [];

    const typo = { STREAMBUS_LOGLEVEL: 'debug' };
    const [mainTypo, cliTypo] = await Promise.all([
      runNode(BROKER_MAIN, [...ephemeral, '--data-dir', viaMain], typo),
      runCli(['broker', 'start', ...ephemeral, '--data-dir', viaCli], '', 20_000, typo),
    ]);
    expect(mainTypo.code).toBe(2);
    expect(mainTypo.stderr).toMatch(
      /^streambus broker: STREAMBUS_LOGLEVEL: .*did you mean STREAMBUS_LOG_LEVEL\?/,
    );
    expect(cliTypo.code).toBe(2);
    expect(cliTypo.stderr).toMatch(
      /^streambus: STREAMBUS_LOGLEVEL: .*did you mean STREAMBUS_LOG_LEVEL\?/,
    );
  });
});
