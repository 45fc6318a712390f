// The controller quorum in the cluster simulation: every simulated broker process runs the real
// `ControllerNode` (the metadata Raft group) on its own simulated disk, transport and host, next
// to its partition replicas. The first three brokers are the voters (`--peers`); a fourth and
// fifth join as learners when they register, as in the product.
//
// What the harness plays, since the broker shell that does it in the product is wired elsewhere:
//   - each broker process registers (incarnation = its process generation) and heartbeats
//     every HEARTBEAT_EVERY_TICKS, re-registering when told its epoch is stale or unknown;
//   - admin clients create topics through a random live broker, which serves the request when
//     its controller is the ready leader and otherwise forwards it over the simulated network to
//     the leader it knows (one hop, RPC kind `sim-ctl`); retriable errors are retried with the
//     same topic name up to CREATE_ATTEMPTS_MAX times, each through a random broker.
// Checkers (independent of the controller's code):
//   metadata-diverge  two brokers applied different states at the same applied index (the
//                     snapshot encoding of the state is compared, so equal means byte-equal),
//                     or, at the end, the converged states differ;
//   topic-not-once    a topic whose creation was acknowledged is missing or present twice at
//                     the end, a topic exists that nobody asked for, or the first attempt of a
//                     fresh name was told TOPIC_ALREADY_EXISTS; with `strictTopicExists`, also a
//                     retry told TOPIC_ALREADY_EXISTS of a topic missing at the end (counted
//                     otherwise: the controller answers it from uncommitted plans today);
//   liveness          after healing, a probe topic must be created and every broker must have
//                     applied it, within the bound.

import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';
import type { NodeId, SeededRandom } from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import { METADATA_GROUP } from '../cluster/contract.js';
import { ControllerNode, NotControllerError } from '../controller/controller-node.js';
import type { MetadataState } from '../controller/metadata-state.js';
import { encodeSnapshot } from '../controller/metadata-state.js';
import type { Violation } from './partition-checker.js';
import type { SimGroupHost } from './sim-host.js';
import type { SimLoop } from './sim-loop.js';
import type { SimTransport } from './sim-network.js';

export const CONTROLLER_VOTERS_MAX = 3;
const HEARTBEAT_EVERY_TICKS = 10;
const CREATE_ATTEMPTS_MAX = 6;
const RPC_TIMEOUT_MS = 200;
const RPC_KIND = 'sim-ctl';

type CtlRequest =
  | { op: 'register'; brokerId: number; incarnation: string }
  | { op: 'heartbeat'; brokerId: number; brokerEpoch: number }
  | { op: 'create-topic'; name: string; partitions: number };

interface CtlBroker {
  readonly id: number;
  generation: number;
  node: ControllerNode | null;
  transport: SimTransport | null;
  brokerEpoch: number;
  registering: boolean;
  heartbeating: boolean;
  /** The controller leader a forwarded request was last told of (a learner-to-be knows none). */
  leaderHint: number;
}

interface TopicAttempt {
  readonly name: string;
  attempts: number;
  /**
   * 'acked': created; 'exists': a retry was told TOPIC_ALREADY_EXISTS (an earlier attempt was
   * planned); 'unknown': gave up.
   */
  outcome: 'pending' | 'acked' | 'exists' | 'unknown';
}

function encodeBody(req: CtlRequest): Uint8Array {
  return Buffer.from(JSON.stringify(req));
}

function decodeBody(body: Uint8Array): CtlRequest {
  return JSON.parse(Buffer.from(body).toString('utf8')) as CtlRequest;
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
    forwarded: 0,
    heartbeats: 0,
    registrations: 0,
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
      this.brokers.set(id, {
        id,
        generation: 0,
        node: null,
        transport: null,
        brokerEpoch: -1,
        registering: false,
        heartbeating: false,
        leaderHint: 0,
      });
    }
  }

  private bug(detail: string): void {
    if (this.violations.length < 20) this.violations.push({ kind: 'harness-bug', detail });
  }

  /** A broker process starts: open its controller node on its disk, serve forwarded requests. */
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
    b.transport = transport;
    b.brokerEpoch = -1;
    b.registering = false;
    b.heartbeating = false;
    transport.setRequestHandler(async (_from, kind, body) => {
      if (kind !== RPC_KIND)
        throw new StreamBusError(ErrorCode.INVALID_REQUEST, `unknown RPC ${kind}`);
      return this.serveLocal(b, generation, decodeBody(body));
    });
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
    b.node = null;
    b.transport = null;
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

  // ------------------------------------------------------------ the broker shell's part

  /** Serves a request on this broker's own controller (the leader end of a forward). */
  private async serveLocal(b: CtlBroker, generation: number, req: CtlRequest): Promise<Uint8Array> {
    const node = b.node;
    if (!node || b.generation !== generation)
      throw new NotControllerError(0, `node ${b.id} has no controller yet`);
    switch (req.op) {
      case 'register': {
        const r = await node.registerBroker({
          brokerId: req.brokerId,
          host: '127.0.0.1',
          port: 9000 + req.brokerId,
          incarnation: req.incarnation,
        });
        return encodeBody({ op: 'heartbeat', brokerId: req.brokerId, brokerEpoch: r.brokerEpoch });
      }
      case 'heartbeat':
        await node.heartbeat({ brokerId: req.brokerId, brokerEpoch: req.brokerEpoch });
        return new Uint8Array(0);
      case 'create-topic':
        await node.createTopic({
          name: req.name,
          partitions: req.partitions,
          replicationFactor: -1,
        });
        return new Uint8Array(0);
    }
  }

  /** A request arriving at broker `b`: served here if it leads, else forwarded to the leader. */
  private submit(b: CtlBroker, req: CtlRequest): Promise<Uint8Array> {
    const node = b.node;
    const transport = b.transport;
    if (!node || !transport)
      return Promise.reject(new NotControllerError(0, `broker ${b.id} is starting`));
    if (node.ready) return this.serveLocal(b, b.generation, req);
    // The leader it knows, else the one it was last told of, else any voter (a broker that is
    // not yet a member hears nothing from the group: it reaches the quorum through `--peers`).
    const others = this.voters.filter((v) => v !== b.id);
    let to = node.leaderId || b.leaderHint || (others[this.rng.int(others.length)] ?? 0);
    if (to === b.id) to = others[this.rng.int(others.length)] ?? 0;
    if (to === 0) return Promise.reject(new NotControllerError(0));
    this.counters.forwarded++;
    return transport
      .request(to as NodeId, RPC_KIND, encodeBody(req), RPC_TIMEOUT_MS)
      .catch((err: unknown) => {
        b.leaderHint = err instanceof NotControllerError ? err.leaderId : 0;
        throw err;
      });
  }

  /** Every tick: registrations and heartbeats of every running broker. */
  tick(ticks: number): void {
    for (const b of this.brokers.values()) {
      if (!b.node || b.generation < 0) continue;
      if (b.brokerEpoch < 0) this.register(b);
      else if ((ticks + b.id) % HEARTBEAT_EVERY_TICKS === 0) this.heartbeat(b);
    }
  }

  private register(b: CtlBroker): void {
    if (b.registering) return;
    b.registering = true;
    const generation = b.generation;
    this.submit(b, { op: 'register', brokerId: b.id, incarnation: `${b.id}-${generation}` }).then(
      (answer) => {
        b.registering = false;
        if (b.generation !== generation) return;
        const r = decodeBody(answer);
        if (r.op === 'heartbeat') b.brokerEpoch = r.brokerEpoch;
        this.counters.registrations++;
      },
      (err: unknown) => {
        b.registering = false;
        this.expectTyped(err, 'register');
      },
    );
  }

  private heartbeat(b: CtlBroker): void {
    if (b.heartbeating) return;
    b.heartbeating = true;
    const generation = b.generation;
    this.submit(b, { op: 'heartbeat', brokerId: b.id, brokerEpoch: b.brokerEpoch }).then(
      () => {
        b.heartbeating = false;
        this.counters.heartbeats++;
      },
      (err: unknown) => {
        b.heartbeating = false;
        this.expectTyped(err, 'heartbeat');
        if (
          b.generation === generation &&
          err instanceof StreamBusError &&
          (err.code === ErrorCode.STALE_BROKER_EPOCH ||
            err.code === ErrorCode.BROKER_ID_NOT_REGISTERED)
        ) {
          b.brokerEpoch = -1;
        }
      },
    );
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
    const live = [...this.brokers.values()].filter((b) => b.node !== null);
    const b = live[this.rng.int(Math.max(1, live.length))];
    t.attempts++;
    if (t.attempts > 1) this.counters.createRetries++;
    if (!b) {
      this.retryLater(t);
      return;
    }
    this.submit(b, { op: 'create-topic', name: t.name, partitions: 1 + this.rng.int(3) }).then(
      () => {
        t.outcome = 'acked';
        this.counters.created++;
        this.trace(`topic ${t.name} created through node ${b.id}`);
      },
      (err: unknown) => {
        this.expectTyped(err, `create ${t.name}`);
        if (!(err instanceof StreamBusError)) return;
        this.trace(
          `create ${t.name} (attempt ${t.attempts}) through node ${b.id}: ${err.errorName}: ${err.message}`,
        );
        if (err.code === ErrorCode.TOPIC_ALREADY_EXISTS) {
          if (t.attempts > 1) {
            t.outcome = 'exists';
            return;
          }
          this.violations.push({
            kind: 'topic-not-once',
            detail: `the first create of the fresh name ${t.name} was told it exists`,
          });
          return;
        }
        if (err.retriable || t === this.probe) this.retryLater(t);
        else t.outcome = 'unknown';
      },
    );
  }

  private retryLater(t: TopicAttempt): void {
    if (t.attempts >= CREATE_ATTEMPTS_MAX && t !== this.probe) {
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
    if (this.probe.outcome !== 'acked') return false;
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
