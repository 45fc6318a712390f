// `streambus dev --nodes N` as processes: N brokers start (each answers ApiVersions with its own
// node id on the address printed), Ctrl-C (SIGINT) stops all of them within a bound and exits
// 0, a broker that dies is reported and the others are stopped (exit 1), and bad invocations
// are usage errors. Whether the brokers form one cluster is not tested here (that is the
// integrator's wiring of --peers).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { kafkaListener, UV_THREADPOOL_SIZE_DEFAULT } from '@streambus/broker';
import { freePorts, runDevCluster } from '@streambus/cli';
import {
  ApiKey,
  type ApiVersionsResponse,
  decodeResponse,
  encodeRequest,
  FrameParser,
} from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_BIN, ROOT, removeDir, runCli, tempDir } from './harness.js';

interface Listed {
  readonly id: number;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
}

interface Dev {
  readonly child: ChildProcess;
  readonly nodes: Listed[];
  readonly exit: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

const started: Array<{ child: ChildProcess; pids: number[]; dir: string }> = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterEach(() => {
  // Whatever a failed test left running: the command and its brokers (own process groups).
  for (const s of started.splice(0)) {
    s.child.kill('SIGKILL');
    for (const pid of s.pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    removeDir(s.dir);
  }
});

/** Starts `streambus dev --nodes n` and waits for its listing of the brokers. */
async function startDev(n: number): Promise<Dev> {
  const dir = tempDir('streambus-dev-cluster-');
  const child = spawn(
    process.execPath,
    // Kafka ports chosen free (--kafka-port 0): 9092.. may be taken on a shared machine.
    [
      CLI_BIN,
      'dev',
      '--nodes',
      String(n),
      '--data-dir',
      dir,
      '--log-level',
      'warn',
      '--kafka-port',
      '0',
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, STREAMBUS_BOOTSTRAP: undefined },
    },
  );
  const record = { child, pids: [] as number[], dir };
  started.push(record);
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const nodes = await new Promise<Listed[]>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no listing in 30 s:\n${out}\n${err}`)),
      30_000,
    );
    void exit.then((code) => reject(new Error(`dev exited with ${code}:\n${out}\n${err}`)));
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (!out.includes('Press Ctrl-C to stop.')) return;
      clearTimeout(timer);
      const re = /^ {2}node (\d+) {2}127\.0\.0\.1:(\d+) {2}HTTP \S+ {2}pid (\d+) {2}data (.+)$/gm;
      resolve(
        [...out.matchAll(re)].map((m) => ({
          id: Number(m[1]),
          port: Number(m[2]),
          pid: Number(m[3]),
          dataDir: m[4]!,
        })),
      );
    });
  });
  record.pids.push(...nodes.map((x) => x.pid));
  return { child, nodes, exit, stdout: () => out, stderr: () => err };
}

/** One ApiVersions request on a fresh connection. */
function apiVersions(port: number): Promise<ApiVersionsResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const parser = new FrameParser();
    const timer = setTimeout(() => socket.destroy(new Error('no answer in 5 s')), 5000);
    socket.once('error', reject);
    socket.once('connect', () => socket.write(encodeRequest(ApiKey.API_VERSIONS, 1, {})));
    socket.on('data', (chunk: Buffer) => {
      const [frame] = parser.push(chunk);
      if (frame === undefined) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(decodeResponse(ApiKey.API_VERSIONS, frame));
    });
  });
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('streambus dev --nodes', () => {
  it('starts 3 brokers with node ids 1..3, each answering on its address; SIGINT stops all', async () => {
    const dev = await startDev(3);
    expect(dev.nodes.map((x) => x.id)).toEqual([1, 2, 3]);
    const peers = dev.nodes.map((x) => `${x.id}@127.0.0.1:${x.port}`).join(',');
    expect(dev.stdout()).toContain(`StreamBus dev cluster: 3 brokers (--peers ${peers})`);
    for (const x of dev.nodes) {
      expect((await apiVersions(x.port)).nodeId).toBe(x.id);
      expect(x.dataDir).toMatch(new RegExp(`node-${x.id}$`));
      expect(existsSync(x.dataDir)).toBe(true);
      // Each broker process was started with the launchers' libuv pool size (thread-pool.ts).
      expect(readFileSync(`/proc/${x.pid}/environ`, 'utf8').split('\0')).toContain(
        `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE || UV_THREADPOOL_SIZE_DEFAULT}`,
      );
    }
    expect(dev.stdout()).toContain(
      `--bootstrap ${dev.nodes.map((x) => `127.0.0.1:${x.port}`).join(',')}`,
    );
    // Each broker's Kafka listener, printed; any of them lists all three at those addresses.
    const kafka = /^Kafka listeners \(kafkajs, kcat, confluent-kafka\): (\S+)$/m
      .exec(dev.stdout())?.[1]
      ?.split(',');
    expect(kafka).toHaveLength(3);
    const kafkaPorts = kafka!.map((a) => Number(a.split(':')[1]));
    const c = await kafkaListener.KafkaRawClient.connect(kafkaPorts[0]!);
    try {
      const deadline = Date.now() + 20_000;
      let brokers: Array<{ nodeId: number; port: number }> = [];
      while (brokers.length < 3 && Date.now() < deadline) {
        const md = await c.request('Metadata', 4, { topics: [], allowAutoTopicCreation: false });
        brokers = md.brokers.map((x) => ({ nodeId: x.nodeId, port: x.port }));
        if (brokers.length < 3) await new Promise((r) => setTimeout(r, 100));
      }
      expect(brokers.sort((x, y) => x.nodeId - y.nodeId)).toEqual(
        kafkaPorts.map((port, i) => ({ nodeId: i + 1, port })),
      );
    } finally {
      await c.close();
    }
    expect(dev.stdout()).toContain(`kcat -b ${kafka!.join(',')} -L`);
    dev.child.kill('SIGINT');
    expect(await within(dev.exit, 20_000, 'stopping')).toBe(0);
    // Brokers' own log lines ([node-N] ...) may come in between: all three stop at once, so one
    // can find the controller gone when it reports its shutdown (a warning, under load).
    expect(dev.stdout().replace(/^\[node-\d+\] .*\n/gm, '')).toMatch(/stopping\.\.\.\nstopped\n$/);
    expect(dev.nodes.filter((x) => alive(x.pid))).toEqual([]);
    expect(dev.stderr()).toBe('');
  }, 60_000);

  it('reports a broker that dies, stops the others and fails', async () => {
    const dev = await startDev(2);
    const victim = dev.nodes[1]!;
    process.kill(victim.pid, 'SIGKILL');
    expect(await within(dev.exit, 20_000, 'stopping')).toBe(1);
    expect(dev.stderr()).toBe(
      `streambus: node 2 (pid ${victim.pid}) was killed by SIGKILL; the other brokers were stopped\n`,
    );
    expect(dev.nodes.filter((x) => alive(x.pid))).toEqual([]);
  }, 60_000);

  it('a chosen port taken before its broker binds it: every broker starts again on other ports, and the listing is true', async () => {
    // The race of a busy machine, made certain: the first choice names a port already held. It
    // drops whatever connects (a broker of the first start dialling its peer there): a connection
    // left open would keep held.close() from ever finishing.
    const held = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
    const heldPort = (held.address() as net.AddressInfo).port;
    const dir = tempDir('streambus-dev-race-');
    let calls = 0;
    const pickPorts = async (count: number, from: number | null, avoid: ReadonlySet<number>) => {
      calls++;
      if (calls === 1)
        return [heldPort, ...(await freePorts(count - 1, from, new Set([heldPort])))];
      return freePorts(count, from, avoid);
    };
    let out = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const ac = new AbortController();
    const run = runDevCluster(
      {
        nodes: 2,
        dataDir: dir,
        port: null,
        kafka: { port: null },
        logLevel: 'warn',
        autoCreateTopics: true,
        cli: 'streambus',
        signal: ac.signal,
        pickPorts,
      },
      sink,
    );
    let stopFailure: Error | null = null;
    const ran = run.then(
      () => null,
      (err: Error) => err,
    );
    try {
      const deadline = Date.now() + 45_000;
      while (!out.includes('Press Ctrl-C to stop.')) {
        const failed = await Promise.race([
          ran,
          new Promise((r) => setTimeout(() => r(undefined), 100)),
        ]);
        if (failed !== undefined) throw new Error(`dev cluster ended: ${String(failed)}\n${out}`);
        if (Date.now() > deadline) throw new Error(`no listing in 45 s:\n${out}`);
      }
      expect(out).toContain(`port ${heldPort} was taken before it bound it (EADDRINUSE)`);
      const listed = [...out.matchAll(/^ {2}node (\d+) {2}127\.0\.0\.1:(\d+) /gm)].map((m) => ({
        id: Number(m[1]),
        port: Number(m[2]),
      }));
      expect(listed.map((x) => x.id)).toEqual([1, 2]);
      for (const x of listed) {
        expect(x.port).not.toBe(heldPort);
        expect((await apiVersions(x.port)).nodeId).toBe(x.id);
      }
      // The Kafka listeners bound port 0 themselves: the printed ports are the ones they got.
      const kafka = /^Kafka listeners \(kafkajs, kcat, confluent-kafka\): (\S+)$/m
        .exec(out)?.[1]
        ?.split(',')
        .map((a) => Number(a.split(':')[1]));
      expect(kafka).toHaveLength(2);
      for (const port of kafka!) {
        expect(port).toBeGreaterThan(0);
        const c = await within(
          kafkaListener.KafkaRawClient.connect(port),
          5000,
          `connecting to Kafka port ${port}`,
        );
        await within(c.close(), 5000, `closing the connection to Kafka port ${port}`);
      }
    } finally {
      ac.abort();
      // Reported below (a failure above propagates as it is, with this one lost).
      stopFailure = await within(ran, 30_000, 'stopping')
        .then(() =>
          within(new Promise((r) => held.close(() => r(null))), 5000, 'closing the held port'),
        )
        .then(
          () => null,
          (err: Error) => err,
        );
      removeDir(dir);
    }
    if (stopFailure !== null) {
      throw new Error(`${stopFailure.message}; the dev cluster printed:\n${out}`);
    }
    expect(await ran).toBeNull();
    expect(out).toMatch(/stopped\n$/);
    // Every bound above fires before this one (45 s + 2 x 5 s + 4 x 5 s + 30 s + 5 s).
  }, 120_000);

  it('refuses a bad node count and flags that do not fit it', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--nodes', '0'], /^streambus: --nodes: expected an integer in 1\.\.9, got '0'$/],
      [['--nodes', '10'], /^streambus: --nodes: expected an integer in 1\.\.9, got '10'$/],
      [['--nodes', '2', '--listen', '127.0.0.1:7070'], /^streambus: --listen sets one broker's/],
      [['--port', '9000'], /^streambus: --port needs --nodes/],
      [['--kafka-port', '9000'], /^streambus: --kafka-port needs --nodes/],
      [
        ['--nodes', '2', '--kafka-listen', '127.0.0.1:9092'],
        /^streambus: --kafka-listen sets one broker's/,
      ],
    ];
    const dir = tempDir('streambus-dev-cluster-');
    const runs = await Promise.all(cases.map(([a]) => runCli(['dev', ...a, '--data-dir', dir])));
    cases.forEach(([args, message], i) => {
      expect({ args, code: runs[i]!.code }).toEqual({ args, code: 2 });
      expect(runs[i]!.stderr.trim()).toMatch(message);
    });
    expect(existsSync(join(dir, 'node-1'))).toBe(false);
    removeDir(dir);
  });
});
