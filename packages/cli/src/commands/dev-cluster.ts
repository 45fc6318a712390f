// `streambus dev --nodes N`: a local cluster of N broker processes (node ids 1..N, each started
// as `streambus broker start --node-id I --peers <all of them>`), data under one directory
// (`<dir>/node-<id>`), native listeners on 127.0.0.1 ports chosen free (or the first free ones
// from --port upward), HTTP on ports the brokers pick, Kafka listeners from --kafka-port upward
// (9092, 9093, ... by default; 0: any free ones; off: none). It prints every broker's address and
// stays in the foreground, forwarding the brokers' log lines prefixed with their node.
//
// The brokers run in process groups of their own, so only this command gets a terminal's
// Ctrl-C; if it dies of an uncaught error it kills them (a kill -9 of it leaves them running).
// Stopping: SIGINT (Ctrl-C), SIGTERM or SIGHUP sends SIGTERM to every broker, one after another
// from the highest node id, waits for them (each stops gracefully; one still running
// STOP_TIMEOUT_MS after the stop began is killed) and exits 0 when all exited 0. A broker that exits on its own (crash, kill -9) is reported, the others are stopped
// the same way, and the command fails (exit 1). A broker that does not start is reported with
// its last output line, and the others are stopped.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Peer } from '@streambus/broker';

export const DEV_NODES_MAX = 9;
/** A broker must print its started line within this long. */
const START_TIMEOUT_MS = 30_000;
/** A broker still running this long after the stop began is killed. */
const STOP_TIMEOUT_MS = 20_000;
/** Ports scanned upward from --port for free ones. */
const PORT_SCAN_MAX = 1000;
/** Output lines of a broker kept to explain a failure. */
const TAIL_LINES_MAX = 20;
/**
 * A broker of a start that failed (a port was taken) still running this long after SIGTERM is
 * killed: its cluster never ran, and its graceful stop waits for a peer that never came up.
 */
const ABANDON_STOP_TIMEOUT_MS = 3_000;
/** Starts of the whole cluster on new ports when a chosen port was taken before a broker bound it. */
export const DEV_START_ATTEMPTS_MAX = 3;

const BIN = fileURLToPath(new URL('../bin.js', import.meta.url));

export interface DevClusterOptions {
  readonly nodes: number;
  readonly dataDir: string;
  /** First port to try for the native listeners; null: any free ones. */
  readonly port: number | null;
  /** The Kafka listeners: the first port to try (null: any free ones), or null for none. */
  readonly kafka: { readonly port: number | null } | null;
  readonly logLevel: string;
  readonly autoCreateTopics: boolean;
  /** How to run the CLI in the printed commands. */
  readonly cli: string;
  /** Stops the cluster as Ctrl-C does (embedding, tests). */
  readonly signal?: AbortSignal;
  /** Chooses `count` free ports (default `freePorts`): tests inject one that gets taken. */
  readonly pickPorts?: (
    count: number,
    from: number | null,
    avoid: ReadonlySet<number>,
  ) => Promise<number[]>;
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface Node {
  readonly peer: Peer;
  readonly dataDir: string;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  /** Resolves with the HTTP port once the broker printed its started line. */
  readonly ready: Promise<number | null>;
  readonly tail: string[];
  exit: Exit | null;
  httpPort: number | null;
  /** The Kafka listener's port as the broker bound it (its started line), or null. */
  kafkaPort: number | null;
}

function describeExit(e: Exit): string {
  return e.signal !== null ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * `count` distinct free 127.0.0.1 ports, none in `avoid`: from `from` upward, or chosen by the OS.
 * Free when checked: another process may take one before a broker binds it (runDevCluster then
 * starts again on new ones).
 */
export async function freePorts(
  count: number,
  from: number | null,
  avoid: ReadonlySet<number> = new Set(),
): Promise<number[]> {
  const ports: number[] = [];
  if (from === null) {
    const chosen = await osPorts(count + avoid.size);
    const usable = chosen.filter((p) => !avoid.has(p)).slice(0, count);
    // count + avoid.size distinct ports: at least `count` of them are not avoided.
    return usable;
  }
  for (let p = from; p <= Math.min(65535, from + PORT_SCAN_MAX) && ports.length < count; p++) {
    if (!avoid.has(p) && (await canListen(p))) ports.push(p);
  }
  if (ports.length < count) {
    throw new Error(
      `--port ${from}: found ${ports.length} free ports of the ${count} needed in ${from}..${Math.min(65535, from + PORT_SCAN_MAX)}`,
    );
  }
  return ports;
}

/** `count` distinct ports the OS picks (bound together, then released). */
async function osPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      return s;
    }),
  );
  for (const s of servers) {
    ports.push((s.address() as net.AddressInfo).port);
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  return ports;
}

/**
 * The Kafka flag of one broker: its listener. The others learn its Kafka address from its
 * registration in the metadata log.
 */
function kafkaArgs(peer: Peer, kafka: readonly Peer[]): string[] {
  const own = kafka.find((k) => k.id === peer.id);
  return own === undefined ? [] : ['--kafka-listen', `${own.host}:${own.port}`];
}

function spawnNode(
  peer: Peer,
  peers: string,
  opts: DevClusterOptions,
  out: NodeJS.WritableStream,
  kafka: readonly Peer[],
  withThreadPoolSize: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv,
): Node {
  const dataDir = join(opts.dataDir, `node-${peer.id}`);
  const child = spawn(
    process.execPath,
    [
      BIN,
      'broker',
      'start',
      '--node-id',
      String(peer.id),
      '--peers',
      peers,
      '--listen',
      `${peer.host}:${peer.port}`,
      '--http',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--log-level',
      opts.logLevel,
      ...kafkaArgs(peer, kafka),
    ],
    {
      // A process group of its own: a terminal's Ctrl-C reaches only this command, which sends
      // each broker one SIGTERM. (Sharing the group, each broker got the terminal's SIGINT and
      // then our SIGTERM: a second signal, which a broker answers by exiting at once.)
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: withThreadPoolSize({
        ...process.env,
        STREAMBUS_AUTO_CREATE_TOPICS: String(opts.autoCreateTopics),
      }),
    },
  );
  let onReady!: (httpPort: number | null) => void;
  let isReady = false;
  const node: Node = {
    peer,
    dataDir,
    child,
    ready: new Promise((resolve) => {
      onReady = resolve;
    }),
    tail: [],
    exit: null,
    httpPort: null,
    kafkaPort: null,
    exited: new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        node.exit = { code, signal };
        resolve(node.exit);
      });
    }),
  };
  // A spawn failure (no such executable) is reported as the exit that follows it.
  child.once('error', (err) => node.tail.push(String(err)));
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      node.tail.push(line);
      if (node.tail.length > TAIL_LINES_MAX) node.tail.shift();
      if (!isReady && line.includes('"broker started"')) {
        try {
          const started = JSON.parse(line) as { httpPort?: number; kafkaPort?: number | null };
          node.httpPort = started.httpPort ?? null;
          node.kafkaPort = started.kafkaPort ?? null;
          isReady = true;
          onReady(node.httpPort);
          return;
        } catch {
          // Not the JSON line after all: keep waiting for it.
        }
      }
      out.write(`[node-${peer.id}] ${line}\n`);
    });
  }
  return node;
}

/** Resolves once the broker printed its started line; rejects if it exits or times out first. */
function started(node: Node): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`node ${node.peer.id} did not start within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    void node.ready.then(() => {
      clearTimeout(timer);
      resolve();
    });
    void node.exited.then((e) => {
      clearTimeout(timer);
      const last = node.tail.at(-1);
      reject(
        new Error(
          `node ${node.peer.id} ${describeExit(e)} before it started${last ? `: ${last}` : ''}`,
        ),
      );
    });
  });
}

/**
 * SIGTERM to every running broker, then waits; one still running after the bound is killed.
 * `oneByOne` (a cluster that ran): the highest node id first, each after the one before exited,
 * so every broker but the last tells the controller it leaves while a quorum is still up. (All at
 * once, the last broker's controlled shutdown waited half of its shutdown.timeoutMs, 15 s, for a
 * controller quorum that had gone.) The last one finds no live peer and skips that step.
 */
async function stopAll(
  nodes: readonly Node[],
  timeoutMs = STOP_TIMEOUT_MS,
  oneByOne = false,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), timeoutMs);
  });
  const all = Promise.all(nodes.map((n) => n.exited));
  if (!oneByOne) for (const n of nodes) if (n.exit === null) n.child.kill('SIGTERM');
  const inTurn = async (): Promise<void> => {
    for (const n of [...nodes].reverse()) {
      if (n.exit === null) n.child.kill('SIGTERM');
      if ((await Promise.race([n.exited, late])) === 'late') return;
    }
  };
  if (
    (await Promise.race([(oneByOne ? inTurn() : Promise.resolve()).then(() => all), late])) ===
    'late'
  ) {
    for (const n of nodes) if (n.exit === null) n.child.kill('SIGKILL');
    await all;
  }
  clearTimeout(timer);
}

/** The Kafka addresses as the brokers bound them (port 0 asks each broker to choose). */
function kafkaBootstrap(nodes: readonly Node[]): string {
  return nodes
    .filter((n) => n.kafkaPort !== null)
    .map((n) => `127.0.0.1:${n.kafkaPort}`)
    .join(',');
}

/**
 * The port a broker found taken, from its output (run.ts: `cannot listen on HOST:PORT for the
 * ... listener (--flag): address in use`, or a raw EADDRINUSE): -1 when it names none; null when
 * the broker did not fail that way.
 */
export function portInUse(lines: readonly string[]): number | null {
  for (const line of lines) {
    if (!/address in use|EADDRINUSE/i.test(line)) continue;
    const m = /(?:cannot listen on|EADDRINUSE\D*?)\s*(?:[\d.]+|\[[0-9a-f:]+\]):(\d+)/i.exec(line);
    return m !== null ? Number(m[1]) : -1;
  }
  return null;
}

/** Runs the cluster until a signal or a broker's exit; throws when it did not end cleanly. */
export async function runDevCluster(
  opts: DevClusterOptions,
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const pick = opts.pickPorts ?? freePorts;
  // Loaded here, not at the CLI's import: every other command would pay for the broker's
  // ~200 modules (program.ts).
  const { formatPeers, withThreadPoolSize } = await import('@streambus/broker');
  /** Ports a broker found taken: never chosen again by this run. */
  const taken = new Set<number>();
  let peers: Peer[] = [];
  let peerList = '';
  let nodes: Node[] = [];
  // Until the cluster runs, a signal stops what has started.
  let signalled: NodeJS.Signals | null = null;
  /** Ends the wait for the brokers' started lines when a signal comes. */
  let interrupt = (): void => {};
  let onSignal: (s: NodeJS.Signals) => void = (s) => {
    signalled = s;
    interrupt();
  };
  const handler = (s: NodeJS.Signals): void => onSignal(s);
  // If this process ends anyway (an uncaught error), it takes its brokers with it.
  const killAll = (): void => {
    for (const n of nodes) if (n.exit === null) n.child.kill('SIGKILL');
  };
  const onAbort = (): void => onSignal('SIGINT');
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('SIGHUP', handler); // the terminal closed
  process.on('exit', killAll);
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted === true) signalled = 'SIGINT';
  // A node's data directory that this run creates: a start that fails leaves it behind (a broker
  // that got that far recorded the --peers of ports now abandoned), so the next start removes it.
  // One that existed before is the user's cluster and is kept.
  const fresh = Array.from({ length: opts.nodes }, (_, i) =>
    join(opts.dataDir, `node-${i + 1}`),
  ).filter((d) => !existsSync(d));
  try {
    for (let attempt = 1; ; attempt++) {
      // The native ports go into every broker's --peers, so they are chosen here. A Kafka
      // listener on "any free" port binds port 0 itself and registers the port it got; with
      // --kafka-port the ports from there upward are chosen here too.
      const ports = await pick(opts.nodes, opts.port, taken);
      let kafkaPorts: number[] = [];
      if (opts.kafka !== null) {
        kafkaPorts =
          opts.kafka.port === null
            ? ports.map(() => 0)
            : await pick(opts.nodes, opts.kafka.port, new Set([...taken, ...ports]));
      }
      peers = ports.map((port, i) => ({ id: i + 1, host: '127.0.0.1', port }));
      const kafka: Peer[] = kafkaPorts.map((port, i) => ({ id: i + 1, host: '127.0.0.1', port }));
      peerList = formatPeers(peers);
      nodes = peers.map((p) => spawnNode(p, peerList, opts, out, kafka, withThreadPoolSize));
      if (signalled !== null) {
        await stopAll(nodes);
        return;
      }
      try {
        const interrupted = new Promise<void>((resolve) => {
          interrupt = resolve;
        });
        await Promise.race([Promise.all(nodes.map(started)), interrupted]);
        if (signalled !== null) {
          await stopAll(nodes);
          return;
        }
        break;
      } catch (err) {
        await stopAll(nodes, ABANDON_STOP_TIMEOUT_MS);
        if (signalled !== null) return;
        // A port free when chosen was taken before the broker bound it (another process on a
        // busy machine): start every broker again on new ports, a bounded number of times.
        const clashes = nodes.flatMap((n) => {
          const port = portInUse(n.tail);
          return port === null ? [] : [{ n, port: port > 0 ? port : n.peer.port }];
        });
        if (clashes.length === 0 || attempt >= DEV_START_ATTEMPTS_MAX) throw err;
        for (const c of clashes) taken.add(c.port);
        for (const d of fresh) rmSync(d, { recursive: true, force: true });
        out.write(
          `${clashes.map((c) => `node ${c.n.peer.id}: port ${c.port} was taken before it bound it (EADDRINUSE)`).join('; ')}; starting the brokers again on other ports\n`,
        );
      }
    }
    const bootstrap = peers.map((p) => `${p.host}:${p.port}`).join(',');
    const b = ` --bootstrap ${bootstrap}`;
    out.write(
      [
        `StreamBus dev cluster: ${nodes.length} broker${nodes.length === 1 ? '' : 's'} (--peers ${peerList})`,
        ...nodes.map(
          (n) =>
            `  node ${n.peer.id}  ${n.peer.host}:${n.peer.port}  HTTP 127.0.0.1:${n.httpPort}  pid ${n.child.pid}  data ${n.dataDir}`,
        ),
        ...(opts.kafka !== null
          ? [`Kafka listeners (kafkajs, kcat, confluent-kafka): ${kafkaBootstrap(nodes)}`]
          : []),
        opts.autoCreateTopics
          ? 'topics are created on first use (--no-auto-create-topics to refuse)'
          : 'unknown topics are refused (create them with topic create)',
        '',
        'Try it from another terminal:',
        `  ${opts.cli} cluster describe${b}`,
        `  ${opts.cli} topic create demo --partitions 3${b}`,
        `  echo hello | ${opts.cli} produce demo${b}`,
        `  ${opts.cli} consume demo --from-beginning${b}`,
        ...(opts.kafka !== null ? [`  kcat -b ${kafkaBootstrap(nodes)} -L`] : []),
        '',
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'),
    );
    const stop = new Promise<NodeJS.Signals>((resolve) => {
      if (signalled !== null) resolve(signalled);
      onSignal = resolve;
    });
    const died = Promise.race(nodes.map((n) => n.exited.then(() => n)));
    const first = await Promise.race([stop, died]);
    if (typeof first === 'string') {
      out.write('stopping...\n');
      await stopAll(nodes, STOP_TIMEOUT_MS, true);
      const failed = nodes.filter((n) => n.exit?.code !== 0);
      if (failed.length > 0) {
        throw new Error(
          failed.map((n) => `node ${n.peer.id} ${describeExit(n.exit!)} while stopping`).join('; '),
        );
      }
      out.write('stopped\n');
      return;
    }
    const why = `node ${first.peer.id} (pid ${first.child.pid}) ${describeExit(first.exit!)}`;
    out.write(`${why}; stopping the other brokers...\n`);
    await stopAll(nodes, STOP_TIMEOUT_MS, true);
    throw new Error(`${why}; the other brokers were stopped`);
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
    process.off('SIGHUP', handler);
    process.off('exit', killAll);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
