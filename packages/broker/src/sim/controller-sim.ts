// The controller quorum in the cluster simulation: every simulated broker process runs the real
// `ControllerNode` (the metadata Raft group) on its own simulated disk, transport and host, next
// to its partition replicas. The first three brokers are the voters (`--peers`); a fourth and
// fifth join as learners when they register, as in the product.
//
// Each broker process also runs the real controller RPC surface (controller-rpc.ts): the
// `ControllerRpcServer` answers the transport's requests, the `ControllerClient` (its one retry
// layer, backoff on the simulated clock) reaches the leader or the voters, and the real
// `BrokerLifecycle` registers the broker (incarnation = its process generation) and heartbeats
// on the broker's tick. Admin clients create topics through a random live broker's client
// (forwarded to the controller leader over the simulated network); a call that fails retriably
// is tried again with the same name, up to CREATE_CALLS_MAX calls.
// Checkers (independent of the controller's code):
//   metadata-diverge  two brokers applied different states at the same applied index (the
//                     snapshot encoding of the state is compared, so equal means byte-equal),
//                     or, at the end, the converged states differ;
//   topic-not-once    a topic whose creation was acknowledged is missing or present twice at
//                     the end, or a topic exists that nobody asked for; with
//                     `strictTopicExists`, also a name told TOPIC_ALREADY_EXISTS (only ever by a
//                     retry: names are fresh) that is missing at the end (counted otherwise: the
//                     controller answers it from uncommitted plans today);
//   liveness          after healing, a probe topic must be created and every broker must have
//                     applied it, within the bound.

import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';
import type { SeededRandom } from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import { METADATA_GROUP } from '../cluster/contract.js';
import { BrokerLifecycle } from '../controller/broker-lifecycle.js';
import { ControllerNode, NotControllerError } from '../controller/controller-node.js';
import {
  ControllerClient,
  ControllerRpcServer,
  encodeError,
} from '../controller/controller-rpc.js';
import type { MetadataState } from '../controller/metadata-state.js';
import { encodeSnapshot } from '../controller/metadata-state.js';
import type { Violation } from './partition-checker.js';
import type { SimGroupHost } from './sim-host.js';
import type { SimLoop } from './sim-loop.js';
import type { SimTransport } from './sim-network.js';

export const CONTROLLER_VOTERS_MAX = 3;
const HEARTBEAT_EVERY_TICKS = 10;
const CREATE_CALLS_MAX = 3;
/** The client's limits, sized to the simulated network (its defaults suit real links). */
const CLIENT_LIMITS = { attemptsMax: 6, backoffMs: 20, backoffMsMax: 200, timeoutMs: 200 } as const;

interface CtlBroker {
  readonly id: number;
  generation: number;
  node: ControllerNode | null;
  client: ControllerClient | null;
  lifecycle: BrokerLifecycle | null;
}

interface TopicAttempt {
  readonly name: string;
  attempts: number;
  /**
   * 'acked': created; 'exists': told TOPIC_ALREADY_EXISTS (an earlier attempt of this fresh name
   * was planned); 'unknown': gave up.
   */
  outcome: 'pending' | 'acked' | 'exists' | 'unknown';
}

function stateDigest(state: MetadataState): number {
  return crc32c(encodeSnapshot(state));
}

export class ControllerSim {
  private readonly brokers = new Map<number, CtlBroker>();
  private readonly voters: number[];
  /** applied index -> (digest, first node that applied it). */
  private readonly digests = new Map<number, { digest: number; node: number }>();
  private readonly topics: TopicAttempt[] = [];
  private topicSeq = 0;
  private probe: TopicAttempt | null = null;
  readonly counters = {
    created: 0,
    createRetries: 0,
    existsAnswerLost: 0,
  };

  constructor(
    private readonly loop: SimLoop,
    private readonly rng: SeededRandom,
    brokerIds: readonly number[],
    private readonly electionTicks: number,
    private readonly heartbeatTicks: number,
    private readonly violations: Violation[],
    private readonly trace: (line: string) => void,
    private readonly strictTopicExists: boolean,
  ) {
    this.voters = brokerIds.slice(0, CONTROLLER_VOTERS_MAX);
    for (const id of brokerIds) {
      this.brokers.set(id, { id, generation: 0, node: null, client: null, lifecycle: null });
    }
  }

  private bug(detail: string): void {
    if (this.violations.length < 20) this.violations.push({ kind: 'harness-bug', detail });
  }

  /**
   * A broker process starts: its controller node opens on its disk; once open, its RPC server
   * answers the transport, its client and lifecycle start (register, then heartbeats).
   */
  start(
    id: number,
    generation: number,
    fs: FileSystem,
    transport: SimTransport,
    host: SimGroupHost,
  ): void {
    const b = this.brokers.get(id)!;
    b.generation = generation;
    b.node = null;
    b.client = null;
    b.lifecycle = null;
    let server: ControllerRpcServer | null = null;
    transport.setRequestHandler(async (from, kind, body) =>
      server
        ? server.handle(from, kind, body)
        : encodeError(new NotControllerError(0, `node ${id} is starting`)),
    );
    ControllerNode.open({
      nodeId: id,
      voters: this.voters,
      fs,
      dir: '/data/__cluster_metadata',
      transport,
      random: this.rng.fork(),
      notify: () => host.notify(METADATA_GROUP),
      limits: {
        electionTicks: this.electionTicks,
        heartbeatTicks: this.heartbeatTicks,
        requestTimeoutTicks: 100,
      },
    }).then(
      (node) => {
        if (b.generation !== generation) return;
        b.node = node;
        node.onApplied((state) => this.observeApplied(id, node.applied, state));
        host.add(node);
        server = new ControllerRpcServer(node);
        const client = new ControllerClient({
          self: id,
          voters: this.voters,
          transport,
          local: server,
          random: this.rng.fork(),
          sleep: (ms) => this.loop.after(ms),
          ...CLIENT_LIMITS,
        });
        const lifecycle = new BrokerLifecycle({
          brokerId: id,
          host: '127.0.0.1',
          port: 9000 + id,
          incarnation: `${id}-${generation}`,
          client,
          heartbeatIntervalTicks: HEARTBEAT_EVERY_TICKS,
          onError: (err) => this.expectTyped(err, `broker ${id} lifecycle`),
        });
        b.client = client;
        b.lifecycle = lifecycle;
        void lifecycle.start();
      },
      (err: unknown) => {
        if (b.generation === generation)
          this.bug(`node ${id} could not open its controller: ${String(err)}`);
      },
    );
  }

  crash(id: number): void {
    const b = this.brokers.get(id)!;
    b.generation = -1;
    b.client?.close();
    b.node = null;
    b.client = null;
    b.lifecycle = null;
  }

  private observeApplied(node: number, index: number, state: MetadataState): void {
    const digest = stateDigest(state);
    const seen = this.digests.get(index);
    if (seen === undefined) {
      this.digests.set(index, { digest, node });
      return;
    }
    if (seen.digest !== digest) {
      this.violations.push({
        kind: 'metadata-diverge',
        detail: `at applied index ${index} node ${node}'s metadata state differs from node ${seen.node}'s`,
      });
    }
  }

  /** Every broker tick: the lifecycle registers or heartbeats when due. */
  tick(): void {
    for (const b of this.brokers.values()) b.lifecycle?.tick();
  }

  private expectTyped(err: unknown, what: string): void {
    if (!(err instanceof StreamBusError))
      this.bug(`${what} failed with an untyped error: ${String(err)}`);
  }

  // ------------------------------------------------------------ admin clients

  /** An admin client creates a fresh topic through a random live broker. */
  createTopic(): void {
    const t: TopicAttempt = { name: `topic-${++this.topicSeq}`, attempts: 0, outcome: 'pending' };
    this.topics.push(t);
    this.attempt(t);
  }

  private attempt(t: TopicAttempt): void {
    const live = [...this.brokers.values()].filter((b) => b.client !== null);
    const b = live[this.rng.int(Math.max(1, live.length))];
    t.attempts++;
    if (t.attempts > 1) this.counters.createRetries++;
    if (!b?.client) {
      this.retryLater(t);
      return;
    }
    b.client
      .createTopic({ name: t.name, partitions: 1 + this.rng.int(3), replicationFactor: -1 })
      .then(
        () => {
          t.outcome = 'acked';
          this.counters.created++;
          this.trace(`topic ${t.name} created through node ${b.id}`);
        },
        (err: unknown) => {
          this.expectTyped(err, `create ${t.name}`);
          if (!(err instanceof StreamBusError)) return;
          this.trace(
            `create ${t.name} (call ${t.attempts}) through node ${b.id}: ${err.errorName}: ${err.message}`,
          );
          // Names are fresh: "exists" means one of our own earlier attempts was planned (the
          // client's retry inside one call, or an earlier call).
          if (err.code === ErrorCode.TOPIC_ALREADY_EXISTS) t.outcome = 'exists';
          else if (err.retriable || t === this.probe) this.retryLater(t);
          else t.outcome = 'unknown';
        },
      );
  }

  private retryLater(t: TopicAttempt): void {
    if (t.attempts >= CREATE_CALLS_MAX && t !== this.probe) {
      t.outcome = 'unknown';
      return;
    }
    this.loop.at(20 + this.rng.int(40), () => this.attempt(t));
  }

  // ------------------------------------------------------------ liveness and final check

  /** After healing: true once a probe topic was created and every broker applied it. */
  converged(): boolean {
    if (this.probe === null) {
      this.probe = { name: 'probe-topic', attempts: 0, outcome: 'pending' };
      this.topics.push(this.probe);
      this.attempt(this.probe);
    }
    if (this.probe.outcome !== 'acked' && this.probe.outcome !== 'exists') return false;
    // Heartbeats keep appending entries, so "every broker at the same index" may never be seen
    // at a tick; every broker having applied the probe is the convergence asked for (the states
    // themselves are compared index by index as they are applied).
    const nodes = [...this.brokers.values()].map((b) => b.node);
    return nodes.every((n) => n?.state.topicIdsByName.has('probe-topic') === true);
  }

  /** What is still missing after healing (for the liveness violation). */
  describeStuck(): string {
    const nodes = [...this.brokers.values()]
      .map(
        (b) =>
          `${b.id}:${b.node ? `${b.node.isLeader ? `leader (voters ${b.node.conf.voters.join(',')} learners ${b.node.conf.learners.join(',')} brokers ${[...b.node.state.brokers.keys()].join(',')}) ` : ''}applied ${b.node.applied}` : 'closed'}`,
      )
      .join(' ');
    return `controller: probe ${this.probe?.outcome ?? 'not sent'}; ${nodes}`;
  }

  finalCheck(): Violation[] {
    const v: Violation[] = [];
    const nodes = [...this.brokers.values()].flatMap((b) => (b.node ? [b] : []));
    // The reference is the broker that applied the most: an acknowledged creation was applied on
    // the leader that answered, at an index no later than this one (retries still in flight after
    // the probe may have landed after the others last applied).
    const first = nodes.reduce<CtlBroker | undefined>(
      (best, b) => (best === undefined || b.node!.applied > best.node!.applied ? b : best),
      undefined,
    );
    if (!first?.node) return v;
    const ref = encodeSnapshot(first.node.state);
    for (const b of nodes) {
      if (b === first || b.node!.applied !== first.node.applied) continue;
      if (!Buffer.from(encodeSnapshot(b.node!.state)).equals(Buffer.from(ref))) {
        v.push({
          kind: 'metadata-diverge',
          detail: `converged metadata of node ${b.id} differs from node ${first.id}'s`,
        });
      }
    }
    const state = first.node.state;
    const byName = new Map<string, number>();
    for (const t of state.topics.values()) byName.set(t.name, (byName.get(t.name) ?? 0) + 1);
    const asked = new Set(this.topics.map((t) => t.name));
    for (const [name, n] of byName) {
      if (n !== 1) v.push({ kind: 'topic-not-once', detail: `topic ${name} exists ${n} times` });
      if (!asked.has(name))
        v.push({ kind: 'topic-not-once', detail: `topic ${name} exists but was never asked for` });
    }
    for (const t of this.topics) {
      if (t.outcome === 'acked' && byName.get(t.name) !== 1) {
        v.push({
          kind: 'topic-not-once',
          detail: `topic ${t.name} was created (acknowledged) but is missing at the end`,
        });
      }
      if (t.outcome === 'exists' && byName.get(t.name) !== 1) {
        // The controller answers TOPIC_ALREADY_EXISTS from its plan state, which includes its
        // own uncommitted plans (controller-node.ts rule 1); if that plan is then lost with its
        // leader, the client was told of a topic that never existed. Counted, and a violation
        // under `strictTopicExists`.
        this.counters.existsAnswerLost++;
        if (this.strictTopicExists) {
          v.push({
            kind: 'topic-not-once',
            detail: `a retry of ${t.name} was told TOPIC_ALREADY_EXISTS, but the topic is missing at the end`,
          });
        }
      }
    }
    return v;
  }

  /** Topics acknowledged as created so far. */
  get topicsAcked(): number {
    return this.topics.filter((t) => t.outcome === 'acked' || t.outcome === 'exists').length;
  }
}
