// A cluster of real broker processes for multi-process tests and the `cluster` bench (issue 9).
//
//   const c = await TestCluster.start({ nodes: 3, network: 'proxy' });
//   try { ...c.bootstrap..., await c.kill9(await c.leaderOf('t', 0)), c.isolate(2), c.heal() }
//   finally { await c.close(); }
//
// Each broker is `streambus broker start --node-id I --peers 1@A1,2@A2,3@A3 --data-dir DIR/node-I
// --listen AI --http ...` (the CLI's entry, as a user starts it), data under one temp dir.
// Networks:
//   direct  every broker on 127.0.0.1 on a free port, peers name each other's listeners;
//           no partitions (the bench uses this).
//   proxy   as direct, but broker I's --peers name, for each other J, a LinkProxy (link-proxy.ts)
//           in this process forwarding to J: partitions cut those proxies.
//   netns   every broker in its own network namespace on its own address (netns.ts); partitions
//           are blackhole routes. Needs root and iproute2 (see `netnsSupport()`).
// Clients (this process) always reach every broker directly: a partition is between brokers.
//
// Cleanup: `close()` kills every broker, closes the proxies, removes the namespaces and the temp
// dir; a process 'exit' hook does the same for clusters a crashed or timed-out test left open.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withThreadPoolSize } from '@streambus/broker';
import {
  ApiKey,
  type ApiKeyValue,
  decodeRecordBatch,
  decodeResponse,
  encodeRecordBatch,
  encodeRequest,
  FrameParser,
  type MetadataResponse,
  peekBatchSize,
  type RequestOf,
  type ResponseOf,
} from '@streambus/protocol';
import { type LinkProxy, LinkProxyMesh } from './link-proxy.js';
import { NetnsNetwork, netnsSupport } from './netns.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The CLI entry (`streambus`); `broker start` runs the broker in that process. */
export const CLUSTER_CLI_BIN = join(ROOT, 'packages/cli/dist/bin.js');
const NETNS_PORT = 7070;
const OUTPUT_KEPT_BYTES = 256 * 1024;

export type ClusterNetwork = 'direct' | 'proxy' | 'netns';

export interface TestClusterOptions {
  /** Broker count (node ids 1..nodes). Default 3. */
  readonly nodes?: number;
  /** Default 'direct'. 'netns' throws when unavailable: check `clusterNetworkFor` first. */
  readonly network?: ClusterNetwork;
  /** Extra `broker start` flags for every broker. */
  readonly brokerArgs?: readonly string[];
  /** Extra `broker start` flags for broker `id` alone (after brokerArgs). */
  readonly nodeArgs?: (id: number) => readonly string[];
  /** Extra environment (STREAMBUS_* settings) for every broker. */
  readonly env?: Readonly<Record<string, string>>;
  /** Node flags before the script (e.g. --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  /** For one broker to print "broker started", and for the cluster to be ready. */
  readonly startTimeoutMs?: number;
  /** Default 'warn': the brokers' logs are kept (bounded) for failure messages. */
  readonly logLevel?: string;
}

export interface ClusterBroker {
  readonly id: number;
  /** Address clients (this process) connect to. */
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** The running process, or null after kill9/stop. */
  readonly process: ChildProcess | null;
  /** HTTP port of the running process (0 when not running). */
  readonly httpPort: number;
  /** The last OUTPUT_KEPT_BYTES of every run's stdout and stderr. */
  output(): string;
}

/**
 * The network to use for partition tests here: netns as root with iproute2, else proxies;
 * STREAMBUS_TEST_NETWORK=proxy forces the proxies (to test that path on a root machine).
 */
export function clusterNetworkFor(): { network: 'netns' | 'proxy'; why: string } {
  if (process.env.STREAMBUS_TEST_NETWORK === 'proxy') {
    return { network: 'proxy', why: 'TCP proxies per link (STREAMBUS_TEST_NETWORK=proxy)' };
  }
  const s = netnsSupport();
  return s.ok
    ? { network: 'netns', why: 'root with network namespaces' }
    : { network: 'proxy', why: `TCP proxies per link (no network namespaces: ${s.reason})` };
}

/** Cluster starts tried when a chosen port was taken before its broker bound it. */
const START_ATTEMPTS = 3;

/** `count` distinct free ports on `host`, held open together while chosen. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, host, () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** One request and its answer on a fresh connection; rejects after `timeoutMs` or on close. */
export function requestOnce<K extends ApiKeyValue>(
  host: string,
  port: number,
  apiKey: K,
  body: RequestOf<K>,
  timeoutMs: number,
): Promise<ResponseOf<K>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const parser = new FrameParser();
    const what = `request ${apiKey} to ${host}:${port}`;
    const done = (err: Error | null, res?: ResponseOf<K>) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () => done(new Error(`${what}: no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('error', (err) => done(err));
    socket.once('close', () => done(new Error(`${what}: closed`)));
    socket.once('connect', () => socket.write(encodeRequest(apiKey, 1, body, { apiVersion: 0 })));
    socket.on('data', (chunk: Buffer) => {
      try {
        const frames = parser.push(chunk);
        if (frames.length > 0) done(null, decodeResponse(apiKey, frames[0]!));
      } catch (err) {
        done(err as Error);
      }
    });
  });
}

export function metadataFrom(
  host: string,
  port: number,
  topics: string[] | null,
  timeoutMs = 2000,
): Promise<MetadataResponse> {
  return requestOnce(
    host,
    port,
    ApiKey.METADATA,
    { topics, allowAutoTopicCreation: false },
    timeoutMs,
  );
}

/** One acks=all PRODUCE; the partition's error code, or 'no answer' in `waitMs`. */
export async function produceOnce(
  host: string,
  port: number,
  topic: string,
  partition: number,
  value: string,
  waitMs: number,
): Promise<number | 'no answer'> {
  const records = encodeRecordBatch([{ value: Buffer.from(value), timestamp: Date.now() }], {
    timestamp: Date.now(),
  });
  const body = {
    acks: -1 as const,
    timeoutMs: waitMs,
    topics: [{ name: topic, partitions: [{ partition, records }] }],
  };
  try {
    const res = await requestOnce(host, port, ApiKey.PRODUCE, body, waitMs);
    return res.topics[0]?.partitions[0]?.errorCode ?? -1;
  } catch {
    return 'no answer';
  }
}

/** One FETCH of `topic`/`partition` from `offset`, no waiting: that partition's answer. */
async function fetchOnce(
  host: string,
  port: number,
  topic: string,
  partition: number,
  offset: number,
  maxBytes: number,
  timeoutMs: number,
) {
  const res = await requestOnce(
    host,
    port,
    ApiKey.FETCH,
    {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes,
      topics: [
        {
          name: topic,
          partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: maxBytes }],
        },
      ],
    },
    timeoutMs,
  );
  return res.topics[0]?.partitions[0];
}

/** A FETCH of one byte at offset 0, no waiting: the partition's error code (0 = it serves). */
export async function fetchErrorFrom(
  host: string,
  port: number,
  topic: string,
  partition: number,
  timeoutMs = 2000,
): Promise<number> {
  return (await fetchOnce(host, port, topic, partition, 0, 1, timeoutMs))?.errorCode ?? -1;
}

/**
 * Every record value of `topic`/`partition` that broker `host:port` serves from offset 0 to its
 * high watermark, by raw FETCH requests (no client library: no Metadata routing), control
 * batches skipped. Rejects with the error code when that broker does not serve the partition.
 */
export async function readPartitionFrom(
  host: string,
  port: number,
  topic: string,
  partition: number,
  timeoutMs = 20_000,
): Promise<Array<{ offset: number; value: string }>> {
  const out: Array<{ offset: number; value: string }> = [];
  const deadline = Date.now() + timeoutMs;
  let offset = 0;
  for (;;) {
    const p = await fetchOnce(host, port, topic, partition, offset, 4 * 1024 * 1024, 5000);
    if (p?.errorCode !== 0) {
      throw new Error(`fetch of ${topic}/${partition} from ${host}:${port}: error ${p?.errorCode}`);
    }
    const buf = p.records;
    let pos = 0;
    for (
      let size = peekBatchSize(buf, pos);
      size > 0 && pos + size <= buf.length;
      size = peekBatchSize(buf, pos)
    ) {
      const batch = decodeRecordBatch(buf, pos);
      if (!batch.isControl) {
        for (const r of batch.records) {
          if (r.offset >= offset)
            out.push({ offset: r.offset, value: Buffer.from(r.value ?? []).toString() });
        }
      }
      offset = Math.max(offset, batch.header.baseOffset + batch.header.lastOffsetDelta + 1);
      pos += size;
    }
    if (offset >= p.highWatermark) return out;
    if (Date.now() > deadline)
      throw new Error(
        `fetch of ${topic}/${partition}: stuck at ${offset} below ${p.highWatermark}`,
      );
  }
}

export async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not within ${timeoutMs} ms${last ? ` (last: ${String(last)})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

class Node implements ClusterBroker {
  process: ChildProcess | null = null;
  httpPort = 0;
  exited: Promise<void> = Promise.resolve();
  private out = '';

  constructor(
    readonly id: number,
    readonly host: string,
    readonly port: number,
    readonly dataDir: string,
    readonly args: readonly string[],
    /** `[command, prefix args]` that run node (directly, or through `ip netns exec`). */
    readonly runner: [string, string[]],
  ) {}

  output(): string {
    return this.out;
  }

  append(text: string): void {
    this.out += text;
    if (this.out.length > OUTPUT_KEPT_BYTES) this.out = this.out.slice(-OUTPUT_KEPT_BYTES);
  }
}

const openClusters = new Set<TestCluster>();
let exitHook = false;

export class TestCluster {
  private readonly nodes: Node[] = [];
  private closed = false;

  private constructor(
    readonly network: ClusterNetwork,
    /** The temp dir holding every broker's data dir. */
    readonly dir: string,
    private readonly options: TestClusterOptions,
    private readonly proxies: LinkProxyMesh | null,
    private readonly netns: NetnsNetwork | null,
  ) {}

  /**
   * Starts the brokers and waits until every one answers Metadata listing them all. The native
   * ports are chosen before the brokers bind them (every `--peers` names them), so on a busy
   * machine another process (often a broker binding its HTTP port 0) can take one first: such a
   * start is thrown away and made again on new ports, at most START_ATTEMPTS times.
   */
  static async start(options: TestClusterOptions = {}): Promise<TestCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await TestCluster.startOnce(options);
      } catch (err) {
        const portTaken = /address in use|EADDRINUSE/.test((err as Error).message);
        if (!portTaken || options.network === 'netns' || attempt >= START_ATTEMPTS) throw err;
      }
    }
  }

  private static async startOnce(options: TestClusterOptions): Promise<TestCluster> {
    const count = options.nodes ?? 3;
    if (!(count >= 1 && count <= 32)) throw new RangeError(`nodes ${count} is not in 1..32`);
    const network = options.network ?? 'direct';
    // The test process's pid in the name: a test can tell its clusters' dirs from those of test
    // files running alongside it (cluster-harness.test.ts).
    const dir = mkdtempSync(join(tmpdir(), `streambus-cluster-${process.pid}-`));
    let netns: NetnsNetwork | null = null;
    let proxies: LinkProxyMesh | null = null;
    let cluster: TestCluster | null = null;
    try {
      const addrs = new Map<number, { host: string; port: number }>();
      if (network === 'netns') {
        netns = NetnsNetwork.create(count);
        for (const n of netns.nodes) addrs.set(n.id, { host: n.address, port: NETNS_PORT });
      } else {
        const ports = await freePorts(count);
        for (const [i, port] of ports.entries()) addrs.set(i + 1, { host: '127.0.0.1', port });
      }
      if (network === 'proxy') proxies = await LinkProxyMesh.start(addrs);
      cluster = new TestCluster(network, dir, options, proxies, netns);
      openClusters.add(cluster);
      installExitHook();
      for (const [id, a] of addrs) {
        const peers = [...addrs]
          .map(([j, b]) => {
            const via = proxies && j !== id ? proxies.proxy(id, j) : null;
            return `${j}@${via ? via.address : `${b.host}:${b.port}`}`;
          })
          .join(',');
        const args = [
          ...(options.nodeFlags ?? []),
          CLUSTER_CLI_BIN,
          'broker',
          'start',
          '--node-id',
          String(id),
          '--peers',
          peers,
          '--data-dir',
          join(dir, `node-${id}`),
          '--listen',
          `${a.host}:${a.port}`,
          '--http',
          `${a.host}:0`,
          '--log-level',
          options.logLevel ?? 'warn',
          ...(options.brokerArgs ?? []),
          ...(options.nodeArgs?.(id) ?? []),
        ];
        const runner: [string, string[]] = netns
          ? (netns.command(id, process.execPath, []) as [string, string[]])
          : [process.execPath, []];
        cluster.nodes.push(new Node(id, a.host, a.port, join(dir, `node-${id}`), args, runner));
      }
      await Promise.all(cluster.nodes.map((n) => cluster!.spawn(n)));
      await cluster.waitReady();
      return cluster;
    } catch (err) {
      if (cluster) {
        const logs = cluster.nodes.map((n) => `--- node ${n.id}\n${n.output()}`).join('\n');
        await cluster.close();
        throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
      }
      await proxies?.close();
      netns?.close();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Every broker's client address (for the SDK's `bootstrap`). */
  get bootstrap(): string[] {
    return this.nodes.map((n) => `${n.host}:${n.port}`);
  }

  /** The client addresses of the running brokers only. */
  liveBootstrap(): string[] {
    return this.nodes.filter((n) => n.process).map((n) => `${n.host}:${n.port}`);
  }

  broker(id: number): ClusterBroker {
    return this.node(id);
  }

  /** Ids of the brokers whose process runs. */
  running(): number[] {
    return this.nodes.filter((n) => n.process).map((n) => n.id);
  }

  /** kill -9 of broker `id`; resolves once it is gone. */
  async kill9(id: number): Promise<void> {
    const n = this.node(id);
    if (!n.process) return;
    n.process.kill('SIGKILL');
    await n.exited;
  }

  /** SIGTERM (graceful stop); resolves with the exit code once it is gone. */
  async stop(id: number, timeoutMs = 20_000): Promise<number | null> {
    const n = this.node(id);
    const p = n.process;
    if (!p) return null;
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    await n.exited;
    clearTimeout(timer);
    return p.exitCode;
  }

  /** Starts broker `id` again over its data dir (same address and flags). */
  async restart(id: number): Promise<void> {
    const n = this.node(id);
    if (n.process) throw new Error(`broker ${id} is still running`);
    await this.spawn(n);
  }

  /** Metadata as broker `id` answers it. */
  metadata(
    id: number,
    topics: string[] | null = null,
    timeoutMs = 2000,
  ): Promise<MetadataResponse> {
    const n = this.node(id);
    return metadataFrom(n.host, n.port, topics, timeoutMs);
  }

  /** Waits until every running broker answers Metadata listing all `size` brokers. */
  async waitReady(timeoutMs = this.options.startTimeoutMs ?? 30_000): Promise<void> {
    await waitUntil('cluster ready (every broker lists all brokers)', timeoutMs, async () => {
      for (const id of this.running()) {
        const m = await this.metadata(id, []);
        if (m.brokers.length !== this.size || m.controllerId < 1) return undefined;
      }
      return true;
    });
  }

  /**
   * The leader of `topic`/`partition` once the brokers asked (default: all running ones) have
   * agreed on the same leader and leader epoch for `stableMs` (leadership right after a topic is
   * created or a leader dies settles in a few steps), that leader running, not in `exclude`,
   * and (unless `serving: false`) answering a fetch of the partition without an error: Metadata
   * can name a leader before that broker's replica has become it.
   */
  async leaderOf(
    topic: string,
    partition: number,
    options: {
      exclude?: readonly number[];
      askIds?: readonly number[];
      timeoutMs?: number;
      stableMs?: number;
      serving?: boolean;
    } = {},
  ): Promise<number> {
    const ask = () => options.askIds ?? this.running();
    const stableMs = options.stableMs ?? 500;
    let seen: { key: string; since: number } | null = null;
    return waitUntil(
      `a leader of ${topic}/${partition} agreed by brokers ${ask().join(',')} for ${stableMs} ms`,
      options.timeoutMs ?? 15_000,
      async () => {
        let leader: number | undefined;
        let epoch = -1;
        for (const id of ask()) {
          const m = await this.metadata(id, [topic]);
          const p = m.topics
            .find((t) => t.name === topic)
            ?.partitions.find((x) => x.partition === partition);
          if (p?.errorCode !== 0 || p.leaderId < 1) return undefined;
          if (leader !== undefined && (p.leaderId !== leader || p.leaderEpoch !== epoch)) {
            return undefined;
          }
          leader = p.leaderId;
          epoch = p.leaderEpoch;
        }
        if (leader === undefined || options.exclude?.includes(leader)) return undefined;
        if (!this.running().includes(leader)) return undefined;
        const key = `${leader}@${epoch}`;
        const now = Date.now();
        if (seen?.key !== key) seen = { key, since: now };
        if (now - seen.since < stableMs) return undefined;
        if (options.serving === false) return leader;
        const n = this.node(leader);
        const code = await fetchErrorFrom(n.host, n.port, topic, partition);
        return code === 0 ? leader : undefined;
      },
    );
  }

  /**
   * One acks=all PRODUCE of `value` straight to broker `id` (no client library, so nothing
   * retries or finds another leader): the partition's error code, or 'no answer' in `waitMs`.
   */
  produceTo(
    id: number,
    topic: string,
    partition: number,
    value: string,
    waitMs: number,
  ): Promise<number | 'no answer'> {
    const n = this.node(id);
    return produceOnce(n.host, n.port, topic, partition, value, waitMs);
  }

  /**
   * The running broker that serves `topic`/`partition` (answers a fetch without error), found by
   * asking every broker rather than Metadata; waits up to `timeoutMs` for one.
   */
  async servingReplica(topic: string, partition: number, timeoutMs = 20_000): Promise<number> {
    return waitUntil(`a broker serving ${topic}/${partition}`, timeoutMs, async () => {
      for (const id of this.running()) {
        const n = this.node(id);
        if ((await fetchErrorFrom(n.host, n.port, topic, partition).catch(() => -1)) === 0)
          return id;
      }
      return undefined;
    });
  }

  /** What broker `id` serves of `topic`/`partition` (readPartitionFrom). */
  readFrom(
    id: number,
    topic: string,
    partition: number,
  ): Promise<Array<{ offset: number; value: string }>> {
    const n = this.node(id);
    return readPartitionFrom(n.host, n.port, topic, partition);
  }

  /** The proxy that broker `from` dials to reach `to` ('proxy' clusters only). */
  linkProxy(from: number, to: number): LinkProxy {
    if (!this.proxies) throw new Error(`a '${this.network}' cluster has no link proxies`);
    return this.proxies.proxy(from, to);
  }

  /** Cuts broker-to-broker traffic from `from` to `to` (one way). */
  cutOneWay(from: number, to: number): void {
    if (this.proxies) this.proxies.cutOneWay(from, to);
    else if (this.netns) this.netns.block(from, to);
    else
      throw new Error("a 'direct' cluster cannot be partitioned: start it with 'proxy' or 'netns'");
  }

  /** Cuts `id` from every other broker, both ways (clients still reach it). */
  isolate(id: number): void {
    for (const n of this.nodes) {
      if (n.id === id) continue;
      this.cutOneWay(id, n.id);
      this.cutOneWay(n.id, id);
    }
  }

  /** Removes every partition. */
  heal(): void {
    this.proxies?.healAll();
    this.netns?.heal();
  }

  /** Kills every broker, closes proxies and namespaces, removes the temp dir. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    openClusters.delete(this);
    await Promise.all(this.nodes.map((n) => this.kill9(n.id)));
    await this.proxies?.close();
    try {
      this.netns?.close();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** Kills and removes synchronously (the process 'exit' hook). */
  closeNow(): void {
    this.closed = true;
    for (const n of this.nodes) n.process?.kill('SIGKILL');
    try {
      this.netns?.close();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  private node(id: number): Node {
    const n = this.nodes[id - 1];
    if (!n || n.id !== id) throw new Error(`no broker ${id} in this cluster of ${this.size}`);
    return n;
  }

  private spawn(n: Node): Promise<void> {
    if (this.closed) return Promise.reject(new Error('cluster closed'));
    const [cmd, prefix] = n.runner;
    const child = spawn(cmd, [...prefix, ...n.args], {
      cwd: ROOT,
      env: withThreadPoolSize({ PATH: process.env.PATH ?? '', ...this.options.env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    n.process = child;
    n.httpPort = 0;
    n.append(`--- start ${new Date().toISOString()}\n`);
    n.exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        n.append(`--- exit ${code ?? signal}\n`);
        if (n.process === child) {
          n.process = null;
          n.httpPort = 0;
        }
        resolve();
      }),
    );
    const timeoutMs = this.options.startTimeoutMs ?? 30_000;
    return new Promise<void>((resolve, reject) => {
      let pending = '';
      let started = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`broker ${n.id} did not start in ${timeoutMs} ms`));
      }, timeoutMs);
      child.stdout!.on('data', (d: Buffer) => {
        const text = d.toString();
        n.append(text);
        if (started) return;
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.includes('"broker started"')) continue;
          try {
            n.httpPort = (JSON.parse(line) as { httpPort?: number }).httpPort ?? 0;
          } catch {
            continue;
          }
          started = true;
          pending = '';
          clearTimeout(timer);
          resolve();
          return;
        }
      });
      child.stderr!.on('data', (d: Buffer) => n.append(d.toString()));
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void n.exited.then(() => {
        clearTimeout(timer);
        if (!started) reject(new Error(`broker ${n.id} exited before starting`));
      });
    });
  }
}

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of openClusters) c.closeNow();
  });
}
