// The broker's one configuration: its shape, its defaults, and `loadConfig`, which merges a YAML or
// JSON file, `STREAMBUS_*` environment variables and flags (in rising precedence) over the
// defaults and validates the result. Every error is a ConfigError (StreamBusError INVALID_CONFIG)
// whose message starts with the dotted key and says what is allowed.
//
// Key names: the file uses the nested shape of BrokerConfig (`limits: { frameBytesMax: ... }`).
// Environment variables use the dotted path in SCREAMING_SNAKE case after `STREAMBUS_`
// (`limits.frameBytesMax` -> `STREAMBUS_LIMITS_FRAME_BYTES_MAX`). Flags use the dotted path in
// camelCase or kebab-case (`limits.frame-bytes-max`), plus the short forms `data-dir`, `listen`,
// `http`, `node-id`, `log-level`, `auto-create-topics`, `config`. `listen` and `http` take
// `HOST:PORT` (or `{host, port}` in a file); `http` also takes `off` (or null) to disable it.
// `peers` takes `ID@HOST:PORT,ID@HOST:PORT,...` (or a list of those, or of `{id, host, port}`,
// in a file): the initial controller voters (peers-config.ts).
//
// This module does not read sockets or start anything; it only reads the file it is given.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { nearestName } from './nearest-name.js';
import { type Peer, parsePeers } from './peers-config.js';

/**
 * The YAML parser, loaded when a YAML file is read: most starts read no file, and `yaml` was
 * about a fifth of the broker's third-party module loading at every start (issue 12).
 */
function parseYaml(text: string): unknown {
  return (requireHere('yaml') as typeof import('yaml')).parse(text);
}
const requireHere = createRequire(import.meta.url);

export type DurabilityPolicy = 'always' | 'interval' | 'none';
export const DURABILITY_POLICIES: readonly DurabilityPolicy[] = ['always', 'interval', 'none'];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface HostPort {
  host: string;
  port: number;
}

/** Per-connection and broker-wide bounds. */
export interface BrokerLimits {
  /** Largest request frame accepted, header included. */
  frameBytesMax: number;
  /** Requests read but not yet answered, per connection; reading pauses at the bound. */
  inflightRequestsMax: number;
  /** Frame bytes of those requests, per connection; reading pauses at the bound. */
  inflightBytesMax: number;
  /** Open client connections; more are refused (closed at once). */
  connectionsMax: number;
  /** A connection with nothing in flight and no bytes received for this long is closed. */
  idleTimeoutMs: number;
  /** A request not answered after this long gets REQUEST_TIMED_OUT. */
  requestTimeoutMs: number;
  /** Fetch requests parked in long-poll, per partition; more are answered at once. */
  fetchWaitersMax: number;
  /** Graceful shutdown waits this long for in-flight requests. */
  shutdownTimeoutMs: number;
  /**
   * File descriptors partition storage holds at once, however many segments exist (an LRU of
   * open segment files); lowered to half the process's open-file limit when that is smaller.
   */
  openFilesMax: number;
  /** Partitions one topic may have (partition-limits.ts). */
  partitionsPerTopicMax: number;
  /** Partitions of all topics on this broker together. */
  partitionsMax: number;
  /**
   * A compressed batch a producer sends is inflated (to walk its records) up to this many bytes;
   * one that inflates further is refused (CORRUPT_COMPRESSED_DATA), as a decompression bomb.
   */
  decompressedBytesMax: number;
  /** Record bytes in one fetch response, summed over its partitions (Kafka's fetch.max.bytes). */
  fetchBytesMax: number;
  /** Response bytes produced but not yet sent, per connection; fetches shrink, reading pauses. */
  outboundBytesMax: number;
  /** The same over every connection (at least outboundBytesMax); fetches shrink. */
  brokerOutboundBytesMax: number;
  /** Bytes of partially received frames over every connection (at least frameBytesMax). */
  brokerInboundBytesMax: number;
  /**
   * A frame must arrive completely within this long of its first byte (while reading), and a
   * peer must take some of its waiting responses within this long.
   */
  frameStallTimeoutMs: number;
  /** Estimated decoded size of one request body (msgpack), at most inflightBytesMax. */
  requestDecodedBytesMax: number;
  /**
   * Bytes appended to one partition log and not yet fsynced (queued, being written, or written);
   * produces beyond it answer LOG_BACKPRESSURE (retriable) while an fsync is slow
   * (PartitionLog's unsyncedBytesMax, DEFAULT_UNSYNCED_BYTES_MAX argues the default).
   */
  unsyncedBytesMax: number;
  /**
   * Bytes proposed on this broker's partition leaders and not yet committed (so also what is
   * in flight to followers), over every partition; produces beyond it answer
   * REPLICA_PROPOSALS_FULL (retriable). At least defaults.maxMessageBytes.
   */
  replicationUncommittedBytesMax: number;
}

/** Defaults applied to topics that do not set a config of their own. */
export interface TopicDefaults {
  partitions: number;
  durability: DurabilityPolicy;
  flushIntervalMs: number;
  segmentBytes: number;
  segmentMs: number;
  /** -1 = unlimited. */
  retentionBytes: number;
  /** -1 = forever. */
  retentionMs: number;
  /** Largest record batch a producer may send. */
  maxMessageBytes: number;
  /** A batch whose maxTimestamp is further than this from the broker clock is refused; -1 = no check. */
  timestampSkewMsMax: number;
}

/**
 * The Kafka wire-protocol listener (packages/broker/src/kafka/, docs/kafka-listener.md). Off
 * unless `listen` is set.
 */
export interface KafkaListenerConfig {
  /** Where Kafka clients connect; null: no Kafka listener. */
  listen: HostPort | null;
  /** The address Metadata gives clients for this broker; null: `listen` (0.0.0.0 as 127.0.0.1). */
  advertised: HostPort | null;
  /**
   * Optional overrides (`ID@HOST:PORT,...`) of the Kafka addresses Metadata lists for other
   * brokers. Not needed: each broker registers its advertised address in the metadata log. A
   * broker without a Kafka listener is left out of Metadata, and partitions it leads answer
   * LEADER_NOT_AVAILABLE (clients retry).
   */
  brokers: Peer[];
}

/** The group coordinator on `__consumer_offsets` (docs/groups.md "The coordinator"). */
export interface GroupsConfig {
  /** Partitions of `__consumer_offsets`, fixed when it is created (on first use). */
  offsetsTopicPartitions: number;
  /** Its replication factor: at most the live brokers when it is created. */
  offsetsTopicReplicationFactor: number;
  /** The committed offsets of an Empty group expire this long after it emptied or committed. */
  offsetsRetentionMs: number;
  /** A new group's first rebalance waits this long for more members (Kafka's 3 s). */
  initialRebalanceDelayMs: number;
  /** The session timeouts members may ask for (INVALID_SESSION_TIMEOUT outside). */
  sessionTimeoutMsMin: number;
  sessionTimeoutMsMax: number;
}

export interface BrokerConfig {
  /** This broker's node id, >= 1, unique in the cluster. */
  nodeId: number;
  /**
   * The initial controller voters by node id and native listener address (this broker among
   * them when it is a voter). Empty: a cluster of one on this broker.
   */
  peers: Peer[];
  dataDir: string;
  listen: HostPort;
  http: HostPort | null;
  logLevel: LogLevel;
  limits: BrokerLimits;
  defaults: TopicDefaults;
  autoCreateTopics: boolean;
  /** How often retention (bytes and time) is enforced on every partition. */
  retentionCheckIntervalMs: number;
  kafka: KafkaListenerConfig;
  groups: GroupsConfig;
  /** Broker-wide I/O budget of the log cleaner of compacted topics (bytes read + written). */
  logCleanerBytesPerSecond: number;
  /** How often the log cleaner looks for a compacted partition to clean (log-compaction.ts). */
  logCleanerIntervalMs: number;
  /** Controlled shutdown (SIGTERM/SIGINT): past `timeoutMs` the broker exits anyway. */
  shutdown: { timeoutMs: number };
  /** Preferred-leader balancing every `intervalMs` (0 = off; on demand still works). */
  leaderBalance: { intervalMs: number };
  /** Broker-wide budget of catch-up traffic to replicas joining by reassignment (0 = unlimited). */
  reassignmentBytesPerSecond: number;
}

export const DEFAULT_PORT = 7070;
export const DEFAULT_HTTP_PORT = 7071;

export function defaultConfig(): BrokerConfig {
  return {
    nodeId: 1,
    peers: [],
    dataDir: './streambus-data',
    listen: { host: '127.0.0.1', port: DEFAULT_PORT },
    http: { host: '127.0.0.1', port: DEFAULT_HTTP_PORT },
    logLevel: 'info',
    limits: {
      frameBytesMax: 16 * 1024 * 1024,
      inflightRequestsMax: 64,
      inflightBytesMax: 64 * 1024 * 1024,
      connectionsMax: 10_000,
      idleTimeoutMs: 10 * 60_000,
      requestTimeoutMs: 30_000,
      fetchWaitersMax: 1000,
      shutdownTimeoutMs: 10_000,
      openFilesMax: 1024,
      partitionsPerTopicMax: 10_000,
      partitionsMax: 20_000,
      decompressedBytesMax: 64 * 1024 * 1024,
      fetchBytesMax: 55 * 1024 * 1024,
      outboundBytesMax: 64 * 1024 * 1024,
      brokerOutboundBytesMax: 128 * 1024 * 1024,
      brokerInboundBytesMax: 64 * 1024 * 1024,
      frameStallTimeoutMs: 15_000,
      requestDecodedBytesMax: 16 * 1024 * 1024,
      unsyncedBytesMax: 32 * 1024 * 1024,
      replicationUncommittedBytesMax: 256 * 1024 * 1024,
    },
    defaults: {
      partitions: 1,
      durability: 'always',
      flushIntervalMs: 1000,
      segmentBytes: 128 * 1024 * 1024,
      segmentMs: 7 * 24 * 3600_000,
      retentionBytes: -1,
      retentionMs: 7 * 24 * 3600_000,
      maxMessageBytes: 1024 * 1024,
      timestampSkewMsMax: -1,
    },
    autoCreateTopics: false,
    retentionCheckIntervalMs: 30_000,
    kafka: { listen: null, advertised: null, brokers: [] },
    groups: {
      offsetsTopicPartitions: 50,
      offsetsTopicReplicationFactor: 3,
      offsetsRetentionMs: 7 * 24 * 3600_000,
      initialRebalanceDelayMs: 3000,
      sessionTimeoutMsMin: 6000,
      sessionTimeoutMsMax: 1_800_000,
    },
    logCleanerBytesPerSecond: 16 * 1024 * 1024,
    logCleanerIntervalMs: 15_000,
    shutdown: { timeoutMs: 30_000 },
    leaderBalance: { intervalMs: 30_000 },
    reassignmentBytesPerSecond: 0,
  };
}

export class ConfigError extends StreamBusError {
  readonly key: string;
  constructor(key: string, message: string) {
    super(ErrorCode.INVALID_CONFIG, `${key}: ${message}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

// ---- value parsers: each takes a raw value (string from env/flags, anything from a file) ------

type Parser = (key: string, raw: unknown) => unknown;

function describe(raw: unknown): string {
  return typeof raw === 'string' ? `'${raw}'` : (JSON.stringify(raw) ?? String(raw));
}

function intParser(min: number, max: number): Parser {
  return (key, raw) => {
    const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(key, `expected an integer in ${min}..${max}, got ${describe(raw)}`);
    }
    return n;
  };
}

function enumParser(values: readonly string[]): Parser {
  return (key, raw) => {
    if (typeof raw !== 'string' || !values.includes(raw)) {
      throw new ConfigError(key, `expected one of ${values.join(', ')}, got ${describe(raw)}`);
    }
    return raw;
  };
}

const boolParser: Parser = (key, raw) => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  if (raw === 'false' || raw === '0' || raw === 'no') return false;
  throw new ConfigError(key, `expected true or false, got ${describe(raw)}`);
};

const stringParser: Parser = (key, raw) => {
  if (typeof raw !== 'string' || raw.length === 0) {
    throw new ConfigError(key, `expected a non-empty string, got ${describe(raw)}`);
  }
  return raw;
};

/** `HOST:PORT`, `[v6]:PORT`, `:PORT` (loopback host) or `{host, port}`. */
export function parseHostPort(key: string, raw: unknown): HostPort {
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const o = raw as Record<string, unknown>;
    const host = o.host ?? '127.0.0.1';
    if (typeof host !== 'string' || host.length === 0) {
      throw new ConfigError(
        `${key}.host`,
        `expected a host name or address, got ${describe(host)}`,
      );
    }
    const port = intParser(0, 65535)(`${key}.port`, o.port) as number;
    return { host, port };
  }
  if (typeof raw === 'string') {
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(raw.trim());
    const port = m ? Number(m[3]) : Number.NaN;
    if (m && port <= 65535) {
      const host = m[1] ?? m[2] ?? '';
      return { host: host === '' ? '127.0.0.1' : host, port };
    }
  }
  throw new ConfigError(key, `expected HOST:PORT, got ${describe(raw)}`);
}

const httpParser: Parser = (key, raw) => {
  if (raw === null || raw === false || raw === 'off' || raw === 'none' || raw === 'false') {
    return null;
  }
  return parseHostPort(key, raw);
};

const MB = 1024 * 1024;
const DAY_MS = 24 * 3600_000;
/**
 * limits.fetchBytesMax is clamped below the client's default frame limit (64 MiB) with room for
 * the response's own fields, so a full fetch response is always a frame the client accepts.
 */
export const FETCH_BYTES_CEILING = 60 * MB;

/** Every leaf key, with its parser. Nested sections are one level deep. */
const SCHEMA: Readonly<Record<string, Parser>> = {
  nodeId: intParser(1, 2 ** 31 - 1),
  peers: (key, raw) =>
    parsePeers(key, raw, (k, message) => {
      throw new ConfigError(k, message);
    }),
  dataDir: stringParser,
  listen: parseHostPort,
  http: httpParser,
  logLevel: enumParser(LOG_LEVELS),
  autoCreateTopics: boolParser,
  retentionCheckIntervalMs: intParser(100, DAY_MS),
  logCleanerBytesPerSecond: intParser(64 * 1024, 1024 * 1024 * MB),
  logCleanerIntervalMs: intParser(10, DAY_MS),
  'limits.frameBytesMax': intParser(1024, 1024 * MB),
  'limits.inflightRequestsMax': intParser(1, 100_000),
  'limits.inflightBytesMax': intParser(1024, 4096 * MB),
  'limits.connectionsMax': intParser(1, 1_000_000),
  'limits.idleTimeoutMs': intParser(100, 365 * DAY_MS),
  'limits.requestTimeoutMs': intParser(10, 3600_000),
  'limits.fetchWaitersMax': intParser(0, 1_000_000),
  'limits.shutdownTimeoutMs': intParser(0, 3600_000),
  'limits.openFilesMax': intParser(16, 1_000_000),
  'limits.partitionsPerTopicMax': intParser(1, 100_000),
  'limits.partitionsMax': intParser(1, 1_000_000),
  'limits.decompressedBytesMax': intParser(1024, 1024 * MB),
  'limits.fetchBytesMax': intParser(1024, FETCH_BYTES_CEILING),
  'limits.outboundBytesMax': intParser(1024, 4096 * MB),
  'limits.brokerOutboundBytesMax': intParser(1024, 65536 * MB),
  'limits.brokerInboundBytesMax': intParser(1024, 65536 * MB),
  'limits.frameStallTimeoutMs': intParser(100, 3600_000),
  'limits.requestDecodedBytesMax': intParser(64 * 1024, 4096 * MB),
  'limits.unsyncedBytesMax': intParser(64 * 1024, 4096 * MB),
  'limits.replicationUncommittedBytesMax': intParser(64 * 1024, 65536 * MB),
  'defaults.partitions': intParser(1, 100_000),
  'defaults.durability': enumParser(DURABILITY_POLICIES),
  'defaults.flushIntervalMs': intParser(1, DAY_MS),
  'defaults.segmentBytes': intParser(1024, 1024 * 1024 * MB),
  'defaults.segmentMs': intParser(1000, 3650 * DAY_MS),
  'defaults.retentionBytes': intParser(-1, Number.MAX_SAFE_INTEGER),
  'defaults.retentionMs': intParser(-1, Number.MAX_SAFE_INTEGER),
  'defaults.maxMessageBytes': intParser(64, 1024 * MB),
  'defaults.timestampSkewMsMax': intParser(-1, Number.MAX_SAFE_INTEGER),
  'kafka.listen': httpParser,
  'kafka.advertised': httpParser,
  'kafka.brokers': (key, raw) =>
    parsePeers(key, raw, (k, message) => {
      throw new ConfigError(k, message);
    }),
  'groups.offsetsTopicPartitions': intParser(1, 10_000),
  'groups.offsetsTopicReplicationFactor': intParser(1, 100),
  'groups.offsetsRetentionMs': intParser(1000, 3650 * DAY_MS),
  'groups.initialRebalanceDelayMs': intParser(0, 300_000),
  'groups.sessionTimeoutMsMin': intParser(100, 3600_000),
  'groups.sessionTimeoutMsMax': intParser(100, 3600_000),
  'shutdown.timeoutMs': intParser(0, 3600_000),
  'leaderBalance.intervalMs': intParser(0, DAY_MS),
  reassignmentBytesPerSecond: intParser(0, 1024 * 1024 * MB),
};
const SECTIONS = ['limits', 'defaults', 'kafka', 'groups', 'shutdown', 'leaderBalance'] as const;
/** Keys whose value is an object in a file but a leaf in the schema. */
const OBJECT_LEAVES = new Set([
  'listen',
  'http',
  'peers',
  'kafka.listen',
  'kafka.advertised',
  'kafka.brokers',
]);

function camelToSnake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function kebabToCamel(s: string): string {
  return s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * `STREAMBUS_*` variables that belong to the client and the CLI, not to the broker. Every entry
 * point ignores them, so a shell set up for the CLI can start a broker.
 */
export const CLIENT_ENV_NAMES: ReadonlySet<string> = new Set(['STREAMBUS_BOOTSTRAP']);

/**
 * Bytes a frame needs beyond one record batch of `max.message.bytes`: the frame header (14), the
 * produce body's msgpack around the batch (keys, topic name up to 249 bytes, partition, the
 * bytes header) and the batch and record headers of one record whose value alone is
 * max.message.bytes long (61 + about 25). That is under 512 bytes; this keeps twice that, so
 * a batch or record of the maximum size reaches the broker and is answered MESSAGE_TOO_LARGE
 * instead of overflowing the frame limit (which closes the connection).
 */
export const PRODUCE_FRAME_OVERHEAD_BYTES = 1024;

const ENV_NAMES: ReadonlyMap<string, string> = new Map(
  Object.keys(SCHEMA).map((key) => [
    `STREAMBUS_${key.split('.').map(camelToSnake).join('_')}`,
    key,
  ]),
);

/** Flattens a parsed file into dotted leaf keys, rejecting unknown keys. */
function flattenFile(doc: unknown, file: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(file, 'expected a mapping of configuration keys at the top level');
  }
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if ((SECTIONS as readonly string[]).includes(k)) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        throw new ConfigError(k, `expected a mapping with keys ${sectionKeys(k).join(', ')}`);
      }
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) {
        out.set(checkKnown(`${k}.${k2}`), v2);
      }
    } else {
      out.set(checkKnown(k), v);
    }
  }
  return out;
}

function sectionKeys(section: string): string[] {
  return Object.keys(SCHEMA)
    .filter((k) => k.startsWith(`${section}.`))
    .map((k) => k.slice(section.length + 1));
}

function checkKnown(key: string): string {
  if (!Object.hasOwn(SCHEMA, key)) {
    throw new ConfigError(
      key,
      `unknown key; did you mean ${nearestName(key, Object.keys(SCHEMA))}? (allowed: ${Object.keys(SCHEMA).join(', ')})`,
    );
  }
  return key;
}

const FLAG_ALIASES: Readonly<Record<string, string>> = {
  'data-dir': 'dataDir',
  'node-id': 'nodeId',
  'log-level': 'logLevel',
  'auto-create-topics': 'autoCreateTopics',
  'kafka-listen': 'kafka.listen',
  'kafka-advertised': 'kafka.advertised',
  'kafka-brokers': 'kafka.brokers',
};

function readFileSource(file: string): Map<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('config', cannotReadMessage(file, err as NodeJS.ErrnoException));
  }
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      'config',
      `${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
    );
  }
  return flattenFile(doc, file);
}

/** Why a configuration file cannot be read, and what `config` expected when it looks like KEY=VALUE. */
function cannotReadMessage(file: string, err: NodeJS.ErrnoException): string {
  const eq = file.indexOf('=');
  if ((err.code === 'ENOENT' || err.code === 'EISDIR') && eq > 0) {
    const key = nearestName(file.slice(0, eq), Object.keys(SCHEMA)) ?? 'KEY';
    const value = file.slice(eq + 1);
    const env = [...ENV_NAMES].find(([, k]) => k === key)?.[0] ?? 'STREAMBUS_<KEY>';
    const dot = key.indexOf('.');
    const line =
      dot < 0 ? `${key}: ${value}` : `${key.slice(0, dot)}: { ${key.slice(dot + 1)}: ${value} }`;
    return (
      `expected a YAML or JSON configuration file, got '${file}', which is no file. ` +
      `A broker setting goes in that file (${line}) or in the environment ` +
      `(${env}=${value}); topic configs such as retention.ms=1000 are set with ` +
      '`streambus topic create NAME --config KEY=VALUE`'
    );
  }
  if (err.code === 'ENOENT')
    return `cannot read ${file}: no such file (expected a YAML or JSON configuration file)`;
  return `cannot read ${file}: ${err.message}`;
}

/**
 * Builds the configuration: flags > env (STREAMBUS_*) > file (YAML, or JSON for `.json`) >
 * defaults. Throws ConfigError naming the key and what is allowed.
 */
export function loadConfig(
  sources: { file?: string; env?: NodeJS.ProcessEnv; flags?: Record<string, unknown> } = {},
): BrokerConfig {
  const merged = new Map<string, unknown>();
  const flagFile = sources.flags?.config;
  const file =
    typeof flagFile === 'string' ? flagFile : (sources.env?.STREAMBUS_CONFIG ?? sources.file);
  if (file !== undefined) {
    for (const [k, v] of readFileSource(file)) merged.set(k, v);
  }
  for (const [name, value] of Object.entries(sources.env ?? {})) {
    if (
      !name.startsWith('STREAMBUS_') ||
      name === 'STREAMBUS_CONFIG' ||
      CLIENT_ENV_NAMES.has(name) ||
      value === undefined
    ) {
      continue;
    }
    const key = ENV_NAMES.get(name);
    if (key === undefined) {
      const known = [...ENV_NAMES.keys(), 'STREAMBUS_CONFIG', ...CLIENT_ENV_NAMES];
      throw new ConfigError(
        name,
        `unknown environment variable; did you mean ${nearestName(name, known)}? (every variable: docs/broker.md#configuration)`,
      );
    }
    merged.set(key, value);
  }
  for (const [name, value] of Object.entries(sources.flags ?? {})) {
    if (value === undefined || name === 'config') continue;
    const key = FLAG_ALIASES[name] ?? name.split('.').map(kebabToCamel).join('.');
    merged.set(checkKnown(key), value);
  }
  return buildConfig(merged);
}

function buildConfig(values: ReadonlyMap<string, unknown>): BrokerConfig {
  const config = defaultConfig();
  const root = config as unknown as Record<string, unknown>;
  for (const [key, raw] of values) {
    const parser = SCHEMA[key];
    if (parser === undefined) throw new ConfigError(key, 'unknown key');
    if (typeof raw === 'object' && raw !== null && !OBJECT_LEAVES.has(key)) {
      throw new ConfigError(key, `expected a single value, got ${describe(raw)}`);
    }
    const value = parser(key, raw);
    const dot = key.indexOf('.');
    if (dot < 0) {
      root[key] = value;
    } else {
      (root[key.slice(0, dot)] as Record<string, unknown>)[key.slice(dot + 1)] = value;
    }
  }
  checkRelations(config);
  return config;
}

/** Whether `key` is a configuration key (dotted, as in the file). */
export function isConfigKey(key: string): boolean {
  return Object.hasOwn(SCHEMA, key);
}

/** One value of `key` parsed as the file or environment would be (ConfigError naming the key). */
export function parseConfigValue(key: string, raw: unknown): unknown {
  const parser = SCHEMA[checkKnown(key)];
  if (parser === undefined) throw new ConfigError(key, 'unknown key');
  return parser(key, raw);
}

/** Ties related limits together (STYLE: assertions between limits, as typed errors here). */
export function checkRelations(c: BrokerConfig): void {
  if (c.defaults.maxMessageBytes > c.limits.frameBytesMax - PRODUCE_FRAME_OVERHEAD_BYTES) {
    throw new ConfigError(
      'defaults.maxMessageBytes',
      `must be at most limits.frameBytesMax (${c.limits.frameBytesMax}) minus ${PRODUCE_FRAME_OVERHEAD_BYTES} bytes of request framing, ${c.limits.frameBytesMax - PRODUCE_FRAME_OVERHEAD_BYTES}, got ${c.defaults.maxMessageBytes}`,
    );
  }
  if (c.limits.inflightBytesMax < c.limits.frameBytesMax) {
    throw new ConfigError(
      'limits.inflightBytesMax',
      `must be at least limits.frameBytesMax (${c.limits.frameBytesMax})`,
    );
  }
  if (c.defaults.maxMessageBytes > c.defaults.segmentBytes) {
    throw new ConfigError(
      'defaults.maxMessageBytes',
      `must not exceed defaults.segmentBytes (${c.defaults.segmentBytes})`,
    );
  }
  if (c.limits.unsyncedBytesMax < c.defaults.maxMessageBytes) {
    throw new ConfigError(
      'limits.unsyncedBytesMax',
      `must be at least defaults.maxMessageBytes (${c.defaults.maxMessageBytes})`,
    );
  }
  if (c.limits.replicationUncommittedBytesMax < c.defaults.maxMessageBytes) {
    throw new ConfigError(
      'limits.replicationUncommittedBytesMax',
      `must be at least defaults.maxMessageBytes (${c.defaults.maxMessageBytes})`,
    );
  }
  if (c.limits.partitionsPerTopicMax > c.limits.partitionsMax) {
    throw new ConfigError(
      'limits.partitionsPerTopicMax',
      `must not exceed limits.partitionsMax (${c.limits.partitionsMax})`,
    );
  }
  if (c.defaults.partitions > c.limits.partitionsPerTopicMax) {
    throw new ConfigError(
      'defaults.partitions',
      `must not exceed limits.partitionsPerTopicMax (${c.limits.partitionsPerTopicMax})`,
    );
  }
  if (
    c.http &&
    c.http.port !== 0 &&
    c.http.port === c.listen.port &&
    c.http.host === c.listen.host
  ) {
    throw new ConfigError('http', `must differ from listen (${c.listen.host}:${c.listen.port})`);
  }
  const k = c.kafka?.listen;
  if (k && k.port !== 0 && k.port === c.listen.port && k.host === c.listen.host) {
    throw new ConfigError(
      'kafka.listen',
      `must differ from listen (${c.listen.host}:${c.listen.port})`,
    );
  }
  if (c.groups.sessionTimeoutMsMin > c.groups.sessionTimeoutMsMax) {
    throw new ConfigError(
      'groups.sessionTimeoutMsMin',
      `must not exceed groups.sessionTimeoutMsMax (${c.groups.sessionTimeoutMsMax})`,
    );
  }
}
