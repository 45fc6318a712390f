// Option-name checking for the SDK's option objects. TypeScript catches a misspelt option at
// compile time, but plain JavaScript passes `client.producer({ linger: 0 })` through and the
// option silently does nothing; so every option object the SDK takes (client, producer, consumer,
// their nested objects, per-call options) is checked against its list of names here, and an
// unknown name fails with INVALID_ARGUMENT naming the option's path and the nearest valid name.
// Pure and synchronous; values are checked where they are used, not here.
//
// The name lists are typed as a record over the options interface's keys, so a new option added
// to an interface without its name here is a compile error (and a name here that the interface
// lacks is one too), keeping the lists and the types from drifting apart.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { CreatePartitionsOptions, NewTopic } from './admin.js';
import type { ResetOffsetsOptions } from './admin-groups.js';
import type { ClientOptions } from './client.js';
import type { AssignOptions, ConsumerOptions } from './consumer.js';
import type { CommitOffset, GroupConsumerOptions } from './group-consumer.js';
import type { ProducerOptions } from './producer.js';
import type { RetryPolicy } from './retry.js';

/** The names of an options type, as a set; `Extra` names are allowed before the type has them. */
function names<T, Extra extends string = never>(
  all: Readonly<Record<keyof T | Extra, true>>,
): ReadonlySet<string> {
  return new Set(Object.keys(all));
}

const CONSUMER_NAMES: Readonly<Record<keyof ConsumerOptions, true>> = {
  maxWaitMs: true,
  minBytes: true,
  maxBytes: true,
  partitionMaxBytes: true,
  autoOffsetReset: true,
  maxPollRecords: true,
};

export const OptionNames = {
  client: names<ClientOptions>({
    bootstrap: true,
    clientId: true,
    connectTimeoutMs: true,
    requestTimeoutMs: true,
    inflightRequestsMax: true,
    frameBytesMax: true,
    metadataMaxAgeMs: true,
    retry: true,
  }),
  retry: names<RetryPolicy>({
    retriesMax: true,
    totalTimeoutMs: true,
    backoffInitialMs: true,
    backoffMaxMs: true,
  }),
  // deliveryTimeoutMs: the producer's delivery timeout (its option lands with that change).
  producer: names<ProducerOptions, 'deliveryTimeoutMs'>({
    acks: true,
    idempotent: true,
    compression: true,
    lingerMs: true,
    batchBytesMax: true,
    bufferBytesMax: true,
    bufferWaitTimeoutMs: true,
    recordBytesMax: true,
    ackTimeoutMs: true,
    deliveryTimeoutMs: true,
  }),
  consumer: names<ConsumerOptions>(CONSUMER_NAMES),
  /** client.consumer({ groupId, ... }): the consumer's options and the group's. */
  groupConsumer: names<GroupConsumerOptions>({
    ...CONSUMER_NAMES,
    groupId: true,
    groupInstanceId: true,
    autoCommit: true,
    autoCommitIntervalMs: true,
    sessionTimeoutMs: true,
    heartbeatIntervalMs: true,
    maxPollIntervalMs: true,
    assignor: true,
    metadataRefreshMs: true,
    onAssigned: true,
    onRevoked: true,
  }),
  subscribe: names<{ topics: string[]; pattern: RegExp }>({ topics: true, pattern: true }),
  commitOffset: names<CommitOffset>({ topic: true, partition: true, offset: true }),
  assign: names<AssignOptions>({ topic: true, partitions: true, from: true }),
  /** `{ offset }` or `{ timestamp }` of assign({ from }) and seek(). */
  start: names<{ offset: number; timestamp: number }>({ offset: true, timestamp: true }),
  /** client.admin() takes no options yet. */
  admin: new Set<string>() as ReadonlySet<string>,
  newTopic: names<NewTopic>({
    name: true,
    partitions: true,
    replicationFactor: true,
    configs: true,
  }),
  createTopics: names<{ timeoutMs?: number }>({ timeoutMs: true }),
  createPartitions: names<CreatePartitionsOptions>({
    topic: true,
    count: true,
    assignments: true,
    validateOnly: true,
    timeoutMs: true,
  }),
  resetOffsets: names<ResetOffsetsOptions>({
    topic: true,
    partitions: true,
    to: true,
    dryRun: true,
  }),
} as const;

/**
 * Names other clients use (kafkajs, the Java client) for an option the SDK spells differently;
 * suggested when the SDK's name is valid where the alias was given.
 */
const ALIASES: Readonly<Record<string, string>> = {
  brokers: 'bootstrap',
  connectionTimeout: 'connectTimeoutMs',
  requestTimeout: 'requestTimeoutMs',
  retries: 'retriesMax',
  initialRetryTime: 'backoffInitialMs',
  maxRetryTime: 'backoffMaxMs',
  'linger.ms': 'lingerMs',
  'batch.size': 'batchBytesMax',
  maxWaitTimeInMs: 'maxWaitMs',
  'group.id': 'groupId',
  'group.instance.id': 'groupInstanceId',
  'enable.auto.commit': 'autoCommit',
  'auto.commit.interval.ms': 'autoCommitIntervalMs',
  'session.timeout.ms': 'sessionTimeoutMs',
  sessionTimeout: 'sessionTimeoutMs',
  heartbeatInterval: 'heartbeatIntervalMs',
  'heartbeat.interval.ms': 'heartbeatIntervalMs',
  'max.poll.interval.ms': 'maxPollIntervalMs',
  rebalanceTimeout: 'maxPollIntervalMs',
  'auto.offset.reset': 'autoOffsetReset',
};

/** Options of other clients that have no counterpart here, with what to do instead. */
const HINTS = new Map<ReadonlySet<string>, Readonly<Record<string, string>>>([
  [
    OptionNames.consumer,
    {
      fromBeginning: "assign({ topic, from: 'earliest' }) (the start is chosen per assign())",
    },
  ],
  [
    OptionNames.groupConsumer,
    {
      fromBeginning:
        "autoOffsetReset: 'earliest' (where a partition without a committed offset starts)",
      enableAutoCommit: "'autoCommit'",
    },
  ],
  [OptionNames.assign, { fromBeginning: "from: 'earliest'" }],
]);

/** Thrown for an option name the SDK does not know. `path` is e.g. 'producer.linger'. */
export class UnknownOptionError extends StreamBusError {
  constructor(
    readonly path: string,
    /** The nearest valid name, or what to do instead; null when nothing is close. */
    readonly suggestion: string | null,
    allowed: ReadonlySet<string>,
    isName: boolean,
  ) {
    const hint =
      suggestion !== null
        ? `did you mean ${isName ? `'${suggestion}'` : suggestion}?`
        : allowed.size === 0
          ? 'none are accepted'
          : `valid options: ${[...allowed].sort().join(', ')}`;
    super(ErrorCode.INVALID_ARGUMENT, `${path}: unknown option (${hint})`);
    this.name = 'UnknownOptionError';
  }
}

/** Levenshtein distance (insert, delete, substitute: 1 each), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const row = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost));
    }
    prev = row;
  }
  return prev[t.length]!;
}

/**
 * The allowed name nearest to `name`, if it is close enough to be a likely typo: within a third
 * of the longer name's length (at least 2 edits), or one name containing the other ('linger' ->
 * 'lingerMs'). Ties go to the name listed first.
 */
export function nearestName(name: string, allowed: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  const lower = name.toLowerCase();
  for (const candidate of allowed) {
    const d = editDistance(name, candidate);
    const c = candidate.toLowerCase();
    const contained = lower.length >= 3 && (c.includes(lower) || lower.includes(c));
    const close = d <= Math.max(2, Math.floor(Math.max(name.length, candidate.length) / 3));
    if ((close || contained) && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * Checks that `given` is an object (or undefined) whose own enumerable keys are all in
 * `allowed`; throws INVALID_ARGUMENT otherwise. `path` names the object in messages ('producer',
 * 'client.retry', 'assign').
 */
export function checkOptionNames(path: string, given: unknown, allowed: ReadonlySet<string>): void {
  if (given === undefined) return;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `${path}: expected an options object, got ${given === null ? 'null' : Array.isArray(given) ? 'an array' : typeof given}`,
    );
  }
  for (const key of Object.keys(given)) {
    if (allowed.has(key)) continue;
    const hints = HINTS.get(allowed);
    if (hints !== undefined && Object.hasOwn(hints, key)) {
      throw new UnknownOptionError(`${path}.${key}`, hints[key]!, allowed, false);
    }
    const alias = Object.hasOwn(ALIASES, key) ? ALIASES[key]! : undefined;
    const near = alias !== undefined && allowed.has(alias) ? alias : nearestName(key, allowed);
    throw new UnknownOptionError(`${path}.${key}`, near, allowed, true);
  }
}
