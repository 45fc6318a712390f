// The controller's RPC surface over `RaftTransport.request` (issue 9): the kinds, their body
// codec, the server that answers them from a `ControllerNode`, and the `ControllerClient` every
// broker uses to reach the controller leader. Broker registration and heartbeats, and the admin
// requests any broker forwards (create/delete topic, alter configs, allocate producer ids, ISR
// changes), all go through here; nothing else does.
//
// Wire (uvarint, svarint, string, bool, id lists and config entries as in metadata-records.ts):
//   kind "controller.register"       req: brokerId host port incarnation      resp: brokerEpoch
//                                    [kafkaHost kafkaPort] (issue 11; absent: no Kafka listener)
//   kind "controller.heartbeat"      req: brokerId brokerEpoch               resp: fenced:bool
//   kind "controller.create-topic"   req: name partitions replicationFactor:svarint configs:entry[]
//                                    resp: topic
//   kind "controller.delete-topic"   req: name                               resp: (empty)
//   kind "controller.alter-config"   req: name changes:(key set:bool [value])[]   resp: topic
//   kind "controller.allocate-pids"  req: brokerId count                     resp: first count
//   kind "controller.isr-change"     req: topicId partition leader:svarint leaderEpoch isr:uvarint[]
//                                    resp: partition
//   kind "controller.shutdown"       req: brokerId brokerEpoch               resp: (empty)
//                                    (a controlled shutdown: fenced at once, out of every ISR)
//   kind "controller.reassign"       req: name partition replicas:uvarint[]  resp: partition
//   kind "controller.reassign-done"  req: topicId partition voters:uvarint[] resp: (empty)
//                                    (the partition's leader; reassignment.ts)
//   kind "controller.decommission"   req: brokerId                            resp: moved:uvarint
//   kind "controller.unregister"     req: brokerId                            resp: (empty)
//   kind "controller.broker-config"  req: brokerId:svarint changes:(key set:bool [value])[]
//                                    resp: (empty)   (dynamic broker settings, -1 = every broker)
//   kind "controller.add-partitions" req: name count hasAssignments:bool [assignments:uvarint[][]]
//                                    resp: topic     (CreatePartitions, add-partitions.ts)
//   kind "controller.voters"         req: op:u8 (1 add, 2 remove) brokerId   resp: (empty)
//                                    (controller-voters.ts: the voter set wanted is recorded)
//   kind "controller.reassign-cancel"  req: name partition                  resp: partition
//   topic     := id name partitions:partition[] configs:entry[]
//   partition := leader:svarint leaderEpoch partitionEpoch replicas:uvarint[] isr:uvarint[]
//   response  := 0x00 result | 0x01 code:svarint leaderId:uvarint message:string
// Expected failures travel as an error response (so NOT_CONTROLLER keeps its leader id whatever
// the transport does with rejections); the server's promise never rejects. A body that does
// not decode is INVALID_REQUEST (42), naming the problem; a broker may register, heartbeat and
// allocate only for itself, and report an ISR only as that partition's leader (INVALID_REQUEST).
//
// The client (rules):
//   1. It sends to the last known controller, else to the voters in turn. NOT_CONTROLLER with a
//      leader id redirects at once (at most `redirectsMax` in a row); without one, and for any
//      other retriable error (a down link, a timeout, CONTROLLER_BUSY), it waits a backoff with
//      jitter (`backoffMs` doubling to `backoffMsMax`) and tries the next voter.
//   2. At most `attemptsMax` attempts per call; then the last error is thrown. Non-retriable
//      errors (the planner's: TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR, ...) are thrown
//      at once, typed. This is the only retry layer for controller calls.
//   3. A request to itself goes to the local server directly (no transport round trip).
//   4. CONTROLLER_OFFLINE (a voter whose metadata log failed; it reopens by itself) moves on to
//      the next voter at once; once every voter answered it in a row (a cluster of one on a
//      full disk) it is thrown, so the caller's own retry policy decides, not ~20 backoffs here.
//   5. A call may name refusals that are final for it although retriable in general: an ISR
//      report refused with NOT_LEADER_OR_FOLLOWER or LEADER_NOT_AVAILABLE (the state moved on)
//      is thrown at once; retried with the same body for ~17 s it held the reporting slot of a
//      broker that led again meanwhile (leader-reports.ts rule 4). The reporter sends what is
//      true on its next tick instead.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { NodeId, RandomSource } from '@streambus/raft';
import type { RaftTransport } from '../cluster/contract.js';
import type { AddPartitionsRequest } from './add-partitions.js';
import { ByteReader, ByteWriter } from './byte-codec.js';
import {
  type BrokerRegistration,
  type ControllerNode,
  NotControllerError,
} from './controller-node.js';
import type { CreateTopicRequest, HeartbeatRequest, IsrReport } from './controller-planner.js';
import type { VoterChange } from './controller-voters.js';
import {
  BROKER_ID_MAX,
  PARTITIONS_MAX,
  readConfigEntries,
  readIdList,
  writeConfigEntries,
  writeIdList,
} from './metadata-records.js';
import type { PartitionState, TopicState } from './metadata-state.js';

export const ControllerRpcKind = {
  Register: 'controller.register',
  Heartbeat: 'controller.heartbeat',
  CreateTopic: 'controller.create-topic',
  DeleteTopic: 'controller.delete-topic',
  AlterConfig: 'controller.alter-config',
  AllocateProducerIds: 'controller.allocate-pids',
  IsrChange: 'controller.isr-change',
  Shutdown: 'controller.shutdown',
  Reassign: 'controller.reassign',
  ReassignDone: 'controller.reassign-done',
  Decommission: 'controller.decommission',
  Unregister: 'controller.unregister',
  BrokerConfig: 'controller.broker-config',
  AddPartitions: 'controller.add-partitions',
  Voters: 'controller.voters',
  ReassignCancel: 'controller.reassign-cancel',
} as const;
export type ControllerRpcKind = (typeof ControllerRpcKind)[keyof typeof ControllerRpcKind];

const KINDS: ReadonlySet<string> = new Set(Object.values(ControllerRpcKind));

/** True for the kinds this module serves (the broker's request router dispatches on it). */
export function isControllerRpcKind(kind: string): kind is ControllerRpcKind {
  return KINDS.has(kind);
}

const CONFIG_CHANGES_MAX = 64;

// ------------------------------------------------------------------ body codec

function bodyOf(fill: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter();
  fill(w);
  return w.finish();
}

function writeTopic(w: ByteWriter, t: TopicState): void {
  w.uvarint(t.id);
  w.string(t.name);
  w.uvarint(t.partitions.length);
  for (const p of t.partitions) writePartition(w, p);
  writeConfigEntries(w, t.configs);
}

function writePartition(w: ByteWriter, p: PartitionState): void {
  w.svarint(p.leader);
  w.uvarint(p.leaderEpoch);
  w.uvarint(p.partitionEpoch);
  writeIdList(w, p.replicas);
  writeIdList(w, p.isr);
}

function readTopic(r: ByteReader): TopicState {
  const id = r.uvarint('topic id');
  const name = r.string('topic name');
  const n = r.count('partitions', PARTITIONS_MAX);
  const partitions: PartitionState[] = [];
  for (let i = 0; i < n; i++) partitions.push(readPartition(r));
  return { id, name, partitions, configs: readConfigEntries(r, 'configs') };
}

function readPartition(r: ByteReader): PartitionState {
  return {
    leader: r.svarint('leader', -1, BROKER_ID_MAX),
    leaderEpoch: r.uvarint('leader epoch'),
    partitionEpoch: r.uvarint('partition epoch'),
    replicas: readIdList(r, 'replicas'),
    isr: readIdList(r, 'isr'),
  };
}

export const encodeRequest = {
  register: (q: BrokerRegistration) =>
    bodyOf((w) => {
      w.uvarint(q.brokerId);
      w.string(q.host);
      w.uvarint(q.port);
      w.string(q.incarnation);
      if (q.kafka != null) {
        w.string(q.kafka.host);
        w.uvarint(q.kafka.port);
      }
    }),
  heartbeat: (q: HeartbeatRequest) =>
    bodyOf((w) => {
      w.uvarint(q.brokerId);
      w.uvarint(q.brokerEpoch);
    }),
  createTopic: (q: CreateTopicRequest) =>
    bodyOf((w) => {
      w.string(q.name);
      w.uvarint(q.partitions);
      w.svarint(q.replicationFactor);
      const configs = Object.entries(q.configs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
      writeConfigEntries(
        w,
        configs.map(([key, value]) => ({ key, value })),
      );
    }),
  deleteTopic: (name: string) => bodyOf((w) => w.string(name)),
  alterConfig: (name: string, changes: Readonly<Record<string, string | null>>) =>
    bodyOf((w) => {
      w.string(name);
      const list = Object.entries(changes);
      w.uvarint(list.length);
      for (const [key, value] of list) {
        w.string(key);
        w.bool(value !== null);
        if (value !== null) w.string(value);
      }
    }),
  allocateProducerIds: (brokerId: number, count: number) =>
    bodyOf((w) => {
      w.uvarint(brokerId);
      w.uvarint(count);
    }),
  isrChange: (q: IsrReport) =>
    bodyOf((w) => {
      w.uvarint(q.topicId);
      w.uvarint(q.partition);
      w.svarint(q.leader);
      w.uvarint(q.leaderEpoch);
      writeIdList(w, q.isr);
    }),
};

export function encodeOk(fill: (w: ByteWriter) => void = () => {}): Uint8Array {
  return bodyOf((w) => {
    w.u8(0);
    fill(w);
  });
}

export function encodeError(err: unknown): Uint8Array {
  const e =
    err instanceof StreamBusError
      ? err
      : new StreamBusError(ErrorCode.UNKNOWN_SERVER_ERROR, (err as Error)?.message ?? String(err));
  return bodyOf((w) => {
    w.u8(1);
    w.svarint(e.code);
    w.uvarint(e instanceof NotControllerError ? e.leaderId : 0);
    w.string(e.message.slice(0, 500));
  });
}

/** Decodes a response: the result reader, or throws the typed error it carries. */
export function decodeResponse(bytes: Uint8Array): ByteReader {
  const r = new ByteReader(bytes);
  let error: { code: number; leaderId: number; message: string };
  try {
    const status = r.u8('response status');
    if (status === 0) return r;
    if (status !== 1) throw new Error(`response status ${status}`);
    error = {
      code: r.svarint('error code', -(2 ** 31), 2 ** 31 - 1),
      leaderId: r.uvarint('leader id', BROKER_ID_MAX),
      message: r.string('error message'),
    };
    r.expectEnd('error response');
  } catch (err) {
    throw new StreamBusError(
      ErrorCode.NETWORK_EXCEPTION,
      `malformed controller response: ${(err as Error).message}`,
    );
  }
  if (error.code === ErrorCode.NOT_CONTROLLER) {
    throw new NotControllerError(error.leaderId, error.message);
  }
  throw new StreamBusError(error.code, error.message);
}

// ------------------------------------------------------------------ server

function badRequest(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_REQUEST, message);
}

/** Answers controller RPCs from `node` (the leader serves; others answer NOT_CONTROLLER). */
export class ControllerRpcServer {
  constructor(private readonly node: ControllerNode) {}

  /** Never rejects: every failure becomes an error response. */
  async handle(from: number, kind: string, body: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.dispatch(from, kind, body);
    } catch (err) {
      return encodeError(err);
    }
  }

  private async dispatch(from: number, kind: string, body: Uint8Array): Promise<Uint8Array> {
    const r = new ByteReader(body);
    const decode = <T>(read: () => T): T => {
      try {
        const value = read();
        r.expectEnd(kind);
        return value;
      } catch (err) {
        throw badRequest(`malformed ${kind} request: ${(err as Error).message}`);
      }
    };
    const self = (brokerId: number, what: string) => {
      if (brokerId !== from)
        throw badRequest(`node ${from} may not ${what} for broker ${brokerId}`);
    };
    switch (kind) {
      case ControllerRpcKind.Register: {
        const q = decode(() => ({
          brokerId: r.uvarint('broker id', BROKER_ID_MAX),
          host: r.string('host'),
          port: r.uvarint('port', 65535),
          incarnation: r.string('incarnation'),
          kafka:
            r.remaining > 0
              ? { host: r.string('Kafka host'), port: r.uvarint('Kafka port', 65535) }
              : null,
        }));
        self(q.brokerId, 'register');
        const { brokerEpoch } = await this.node.registerBroker(q);
        return encodeOk((w) => w.uvarint(brokerEpoch));
      }
      case ControllerRpcKind.Heartbeat: {
        const q = decode(() => ({
          brokerId: r.uvarint('broker id', BROKER_ID_MAX),
          brokerEpoch: r.uvarint('broker epoch'),
        }));
        self(q.brokerId, 'heartbeat');
        const { fenced } = await this.node.heartbeat(q);
        return encodeOk((w) => w.bool(fenced));
      }
      case ControllerRpcKind.CreateTopic: {
        const q = decode(() => {
          const name = r.string('name');
          const partitions = r.uvarint('partitions', 2 ** 31 - 1);
          const replicationFactor = r.svarint('replication factor', -1, 2 ** 15);
          const configs: Record<string, string> = {};
          for (const e of readConfigEntries(r, 'configs')) configs[e.key] = e.value;
          return { name, partitions, replicationFactor, configs };
        });
        const topic = await this.node.createTopic(q);
        return encodeOk((w) => writeTopic(w, topic));
      }
      case ControllerRpcKind.DeleteTopic: {
        const name = decode(() => r.string('name'));
        await this.node.deleteTopic(name);
        return encodeOk();
      }
      case ControllerRpcKind.AlterConfig: {
        const q = decode(() => {
          const name = r.string('name');
          const n = r.count('config changes', CONFIG_CHANGES_MAX);
          const changes: Record<string, string | null> = {};
          for (let i = 0; i < n; i++) {
            const key = r.string('key');
            changes[key] = r.bool('set') ? r.string('value') : null;
          }
          return { name, changes };
        });
        const topic = await this.node.alterTopicConfig(q.name, q.changes);
        return encodeOk((w) => writeTopic(w, topic));
      }
      case ControllerRpcKind.AllocateProducerIds: {
        const q = decode(() => ({
          brokerId: r.uvarint('broker id', BROKER_ID_MAX),
          count: r.uvarint('count', 2 ** 31 - 1),
        }));
        self(q.brokerId, 'allocate producer ids');
        const block = await this.node.allocateProducerIds(q.brokerId, q.count);
        return encodeOk((w) => {
          w.uvarint(block.firstProducerId);
          w.uvarint(block.count);
        });
      }
      case ControllerRpcKind.IsrChange: {
        const q = decode(() => ({
          topicId: r.uvarint('topic id'),
          partition: r.uvarint('partition', PARTITIONS_MAX),
          leader: r.svarint('leader', -1, BROKER_ID_MAX),
          leaderEpoch: r.uvarint('leader epoch'),
          isr: readIdList(r, 'isr'),
        }));
        self(q.leader, 'report the ISR');
        const p = await this.node.changeIsr(q);
        return encodeOk((w) => writePartition(w, p));
      }
      case ControllerRpcKind.Shutdown: {
        const q = decode(() => ({
          brokerId: r.uvarint('broker id', BROKER_ID_MAX),
          brokerEpoch: r.uvarint('broker epoch'),
        }));
        self(q.brokerId, 'shut down');
        await this.node.controlledShutdown(q);
        return encodeOk();
      }
      case ControllerRpcKind.Reassign: {
        const q = decode(() => ({
          topic: r.string('name'),
          partition: r.uvarint('partition', PARTITIONS_MAX),
          replicas: readIdList(r, 'replicas'),
        }));
        const p = await this.node.reassignPartition(q);
        return encodeOk((w) => writePartition(w, p));
      }
      case ControllerRpcKind.ReassignDone: {
        const q = decode(() => ({
          topicId: r.uvarint('topic id'),
          partition: r.uvarint('partition', PARTITIONS_MAX),
          voters: readIdList(r, 'voters'),
        }));
        await this.node.completeReassignment(q);
        return encodeOk();
      }
      case ControllerRpcKind.Decommission: {
        const id = decode(() => r.uvarint('broker id', BROKER_ID_MAX));
        const moved = await this.node.decommissionBroker(id);
        return encodeOk((w) => w.uvarint(moved));
      }
      case ControllerRpcKind.BrokerConfig: {
        const q = decode(() => {
          const brokerId = r.svarint('broker id', -1, BROKER_ID_MAX);
          const n = r.count('config changes', CONFIG_CHANGES_MAX);
          const changes: Record<string, string | null> = {};
          for (let i = 0; i < n; i++) {
            const key = r.string('key');
            changes[key] = r.bool('set') ? r.string('value') : null;
          }
          return { brokerId, changes };
        });
        await this.node.alterBrokerConfig(q.brokerId, q.changes);
        return encodeOk();
      }
      case ControllerRpcKind.Voters: {
        const q = decode(() => {
          const op = r.u8('op');
          if (op !== 1 && op !== 2) throw new Error(`voter change op ${op} is not 1 or 2`);
          return {
            op: op === 1 ? ('add' as const) : ('remove' as const),
            brokerId: r.uvarint('broker id', BROKER_ID_MAX),
          };
        });
        await this.node.alterControllerVoters(q);
        return encodeOk();
      }
      case ControllerRpcKind.ReassignCancel: {
        const q = decode(() => ({
          topic: r.string('name'),
          partition: r.uvarint('partition', PARTITIONS_MAX),
        }));
        const p = await this.node.cancelReassignment(q);
        return encodeOk((w) => writePartition(w, p));
      }
      case ControllerRpcKind.Unregister: {
        const id = decode(() => r.uvarint('broker id', BROKER_ID_MAX));
        await this.node.unregisterBroker(id);
        return encodeOk();
      }
      case ControllerRpcKind.AddPartitions: {
        const q = decode((): AddPartitionsRequest => {
          const name = r.string('name');
          const count = r.uvarint('count', PARTITIONS_MAX);
          if (!r.bool('has assignments')) return { name, count, assignments: null };
          const n = r.count('assignments', PARTITIONS_MAX);
          const assignments: number[][] = [];
          for (let i = 0; i < n; i++) assignments.push(readIdList(r, 'assignment'));
          return { name, count, assignments };
        });
        const topic = await this.node.addPartitions(q);
        return encodeOk((w) => writeTopic(w, topic));
      }
      default:
        throw badRequest(`unknown controller request kind '${kind}'`);
    }
  }
}

// ------------------------------------------------------------------ client

export interface ControllerClientOptions {
  readonly self: number;
  /** The controller voters (the `--peers` ids; [self] for a cluster of one). */
  readonly voters: readonly number[];
  /**
   * The voters now, when they can change (a learner promoted): tried in turn when no
   * controller is known. Default: `voters`.
   */
  readonly votersNow?: () => readonly number[];
  readonly transport: Pick<RaftTransport, 'request'>;
  /** This broker's own server: requests to itself skip the transport (rule 3). */
  readonly local?: ControllerRpcServer;
  readonly random: RandomSource;
  readonly attemptsMax?: number;
  readonly redirectsMax?: number;
  readonly backoffMs?: number;
  readonly backoffMsMax?: number;
  readonly timeoutMs?: number;
  /** Waits `ms` (tests inject a fake). */
  readonly sleep?: (ms: number) => Promise<void>;
}

export const CONTROLLER_CLIENT_DEFAULTS = {
  attemptsMax: 20,
  redirectsMax: 5,
  backoffMs: 50,
  backoffMsMax: 1000,
  timeoutMs: 5000,
} as const;

const NO_FINAL_CODES: ReadonlySet<number> = new Set();
/** Refusals of an ISR report that the reporter, not the client, answers (rule 5). */
const ISR_REFUSALS_FINAL: ReadonlySet<number> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
]);

export class ControllerClient {
  private readonly o: Required<Omit<ControllerClientOptions, 'local' | 'votersNow'>> &
    Pick<ControllerClientOptions, 'local' | 'votersNow'>;
  private readonly voters: readonly number[];
  /** The controller leader as last learned (0: unknown). */
  private leader = 0;
  private next = 0;
  private closed = false;

  constructor(options: ControllerClientOptions) {
    this.o = {
      ...CONTROLLER_CLIENT_DEFAULTS,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ...options,
    };
    this.voters = options.voters.length === 0 ? [options.self] : [...options.voters];
  }

  /** The controller leader this client last reached or was told of (0: unknown). */
  get controllerId(): number {
    return this.leader;
  }

  close(): void {
    this.closed = true;
  }

  async registerBroker(q: BrokerRegistration): Promise<{ brokerEpoch: number }> {
    const r = await this.call(ControllerRpcKind.Register, encodeRequest.register(q));
    return { brokerEpoch: r.uvarint('broker epoch') };
  }

  async heartbeat(q: HeartbeatRequest): Promise<{ fenced: boolean }> {
    const r = await this.call(ControllerRpcKind.Heartbeat, encodeRequest.heartbeat(q));
    return { fenced: r.bool('fenced') };
  }

  async createTopic(q: CreateTopicRequest): Promise<TopicState> {
    return readTopic(await this.call(ControllerRpcKind.CreateTopic, encodeRequest.createTopic(q)));
  }

  async deleteTopic(name: string): Promise<void> {
    await this.call(ControllerRpcKind.DeleteTopic, encodeRequest.deleteTopic(name));
  }

  async alterTopicConfig(
    name: string,
    changes: Readonly<Record<string, string | null>>,
  ): Promise<TopicState> {
    return readTopic(
      await this.call(ControllerRpcKind.AlterConfig, encodeRequest.alterConfig(name, changes)),
    );
  }

  async allocateProducerIds(count: number): Promise<{ firstProducerId: number; count: number }> {
    const r = await this.call(
      ControllerRpcKind.AllocateProducerIds,
      encodeRequest.allocateProducerIds(this.o.self, count),
    );
    return { firstProducerId: r.uvarint('first producer id'), count: r.uvarint('count') };
  }

  async changeIsr(q: IsrReport): Promise<PartitionState> {
    return readPartition(
      await this.call(ControllerRpcKind.IsrChange, encodeRequest.isrChange(q), ISR_REFUSALS_FINAL),
    );
  }

  /** A controlled shutdown: the controller fences this broker now (no session wait). */
  async controlledShutdown(q: HeartbeatRequest): Promise<void> {
    await this.call(ControllerRpcKind.Shutdown, encodeRequest.heartbeat(q));
  }

  /** Starts a reassignment of `topic`/`partition` to `replicas` (reassignment.ts). */
  async reassignPartition(q: {
    topic: string;
    partition: number;
    replicas: readonly number[];
  }): Promise<PartitionState> {
    const w = new ByteWriter();
    w.string(q.topic);
    w.uvarint(q.partition);
    writeIdList(w, q.replicas);
    return readPartition(await this.call(ControllerRpcKind.Reassign, w.finish()));
  }

  /** From the partition's leader: its Raft voters are the reassignment's target now. */
  async completeReassignment(q: {
    topicId: number;
    partition: number;
    voters: readonly number[];
  }): Promise<void> {
    const w = new ByteWriter();
    w.uvarint(q.topicId);
    w.uvarint(q.partition);
    writeIdList(w, q.voters);
    await this.call(ControllerRpcKind.ReassignDone, w.finish());
  }

  /** One controller voter more or less: the set wanted is recorded (controller-voters.ts). */
  async alterControllerVoters(change: VoterChange): Promise<void> {
    const w = new ByteWriter();
    w.u8(change.op === 'add' ? 1 : 2);
    w.uvarint(change.brokerId);
    await this.call(ControllerRpcKind.Voters, w.finish());
  }

  /** Cancels the reassignment of `topic`/`partition` (reassignment.ts). */
  async cancelReassignment(q: { topic: string; partition: number }): Promise<PartitionState> {
    const w = new ByteWriter();
    w.string(q.topic);
    w.uvarint(q.partition);
    return readPartition(await this.call(ControllerRpcKind.ReassignCancel, w.finish()));
  }

  /** One decommission round for `brokerId`: the number of partitions it started moving. */
  async decommissionBroker(brokerId: number): Promise<number> {
    const w = new ByteWriter();
    w.uvarint(brokerId);
    return (await this.call(ControllerRpcKind.Decommission, w.finish())).uvarint('moved');
  }

  /** Dynamic broker settings for `brokerId` (-1: every broker). */
  async alterBrokerConfig(
    brokerId: number,
    changes: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    const w = new ByteWriter();
    w.svarint(brokerId);
    const keys = Object.keys(changes);
    w.uvarint(keys.length);
    for (const key of keys) {
      const value = changes[key] ?? null;
      w.string(key);
      w.bool(value !== null);
      if (value !== null) w.string(value);
    }
    await this.call(ControllerRpcKind.BrokerConfig, w.finish());
  }

  /** `brokerId`, which no partition lists any more, leaves the registry. */
  async unregisterBroker(brokerId: number): Promise<void> {
    const w = new ByteWriter();
    w.uvarint(brokerId);
    await this.call(ControllerRpcKind.Unregister, w.finish());
  }

  /** CreatePartitions: `name` grows to `count` partitions; the topic after it. */
  async addPartitions(q: AddPartitionsRequest): Promise<TopicState> {
    const w = new ByteWriter();
    w.string(q.name);
    w.uvarint(q.count);
    w.bool(q.assignments != null);
    if (q.assignments != null) {
      w.uvarint(q.assignments.length);
      for (const a of q.assignments) writeIdList(w, a);
    }
    return readTopic(await this.call(ControllerRpcKind.AddPartitions, w.finish()));
  }

  /**
   * One controller call with rules 1-2; returns the result reader of the OK response. Errors
   * with a code in `final` are thrown at once (rule 5).
   */
  async call(
    kind: ControllerRpcKind,
    body: Uint8Array,
    final: ReadonlySet<number> = NO_FINAL_CODES,
  ): Promise<ByteReader> {
    let lastError: unknown = null;
    let redirects = 0;
    let offline = 0;
    let backoff = this.o.backoffMs;
    for (let attempt = 0; attempt < this.o.attemptsMax; attempt++) {
      if (this.closed)
        throw new StreamBusError(ErrorCode.CLIENT_CLOSED, 'controller client closed');
      const target = this.leader !== 0 ? this.leader : this.nextVoter();
      try {
        const reply = await this.send(target, kind, body);
        const r = decodeResponse(reply);
        this.leader = target;
        return r;
      } catch (err) {
        lastError = err;
        if (!(err instanceof StreamBusError) || !err.retriable || final.has(err.code)) throw err;
        if (err.code === ErrorCode.CONTROLLER_OFFLINE) {
          this.leader = 0;
          if (++offline >= this.voterCount()) throw err;
          continue;
        }
        offline = 0;
        if (err instanceof NotControllerError && err.leaderId > 0 && err.leaderId !== target) {
          this.leader = err.leaderId;
          if (++redirects <= this.o.redirectsMax) continue;
        }
        this.leader = 0;
        redirects = 0;
        await this.o.sleep(backoff / 2 + this.o.random.int(Math.max(1, backoff / 2)));
        backoff = Math.min(this.o.backoffMsMax, backoff * 2);
      }
    }
    throw lastError;
  }

  private voterCount(): number {
    const now = this.o.votersNow?.();
    return now !== undefined && now.length > 0 ? now.length : this.voters.length;
  }

  private nextVoter(): number {
    const now = this.o.votersNow?.();
    const voters = now !== undefined && now.length > 0 ? now : this.voters;
    const id = voters[this.next % voters.length]!;
    this.next++;
    return id;
  }

  private send(target: number, kind: string, body: Uint8Array): Promise<Uint8Array> {
    if (target === this.o.self && this.o.local) return this.o.local.handle(this.o.self, kind, body);
    return this.o.transport.request(target as NodeId, kind, body, this.o.timeoutMs);
  }
}
