// Test harness for multi-process tests: spawns real broker processes on 127.0.0.1 ephemeral
// ports with temp data directories, reads the bound port from the first JSON log line
// ("broker started"), and makes sure every child is killed and every temp dir removed (explicit
// stop, plus a process 'exit' safety net). Also a CLI runner and a fault-injecting TCP proxy.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Broker, type BrokerConfig, defaultConfig, withThreadPoolSize } from '@streambus/broker';
import {
  ApiKey,
  decodeResponse,
  encodeFrame,
  encodeResponse,
  type Frame,
  FrameFlag,
  FrameParser,
} from '@streambus/protocol';
import type { FileSystem } from '@streambus/storage';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BROKER_MAIN = join(ROOT, 'packages/broker/dist/main.js');
export const CLI_BIN = join(ROOT, 'packages/cli/dist/bin.js');

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'streambus-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

export interface BrokerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly bootstrap: string;
  readonly dataDir: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (kill -9), wait for exit. */
  kill9(): Promise<void>;
}

/** Spawns `command args` and waits for the "broker started" line. */
export async function spawnBrokerProcess(
  args: string[],
  dataDir: string,
  timeoutMs = 15_000,
  env: NodeJS.ProcessEnv = {},
): Promise<BrokerProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: withThreadPoolSize({ ...process.env, STREAMBUS_BOOTSTRAP: undefined, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`broker did not start in ${timeoutMs} ms:\n${out}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"broker started"')) continue;
        try {
          const j = JSON.parse(line) as { port?: number };
          if (typeof j.port === 'number') {
            clearTimeout(timer);
            resolve(j.port);
            return;
          }
        } catch {
          // A partial line: wait for the rest.
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before starting:\n${out}`));
    });
  });
  return {
    child,
    port,
    bootstrap: `127.0.0.1:${port}`,
    dataDir,
    output: () => out,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A broker from packages/broker/dist/main.js on ephemeral ports. */
export function startBroker(dataDir: string, extra: string[] = []): Promise<BrokerProcess> {
  return spawnBrokerProcess(
    [
      BROKER_MAIN,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      ...extra,
    ],
    dataDir,
  );
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node packages/cli/dist/bin.js args` with stdin `input` (and extra environment `env`). */
export function runCli(
  args: string[],
  input = '',
  timeoutMs = 20_000,
  env: NodeJS.ProcessEnv = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, STREAMBUS_BOOTSTRAP: undefined, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/**
 * A 127.0.0.1 TCP proxy in front of one broker. It rewrites the broker's port in METADATA
 * responses to its own (so the client keeps coming through it), and can drop a connection once
 * right after the broker answered a produce: the broker has appended, the client never sees
 * the ack.
 */
export class DroppingProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  dropsLeft = 0;
  drops = 0;
  produceRequests = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const both = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', both);
    upstream.on('error', both);
    client.on('close', both);
    upstream.on('close', both);
    const fromClient = new FrameParser();
    client.on('data', (chunk: Buffer) => {
      for (const f of fromClient.push(chunk))
        if (f.apiKey === ApiKey.PRODUCE) this.produceRequests++;
      upstream.write(chunk);
    });
    const fromBroker = new FrameParser();
    upstream.on('data', (chunk: Buffer) => {
      for (const f of fromBroker.push(chunk)) {
        if (f.apiKey === ApiKey.PRODUCE && this.dropsLeft > 0) {
          this.dropsLeft--;
          this.drops++;
          both();
          return;
        }
        client.write(this.rewrite(f));
      }
    });
  }

  private rewrite(f: Frame): Buffer {
    if (f.apiKey === ApiKey.METADATA && (f.flags & FrameFlag.ERROR) === 0) {
      const body = decodeResponse(ApiKey.METADATA, f);
      body.brokers = body.brokers.map((b) => ({ ...b, host: '127.0.0.1', port: this.port }));
      return encodeResponse({ ...f, apiKey: ApiKey.METADATA }, body);
    }
    return encodeFrame(f, f.body);
  }
}

/**
 * An in-process broker over `fileSystem` (data under /data, loopback port 0, no HTTP, silent),
 * for tests of what a storage seam (a slow fsync, a probe) does to clients; `tune` adjusts the
 * default configuration.
 */
export function startInProcessBroker(
  fileSystem: FileSystem,
  tune: (c: BrokerConfig) => BrokerConfig = (c) => c,
): Promise<Broker> {
  return Broker.start(
    tune({
      ...defaultConfig(),
      dataDir: '/data',
      listen: { host: '127.0.0.1', port: 0 },
      http: null,
      logLevel: 'silent',
    }),
    { fileSystem },
  );
}
