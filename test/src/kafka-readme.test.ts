// The README's "Using Kafka clients" examples, run verbatim against a broker with the Kafka
// listener (the address 127.0.0.1:9092 of `streambus dev` replaced by this broker's; topics are
// created on first use, as in dev): kcat, kafkajs and Python confluent-kafka. A client that is
// not installed skips its example with a warning naming the package.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Broker, defaultConfig } from '@streambus/broker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './harness.js';
import { waitClusterLive } from './kafka-testing.js';

const run = promisify(execFile);
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const DEV_ADDRESS = '127.0.0.1:9092';
const KCAT = existsSync('/usr/bin/kcat');
const PYTHON = '/usr/bin/python3';
const CONFLUENT =
  existsSync(PYTHON) &&
  (await run(PYTHON, ['-c', 'import confluent_kafka']).then(
    () => true,
    () => false,
  ));
if (!KCAT)
  console.warn(
    'kafka-readme.test.ts: the kcat example is SKIPPED: install the Debian package `kcat`',
  );
if (!CONFLUENT) {
  console.warn(
    'kafka-readme.test.ts: the confluent-kafka example is SKIPPED: install the Debian package `python3-confluent-kafka`',
  );
}

/** The fenced block after `<!-- kafka-example: NAME -->`. */
function example(name: string): string {
  const at = README.indexOf(`<!-- kafka-example: ${name} -->`);
  if (at < 0) throw new Error(`README has no kafka-example ${name}`);
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(README.slice(at));
  if (m === null) throw new Error(`README kafka-example ${name} has no code block`);
  return m[1]!;
}

describe('README: Using Kafka clients', () => {
  let broker: Broker;
  let dir: string;
  let address: string;
  const here = (code: string) => code.replaceAll(DEV_ADDRESS, address);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-kafka-readme-'));
    broker = await Broker.start({
      ...defaultConfig(),
      dataDir: dir,
      listen: { host: '127.0.0.1', port: 0 },
      http: null,
      logLevel: 'silent',
      autoCreateTopics: true,
      kafka: { listen: { host: '127.0.0.1', port: 0 }, advertised: null, brokers: [] },
    });
    await waitClusterLive(`127.0.0.1:${broker.address.port}`);
    address = `127.0.0.1:${broker.kafkaAddress!.port}`;
  });
  afterAll(async () => {
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!KCAT)('the kcat example', async () => {
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', here(example('kcat'))], {
      timeout: 60_000,
    });
    expect(stdout).toContain(`broker 1 at ${address}`);
    expect(stdout.trimEnd().split('\n').slice(-2)).toEqual(['one', 'two']);
  });

  it('the kafkajs example', async () => {
    // In test/ so that `kafkajs` resolves from the example's own import.
    const file = join(ROOT, 'test', `.readme-kafkajs-${process.pid}.mjs`);
    writeFileSync(file, here(example('kafkajs')));
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: 60_000 });
      expect(stdout.trim().split('\n').at(-1)).toBe('sent');
    } finally {
      unlinkSync(file);
    }
  });

  it.skipIf(!CONFLUENT)('the confluent-kafka example', async () => {
    const { stdout } = await run(PYTHON, ['-c', here(example('confluent-kafka'))], {
      timeout: 60_000,
    });
    expect(stdout.trim()).toBe('hello from confluent-kafka');
  });
});
