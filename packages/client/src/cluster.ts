// The cluster view (kafkajs's "cluster" layer): bootstrap addresses, a connection pool keyed by
// broker address, and a metadata cache (brokers, topics, partition leaders). It opens
// connections lazily and replaces closed ones on the next use; it never retries or sleeps
// itself: callers run their operations through retry.ts, and `handleRetriableError` (the retry
// hook) drops cached metadata when an error says the cache is stale. Reconnect backoff is
// therefore the retry layer's backoff. One exception, which is not a retry of an operation:
// finding *a* broker tries each bootstrap address (then each broker metadata named) in turn,
// once, so a dead first address costs one connect attempt, not a retry round.
import { ApiKey, ErrorCode, type MetadataResponse, StreamBusError } from '@streambus/protocol';
import { BrokerConnection, type ConnectionOptions } from './connection.js';

export interface BrokerAddress {
  readonly host: string;
  readonly port: number;
}

export interface PartitionInfo {
  readonly partition: number;
  readonly leaderId: number;
  readonly leaderEpoch: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  readonly errorCode: number;
}

export interface TopicInfo {
  readonly name: string;
  readonly partitions: readonly PartitionInfo[];
  readonly fetchedAtMs: number;
}

export interface ClusterOptions extends Omit<ConnectionOptions, 'host' | 'port'> {
  readonly bootstrap: readonly BrokerAddress[];
  readonly metadataMaxAgeMs: number;
}

/** Parses "host:port" (IPv6 as "[::1]:7070"); INVALID_ARGUMENT when malformed. */
export function parseAddress(text: string): BrokerAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port < 1 || port > 65535) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `bootstrap address: expected HOST:PORT, got '${text}'`,
    );
  }
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * The error for a topic that a metadata response says does not exist: not retriable, and it says
 * how to create the topic.
 */
export function topicNotFound(topic: string): StreamBusError {
  return new StreamBusError(
    ErrorCode.TOPIC_NOT_FOUND,
    `topic '${topic}' does not exist: create it with \`streambus topic create ${topic}\` ` +
      '(or admin().createTopic()), or start the broker with autoCreateTopics',
  );
}

const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '::', '[::]']);

/** A partition's leader as a refusing broker named it (`currentLeader` on the wire). */
export interface LeaderHint {
  readonly leaderId: number;
  /** The leader's epoch (its Raft term). */
  readonly leaderEpoch: number;
}

/**
 * A produce or fetch partition refused by a broker (errorCode != 0), with the partition, the
 * broker that refused and the leader it named, if any: `handleRetriableError` routes the
 * partition to that leader (leader hints, issue 12).
 */
export class PartitionRefusedError extends StreamBusError {
  constructor(
    code: number,
    message: string,
    readonly topic: string,
    readonly partition: number,
    /** "host:port" of the broker that refused. */
    readonly refusedBy: string,
    readonly leaderHint: LeaderHint | undefined,
  ) {
    super(code, message);
  }
}

/** The error of a partition answer with errorCode != 0 from `conn` (produce, fetch). */
export function partitionRefused(
  conn: { readonly host: string; readonly port: number },
  topic: string,
  p: {
    readonly partition: number;
    readonly errorCode: number;
    readonly errorMessage?: string | undefined;
    readonly currentLeader?: LeaderHint | undefined;
  },
  what: string,
): PartitionRefusedError {
  return new PartitionRefusedError(
    p.errorCode,
    p.errorMessage ?? `${what} ${topic}/${p.partition}`,
    topic,
    p.partition,
    `${conn.host}:${conn.port}`,
    p.currentLeader,
  );
}

/**
 * A leader hint the client follows (`applyHint`): the partition's leader by a refusing broker's
 * word, kept over Metadata answers of an older leader epoch (the controller's state lags the
 * Raft group) for at most `HINT_TRUSTED_MS`. `refused`: the hinted broker refused too; then only
 * a hint of a newer epoch is followed for the partition, and the metadata path decides.
 */
interface FollowedHint extends LeaderHint {
  readonly atMs: number;
  refused: boolean;
}
/** How long a followed hint outranks Metadata answers of an older epoch. */
const HINT_TRUSTED_MS = 10_000;
/** Partitions with a followed hint remembered; beyond it the map starts over. */
const HINTS_MAX = 10_000;

/**
 * A topic's metadata fetched less than this long ago is kept through a leader-moved error: the
 * error may predate it, and many partitions erring at once then cost one refresh per interval
 * rather than one each (their retries back off at most 100 ms: context.ts runUntil).
 */
const METADATA_REFRESH_MIN_MS = 50;
/** Distinct metadata refreshes shared while in flight; past it a refresh runs on its own. */
const REFRESHES_SHARED_MAX = 1000;
/** Groups whose coordinator is remembered; beyond it the cache starts over. */
const COORDINATORS_CACHED_MAX = 1000;
/** Errors after which a group's coordinator is looked up again. */
const COORDINATOR_MOVED: ReadonlySet<number> = new Set([
  ErrorCode.NOT_COORDINATOR,
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.NETWORK_EXCEPTION,
]);

export class Cluster {
  private readonly connections = new Map<string, Promise<BrokerConnection>>();
  private readonly brokers = new Map<number, BrokerAddress>();
  private readonly topics = new Map<string, TopicInfo>();
  /** Told every topic's partition count each metadata answer brings (producers: grown topics). */
  private readonly partitionCountListeners = new Set<(topic: string, count: number) => void>();
  /** Group id -> its coordinator's address (FindCoordinator), until an error says it moved. */
  private readonly coordinators = new Map<string, BrokerAddress>();
  /** Metadata requests in flight by what they ask: concurrent refreshes of it share one. */
  private readonly refreshing = new Map<string, Promise<MetadataResponse>>();
  /** Leader hints followed, by `topic\u0000partition` (FollowedHint). */
  private readonly hints = new Map<string, FollowedHint>();
  /** Hints followed so far (tests and diagnostics count them). */
  hintsFollowed = 0;
  private clusterId = '';
  private controllerId = -1;
  /** The bootstrap address that answered last: the first one tried next time. */
  private bootstrapIndex = 0;
  private closed = false;

  constructor(private readonly options: ClusterOptions) {
    if (options.bootstrap.length === 0) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'bootstrap: at least one address');
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The client id connections announce (also a group member id's prefix). */
  get clientId(): string {
    return this.options.clientId;
  }

  /**
   * A connection to any broker on the default lane: an open one, else the first that answers of
   * the bootstrap addresses (from the one that answered last) and then the brokers metadata
   * named, each tried once. Never a consumer's fetch lane, where a long-poll may hold the line.
   * When none answers: the one address's error, or NETWORK_EXCEPTION naming every address tried.
   */
  async anyConnection(): Promise<BrokerConnection> {
    for (const [key, p] of this.connections) {
      if (!key.endsWith('/')) continue;
      const c = await p.catch(() => null);
      if (c && !c.isClosed) return c;
    }
    const { bootstrap } = this.options;
    const candidates: BrokerAddress[] = [];
    for (let i = 0; i < bootstrap.length; i++) {
      candidates.push(bootstrap[(this.bootstrapIndex + i) % bootstrap.length]!);
    }
    const seen = new Set(candidates.map((a) => `${a.host}:${a.port}`));
    for (const a of this.brokers.values()) {
      if (!seen.has(`${a.host}:${a.port}`)) candidates.push(a);
    }
    let last: StreamBusError | undefined;
    for (const addr of candidates) {
      try {
        const c = await this.connectionTo(addr);
        const i = bootstrap.indexOf(addr);
        if (i >= 0) this.bootstrapIndex = i;
        return c;
      } catch (err) {
        // Not retriable (the client closed, a broker refusing this client): no other will do.
        if (!(err instanceof StreamBusError) || !err.retriable || this.closed) throw err;
        last = err;
      }
    }
    if (candidates.length === 1 || last === undefined) throw last;
    throw new StreamBusError(
      ErrorCode.NETWORK_EXCEPTION,
      `no broker answered (tried ${candidates.map((a) => `${a.host}:${a.port}`).join(', ')}); last: ${last.message}`,
      { cause: last },
    );
  }

  /**
   * The pooled connection to `addr`, opened if missing or closed. `lane` separates connections
   * to the same broker: a consumer's long-polling fetches get their own lane so they never hold
   * up (in-order) responses to produce or admin requests.
   */
  async connectionTo(addr: BrokerAddress, lane = ''): Promise<BrokerConnection> {
    this.checkOpen();
    const key = `${addr.host}:${addr.port}/${lane}`;
    const existing = this.connections.get(key);
    if (existing) {
      const c = await existing.catch(() => null);
      if (c && !c.isClosed) return c;
      if (this.connections.get(key) === existing) this.connections.delete(key);
    }
    const opening = BrokerConnection.connect({ ...this.options, host: addr.host, port: addr.port });
    this.connections.set(key, opening);
    opening.then(
      (c) => {
        if (this.closed) c.close();
      },
      () => {
        if (this.connections.get(key) === opening) this.connections.delete(key);
      },
    );
    return opening;
  }

  async connectionToNode(nodeId: number, lane = ''): Promise<BrokerConnection> {
    let addr = this.brokers.get(nodeId);
    if (addr === undefined) {
      await this.refreshMetadata(null);
      addr = this.brokers.get(nodeId);
    }
    if (addr === undefined) {
      throw new StreamBusError(ErrorCode.LEADER_NOT_AVAILABLE, `broker ${nodeId} is not known`);
    }
    return this.connectionTo(addr, lane);
  }

  /** Cached topic metadata, if present and fresh. */
  cachedTopic(topic: string): TopicInfo | undefined {
    const t = this.topics.get(topic);
    if (t && Date.now() - t.fetchedAtMs <= this.options.metadataMaxAgeMs) return t;
    return undefined;
  }

  /**
   * Topic metadata: cached, or fetched with a metadata request of its own. When that request's
   * answer says the topic does not exist, it fails with TOPIC_NOT_FOUND, which is not retriable:
   * a fresh metadata response is the confirmation (absence is never cached, so the next call asks
   * again). A broker with autoCreateTopics creates the topic on this request instead, unless
   * `allowAutoTopicCreation` is false (admin lookups).
   * UNKNOWN_TOPIC_OR_PARTITION from a produce, fetch or list-offsets stays retriable: it drops
   * the cached entry (handleRetriableError), and the retry comes back here to confirm.
   */
  async topic(topic: string, allowAutoTopicCreation = true): Promise<TopicInfo> {
    const cached = this.cachedTopic(topic);
    if (cached) return cached;
    const res = await this.refreshMetadata([topic], allowAutoTopicCreation);
    const t = res.topics.find((x) => x.name === topic);
    if (!t || t.errorCode === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) throw topicNotFound(topic);
    if (t.errorCode !== 0) {
      throw new StreamBusError(t.errorCode, t.errorMessage ?? `topic '${topic}'`);
    }
    // The cache can be dropped meanwhile (a connection error elsewhere invalidates it while this
    // refresh is answered): then the answer itself is used, never `undefined` (a TypeError that
    // reached the application as a failed send during a rolling restart).
    return (
      this.topics.get(topic) ?? {
        name: t.name,
        partitions: [...t.partitions].sort((a, b) => a.partition - b.partition),
        fetchedAtMs: Date.now(),
      }
    );
  }

  /** The connection to the leader of a partition. */
  async leaderFor(topic: string, partition: number, lane = ''): Promise<BrokerConnection> {
    const t = await this.topic(topic);
    const p = t.partitions[partition];
    if (p === undefined || p.partition !== partition) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `topic '${topic}' has no partition ${partition} (it has ${t.partitions.length})`,
      );
    }
    if (p.leaderId < 0) {
      throw new StreamBusError(
        ErrorCode.LEADER_NOT_AVAILABLE,
        `topic '${topic}' partition ${partition} has no leader`,
      );
    }
    return this.connectionToNode(p.leaderId, lane);
  }

  /**
   * The connection to the broker holding a partition's replica for a local operation (repair):
   * its leader, or, when it has none, its only replica. A damaged sole replica (a cluster of one,
   * or RF 1) never reports itself leader, yet it is the one to repair.
   */
  async replicaHolderFor(topic: string, partition: number): Promise<BrokerConnection> {
    const t = await this.topic(topic);
    const p = t.partitions[partition];
    if (p !== undefined && p.partition === partition && p.leaderId < 0 && p.replicas.length === 1) {
      return this.connectionToNode(p.replicas[0]!);
    }
    return this.leaderFor(topic, partition);
  }

  /**
   * Sends partitions of `topic` to their leaders (as the cached metadata names them), one
   * request per leader at once, and returns the answers flattened. One attempt: callers run it
   * through the retry layer, which drops the metadata when a leader moved.
   */
  async toLeaders<I extends { readonly partition: number }, R>(
    topic: string,
    items: readonly I[],
    send: (conn: BrokerConnection, items: I[]) => Promise<R[]>,
    allowAutoTopicCreation = true,
  ): Promise<R[]> {
    const t = await this.topic(topic, allowAutoTopicCreation);
    const byLeader = new Map<number, I[]>();
    for (const item of items) {
      const leader = t.partitions[item.partition]?.leaderId ?? -1;
      const list = byLeader.get(leader) ?? [];
      list.push(item);
      byLeader.set(leader, list);
    }
    const answers = await Promise.all(
      [...byLeader.values()].map(async (list) =>
        send(await this.leaderFor(topic, list[0]!.partition), list),
      ),
    );
    return answers.flat();
  }

  /**
   * Fetches metadata (null = all topics) and updates the cache. `allowAutoTopicCreation` false
   * asks a broker with autoCreateTopics not to create the named topics (admin lookups). A
   * refresh asking what one in flight asks shares its answer: every partition of a topic whose
   * leader moved retries through here, and one request answers them all.
   */
  refreshMetadata(
    topics: string[] | null,
    allowAutoTopicCreation = true,
  ): Promise<MetadataResponse> {
    const key = `${allowAutoTopicCreation ? 1 : 0}/${topics === null ? '*' : topics.join('\u0000')}`;
    const running = this.refreshing.get(key);
    if (running !== undefined) return running;
    const fetching = this.fetchMetadata(topics, allowAutoTopicCreation);
    if (this.refreshing.size >= REFRESHES_SHARED_MAX) return fetching;
    const shared = fetching.finally(() => {
      if (this.refreshing.get(key) === shared) this.refreshing.delete(key);
    });
    this.refreshing.set(key, shared);
    return shared;
  }

  private async fetchMetadata(
    topics: string[] | null,
    allowAutoTopicCreation: boolean,
  ): Promise<MetadataResponse> {
    const conn = await this.anyConnection();
    const res = await conn.request(ApiKey.METADATA, { topics, allowAutoTopicCreation });
    this.applyMetadata(res, conn);
    return res;
  }

  /**
   * The connection to a consumer group's coordinator (FindCoordinator, cached). One attempt:
   * callers run it through the retry layer, whose hook (handleRetriableError) forgets the
   * coordinator on NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or a network error, so the retry
   * finds the current one.
   */
  async coordinatorFor(groupId: string, lane = ''): Promise<BrokerConnection> {
    let addr = this.coordinators.get(groupId);
    if (addr === undefined) {
      const conn = await this.anyConnection();
      const res = await conn.request(ApiKey.FIND_COORDINATOR, { groupIds: [groupId] });
      const c = res.coordinators.find((x) => x.groupId === groupId);
      if (c === undefined) {
        throw new StreamBusError(
          ErrorCode.COORDINATOR_NOT_AVAILABLE,
          `no coordinator named for group '${groupId}'`,
        );
      }
      if (c.errorCode !== 0) {
        throw new StreamBusError(
          c.errorCode,
          c.errorMessage ?? `coordinator of group '${groupId}'`,
        );
      }
      addr = { host: WILDCARD_HOSTS.has(c.host) ? conn.host : c.host, port: c.port };
      if (this.coordinators.size >= COORDINATORS_CACHED_MAX) this.coordinators.clear();
      this.coordinators.set(groupId, addr);
    }
    return this.connectionTo(addr, lane);
  }

  /**
   * The retry hook: drops what an error says is stale. Returns true when the error named the
   * partition's leader and the cache now routes the partition there (`applyHint`): the retry
   * goes at once, without a metadata refresh or backoff (retry.ts).
   */
  handleRetriableError(err: StreamBusError, topic?: string): boolean {
    if (COORDINATOR_MOVED.has(err.code)) this.coordinators.clear();
    if (err instanceof PartitionRefusedError && this.applyHint(err)) return true;
    switch (err.code) {
      case ErrorCode.NOT_LEADER_OR_FOLLOWER:
      case ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
      case ErrorCode.LEADER_NOT_AVAILABLE:
      // The broker it went to is down or cut off: in a cluster the partition may have a new
      // leader elsewhere, which only fresh metadata names (a Kafka client refreshes too).
      case ErrorCode.NETWORK_EXCEPTION:
      case ErrorCode.CONNECTION_CLOSED:
        if (topic === undefined) this.topics.clear();
        else if (!this.fetchedWithin(topic, METADATA_REFRESH_MIN_MS)) this.topics.delete(topic);
        break;
      default:
        break;
    }
    return false;
  }

  /**
   * Leader hints (docs/client.md "Leader hints"). A NOT_LEADER_OR_FOLLOWER refusal naming the
   * partition's leader moves the cached partition to that leader when all of these hold: the
   * named broker is known (its address is in the metadata) and is not the one that refused; the
   * topic is cached; the hint's epoch is newer than the cached leader epoch (a hint never beats
   * a newer epoch the client has), or it is the cached leader itself (the request went to a
   * broker over a connection held from before). A refusal by a broker the client was sent to by
   * a hint marks that hint refused: from then on only a newer epoch is followed, so hints never
   * loop; what is not followed takes the metadata refresh path. Returns whether the retry may go
   * at once.
   */
  private applyHint(err: PartitionRefusedError): boolean {
    const key = `${err.topic}\u0000${err.partition}`;
    const followed = this.hints.get(key);
    if (followed !== undefined && !followed.refused) {
      const addr = this.brokers.get(followed.leaderId);
      if (addr !== undefined && `${addr.host}:${addr.port}` === err.refusedBy) {
        followed.refused = true;
      }
    }
    if (this.followHint(key, err, followed)) return true;
    // The cached route came from a hint the hinted broker refused: fresh metadata decides,
    // however recently the topic was fetched (the cache holds the hint, not that answer).
    if (followed?.refused) this.topics.delete(err.topic);
    return false;
  }

  private followHint(
    key: string,
    err: PartitionRefusedError,
    followed: FollowedHint | undefined,
  ): boolean {
    const hint = err.leaderHint;
    if (err.code !== ErrorCode.NOT_LEADER_OR_FOLLOWER || hint === undefined) return false;
    const addr = this.brokers.get(hint.leaderId);
    if (addr === undefined || `${addr.host}:${addr.port}` === err.refusedBy) return false;
    const t = this.topics.get(err.topic);
    const p = t?.partitions[err.partition];
    if (t === undefined || p === undefined || p.partition !== err.partition) return false;
    if (followed?.refused && hint.leaderEpoch <= followed.leaderEpoch) {
      return false;
    }
    if (hint.leaderEpoch === p.leaderEpoch && hint.leaderId === p.leaderId) return true;
    if (hint.leaderEpoch <= p.leaderEpoch) return false;
    if (this.hints.size >= HINTS_MAX) this.hints.clear();
    this.hints.set(key, { ...hint, atMs: Date.now(), refused: false });
    this.hintsFollowed++;
    const partitions = [...t.partitions];
    partitions[err.partition] = {
      ...p,
      leaderId: hint.leaderId,
      leaderEpoch: hint.leaderEpoch,
      errorCode: 0,
    };
    this.topics.set(err.topic, { ...t, partitions });
    return true;
  }

  /** A Metadata partition, or the followed hint of a newer epoch in its place (applyHint). */
  private withHint(topic: string, p: PartitionInfo, now: number): PartitionInfo {
    const key = `${topic}\u0000${p.partition}`;
    const h = this.hints.get(key);
    if (h === undefined) return p;
    if (h.leaderEpoch <= p.leaderEpoch || now - h.atMs > HINT_TRUSTED_MS) {
      this.hints.delete(key);
      return p;
    }
    // A refused hint stays (so the same one is not followed again) but routes nothing.
    if (h.refused) return p;
    return { ...p, leaderId: h.leaderId, leaderEpoch: h.leaderEpoch, errorCode: 0 };
  }

  private fetchedWithin(topic: string, ms: number): boolean {
    const t = this.topics.get(topic);
    return t !== undefined && Date.now() - t.fetchedAtMs < ms;
  }

  describe(): { clusterId: string; controllerId: number; brokers: Map<number, BrokerAddress> } {
    return { clusterId: this.clusterId, controllerId: this.controllerId, brokers: this.brokers };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values()];
    this.connections.clear();
    for (const p of all) {
      const c = await p.catch(() => null);
      c?.close();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StreamBusError(ErrorCode.CLIENT_CLOSED);
  }

  private applyMetadata(res: MetadataResponse, via: BrokerConnection): void {
    this.clusterId = res.clusterId;
    this.controllerId = res.controllerId;
    for (const b of res.brokers) {
      // A broker bound to a wildcard address is reached the way we reached it.
      const host = WILDCARD_HOSTS.has(b.host) ? via.host : b.host;
      this.brokers.set(b.nodeId, { host, port: b.port });
    }
    const now = Date.now();
    for (const t of res.topics) {
      if (t.errorCode !== 0) {
        this.topics.delete(t.name);
        continue;
      }
      const partitions = [...t.partitions]
        .sort((a, b) => a.partition - b.partition)
        .map((p) => (this.hints.size === 0 ? p : this.withHint(t.name, p, now)));
      this.topics.set(t.name, { name: t.name, partitions, fetchedAtMs: now });
      for (const listener of this.partitionCountListeners) listener(t.name, partitions.length);
    }
  }

  /**
   * Calls `listener` with each topic's partition count whenever a metadata answer names it (a
   * topic grown by CreatePartitions shows there); returns the function that stops it.
   */
  onPartitionCount(listener: (topic: string, count: number) => void): () => void {
    this.partitionCountListeners.add(listener);
    return () => this.partitionCountListeners.delete(listener);
  }
}
