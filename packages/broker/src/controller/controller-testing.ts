// A manual tick driver for in-process controller tests: N brokers, each a `ControllerNode` over
// its own MemoryFileSystem, connected by a MemoryTransportHub. The test decides when time
// passes (`tick`) and `settle` runs every node's pending work until nothing is left; nothing
// here reads a clock. Nodes can crash (power cut: unsynced writes lost) and restart from disk,
// or be cut off from the hub (their messages are dropped both ways).
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { seededRandom } from '@streambus/raft';
import { type CrashMode, MemoryFileSystem } from '@streambus/storage';
import {
  type GroupKey,
  type MemoryTransport,
  MemoryTransportHub,
  type RaftTransport,
} from '../cluster/contract.js';
import { type ControllerLimits, ControllerNode } from './controller-node.js';
import { ControllerClient, ControllerRpcServer } from './controller-rpc.js';

export const TEST_DIR = '/data/__cluster_metadata';
/** What one tick stands for when a client backs off (the broker's default tick). */
export const TEST_TICK_MS = 50;

export interface TestBroker {
  readonly id: number;
  fs: MemoryFileSystem;
  node: ControllerNode | null;
  transport: MemoryTransport | null;
  rpc: ControllerRpcServer | null;
  /** Cut off: every message from or to it is dropped. */
  isolated: boolean;
}

export class ControllerTestCluster {
  readonly hub = new MemoryTransportHub();
  readonly brokers = new Map<number, TestBroker>();
  /** Called on every tick after the nodes (broker lifecycles, say). */
  readonly tickers: Array<() => void> = [];
  private seed: number;

  constructor(
    readonly voters: readonly number[],
    readonly limits: Partial<ControllerLimits> = {},
    seed = 1,
  ) {
    this.seed = seed;
  }

  /** Starts broker `id` (a voter when in `voters`), on its existing disk if it had one. */
  async start(id: number): Promise<TestBroker> {
    let b = this.brokers.get(id);
    if (b === undefined) {
      b = {
        id,
        fs: new MemoryFileSystem({ seed: id }),
        node: null,
        transport: null,
        rpc: null,
        isolated: false,
      };
      this.brokers.set(id, b);
    }
    const broker = b;
    const transport = this.hub.transport(id as never);
    const filtered: Pick<RaftTransport, 'send'> = {
      send: (group: GroupKey, messages) => {
        if (broker.isolated) return;
        transport.send(
          group,
          messages.filter((m) => !this.brokers.get(m.to)?.isolated),
        );
      },
    };
    const node = await ControllerNode.open({
      nodeId: id,
      voters: this.voters,
      fs: broker.fs,
      dir: TEST_DIR,
      transport: filtered,
      random: seededRandom(this.seed++ * 7919 + id),
      limits: this.limits,
    });
    transport.setMessageHandler((_group, m) => {
      if (!broker.isolated && broker.node === node) node.step(m);
    });
    const rpc = new ControllerRpcServer(node);
    transport.setRequestHandler((from, kind, body) => {
      if (broker.isolated || this.brokers.get(from)?.isolated) {
        return Promise.reject(new StreamBusError(ErrorCode.NETWORK_EXCEPTION, 'isolated'));
      }
      return rpc.handle(from, kind, body);
    });
    broker.node = node;
    broker.rpc = rpc;
    broker.transport = transport;
    return broker;
  }

  async startAll(): Promise<void> {
    for (const id of this.voters) await this.start(id);
  }

  /** Resolves after `ticks` ticks of this cluster. */
  sleepTicks(ticks: number): Promise<void> {
    return new Promise((resolve) => {
      let left = ticks;
      const t = () => {
        if (--left > 0) return;
        this.tickers.splice(this.tickers.indexOf(t), 1);
        resolve();
      };
      this.tickers.push(t);
    });
  }

  /** A ControllerClient for broker `id` (running) whose backoff waits cluster ticks. */
  client(id: number, voters: readonly number[] = this.voters): ControllerClient {
    const b = this.brokers.get(id)!;
    return new ControllerClient({
      self: id,
      voters,
      transport: b.transport!,
      local: b.rpc!,
      random: seededRandom(id),
      // Time passes in ticks here: a backoff of `ms` waits ms / TEST_TICK_MS ticks.
      sleep: (ms) => this.sleepTicks(Math.max(1, Math.ceil(ms / TEST_TICK_MS))),
    });
  }

  node(id: number): ControllerNode {
    const n = this.brokers.get(id)?.node;
    if (!n) throw new Error(`broker ${id} is not running`);
    return n;
  }

  running(): ControllerNode[] {
    return [...this.brokers.values()].flatMap((b) => (b.node ? [b.node] : []));
  }

  /** Power cut: unsynced writes are lost; the broker stays down until `start` again. */
  async crash(id: number, mode: CrashMode = 'drop-unsynced'): Promise<void> {
    const b = this.brokers.get(id)!;
    const node = b.node!;
    b.node = null;
    b.rpc = null;
    await b.transport!.close();
    b.transport = null;
    b.fs = b.fs.crash(mode);
    // The old process's file system is dead; closing only releases the in-memory node.
    await node.close().catch(() => {});
  }

  /** Graceful stop (everything written is on disk). */
  async stop(id: number): Promise<void> {
    const b = this.brokers.get(id)!;
    await b.node!.close();
    b.node = null;
    b.rpc = null;
    await b.transport!.close();
    b.transport = null;
  }

  /** Runs every node's work (process rounds, deliveries) until nothing is left. */
  async settle(roundsMax = 10_000): Promise<void> {
    let idle = 0;
    for (let round = 0; round < roundsMax; round++) {
      let worked = false;
      for (const n of this.running()) {
        if (n.hasWork()) {
          worked = true;
          await n.process();
        }
      }
      await new Promise((r) => setImmediate(r));
      idle = worked ? 0 : idle + 1;
      if (idle >= 3) return;
    }
    throw new Error(`the cluster did not settle within ${roundsMax} rounds`);
  }

  /** `count` ticks, each followed by `settle`. */
  async tick(count = 1): Promise<void> {
    for (let i = 0; i < count; i++) {
      for (const n of this.running()) n.tick();
      for (const t of [...this.tickers]) t();
      await this.settle();
    }
  }

  /** Ticks until `predicate` holds, at most `ticksMax` ticks. */
  async tickUntil(predicate: () => boolean, ticksMax = 500): Promise<number> {
    for (let i = 0; i <= ticksMax; i++) {
      if (predicate()) return i;
      await this.tick();
    }
    throw new Error(`condition not reached within ${ticksMax} ticks`);
  }

  /** The serving controller leader, after ticking until there is exactly one. */
  async leader(ticksMax = 500): Promise<ControllerNode> {
    await this.tickUntil(() => this.running().filter((n) => n.ready).length === 1, ticksMax);
    return this.running().find((n) => n.ready)!;
  }

  /**
   * Runs `op` while ticking (a request resolves only as time passes and work is processed);
   * returns its result or rethrows its error.
   */
  async run<T>(op: Promise<T>, ticksMax = 500): Promise<T> {
    let done = false;
    let value: T | undefined;
    let error: unknown;
    op.then(
      (v) => {
        done = true;
        value = v;
      },
      (e) => {
        done = true;
        error = e;
      },
    );
    await this.settle();
    await this.tickUntil(() => done, ticksMax);
    if (error !== undefined) throw error;
    return value as T;
  }

  async closeAll(): Promise<void> {
    for (const b of this.brokers.values()) {
      if (b.node) await this.stop(b.id);
    }
  }
}

/** The rejection of `p` (fails the test when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: number }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: number };
  }
  throw new Error('expected a rejection');
}

/** Registers and heartbeats brokers `ids` through the current leader; returns their epochs. */
export async function registerAll(
  c: ControllerTestCluster,
  ids: readonly number[],
): Promise<Map<number, number>> {
  const epochs = new Map<number, number>();
  for (const id of ids) {
    const leader = await c.leader();
    const { brokerEpoch } = await c.run(
      leader.registerBroker({
        brokerId: id,
        host: '127.0.0.1',
        port: 9000 + id,
        incarnation: `i${id}`,
      }),
    );
    epochs.set(id, brokerEpoch);
    await c.run(leader.heartbeat({ brokerId: id, brokerEpoch }));
  }
  return epochs;
}

/**
 * A ControllerClient of broker 9 in front of voters 1..3 whose transport answers each request
 * with `answer(to)`: `asked` lists the voters it tried, `slept()` counts its backoffs.
 */
export function scriptedControllerClient(answer: (to: number) => Promise<Uint8Array>): {
  client: ControllerClient;
  asked: number[];
  slept: () => number;
} {
  const asked: number[] = [];
  let slept = 0;
  const client = new ControllerClient({
    self: 9,
    voters: [1, 2, 3],
    transport: {
      request: (to) => {
        asked.push(to);
        return answer(to);
      },
    },
    random: seededRandom(1),
    sleep: async () => {
      slept++;
    },
  });
  return { client, asked, slept: () => slept };
}
