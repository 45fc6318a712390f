// Topic configuration: the per-topic keys a client may set (Kafka's names where Kafka has the
// key), their validation, and the resolution of a topic's effective config over the broker's
// defaults. Pure: no I/O.
//
// Keys and what they map to:
//   retention.bytes        -1 | >= 0      log retention by size (per partition)
//   retention.ms           -1 | >= 0      log retention by age
//   segment.bytes          >= 1024        roll the active segment at this size
//   segment.ms             >= 1000        roll the active segment at this age
//   durability             always | interval | none   (StreamBus-specific)
//   flush.ms               >= 1           fsync cadence under durability=interval
//   max.message.bytes      >= 64          largest record batch accepted from a producer
//   message.timestamp.difference.max.ms  -1 | >= 0   clock-skew check on maxTimestamp
//   cleanup.policy         delete | compact | compact,delete   retention, log cleaner or both
//   delete.retention.ms    >= 0           how long the cleaner keeps a key's last tombstone
//   min.cleanable.dirty.ratio  0..1       clean when this share of cleanable bytes is new
// A policy with compact is served on the cluster path: log-compaction.ts schedules the cleaner
// for every replica of such a topic, and a record without a key is refused at produce.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import {
  DURABILITY_POLICIES,
  type DurabilityPolicy,
  PRODUCE_FRAME_OVERHEAD_BYTES,
  type TopicDefaults,
} from './config.js';

export interface TopicConfig {
  retentionBytes: number;
  retentionMs: number;
  segmentBytes: number;
  segmentMs: number;
  durability: DurabilityPolicy;
  flushIntervalMs: number;
  maxMessageBytes: number;
  timestampSkewMsMax: number;
  /** Which of retention (delete) and the log cleaner (compact) apply (docs/storage.md). */
  cleanupPolicy: CleanupPolicy;
  deleteRetentionMs: number;
  minCleanableDirtyRatio: number;
}

export const CLEANUP_POLICIES = ['delete', 'compact', 'compact,delete'] as const;
export type CleanupPolicy = (typeof CLEANUP_POLICIES)[number];
/** Kafka's defaults for the compaction keys (not broker config keys, yet). */
export const DEFAULT_CLEANUP_POLICY: CleanupPolicy = 'delete';
export const DEFAULT_DELETE_RETENTION_MS = 86_400_000;
export const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO = 0.5;

/** Whether time/size retention applies (delete or compact,delete). */
export function retentionApplies(policy: CleanupPolicy): boolean {
  return policy !== 'compact';
}
/** Whether the log cleaner runs (compact or compact,delete). */
export function compactionApplies(policy: CleanupPolicy): boolean {
  return policy !== 'delete';
}

function cleanupPolicy(value: string): CleanupPolicy | null {
  const parts = value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const set = new Set(parts);
  if (parts.length === 0 || set.size !== parts.length) return null;
  if ([...set].some((p) => p !== 'delete' && p !== 'compact')) return null;
  if (set.size === 2) return 'compact,delete';
  return parts[0] as CleanupPolicy;
}

function ratio(value: string): number | null {
  if (!/^\d+(\.\d+)?$/.test(value)) return null;
  const n = Number(value);
  return n >= 0 && n <= 1 ? n : null;
}

/** Overrides as stored: only the keys set explicitly, as strings (the wire form). */
export type TopicOverrides = Record<string, string>;

interface KeySpec {
  readonly field: keyof TopicConfig;
  readonly parse: (value: string) => number | DurabilityPolicy | CleanupPolicy | null;
  readonly allowed: string;
}

function int(min: number, max = Number.MAX_SAFE_INTEGER, allowMinusOne = false): KeySpec['parse'] {
  return (value) => {
    if (!/^-?\d+$/.test(value)) return null;
    const n = Number(value);
    if (!Number.isSafeInteger(n)) return null;
    if (allowMinusOne && n === -1) return n;
    return n >= min && n <= max ? n : null;
  };
}

export const TOPIC_CONFIG_KEYS: Readonly<Record<string, KeySpec>> = {
  'retention.bytes': {
    field: 'retentionBytes',
    parse: int(0, Number.MAX_SAFE_INTEGER, true),
    allowed: '-1 (unlimited) or an integer >= 0',
  },
  'retention.ms': {
    field: 'retentionMs',
    parse: int(0, Number.MAX_SAFE_INTEGER, true),
    allowed: '-1 (forever) or an integer >= 0',
  },
  'segment.bytes': {
    field: 'segmentBytes',
    parse: int(1024, 2 ** 40),
    allowed: 'an integer in 1024..2^40',
  },
  'segment.ms': { field: 'segmentMs', parse: int(1000), allowed: 'an integer >= 1000' },
  durability: {
    field: 'durability',
    parse: (v) =>
      (DURABILITY_POLICIES as readonly string[]).includes(v) ? (v as DurabilityPolicy) : null,
    allowed: `one of ${DURABILITY_POLICIES.join(', ')}`,
  },
  'flush.ms': {
    field: 'flushIntervalMs',
    parse: int(1, 86_400_000),
    allowed: 'an integer in 1..86400000',
  },
  'max.message.bytes': {
    field: 'maxMessageBytes',
    parse: int(64, 1024 * 1024 * 1024),
    allowed: 'an integer in 64..1073741824',
  },
  'message.timestamp.difference.max.ms': {
    field: 'timestampSkewMsMax',
    parse: int(0, Number.MAX_SAFE_INTEGER, true),
    allowed: '-1 (no check) or an integer >= 0',
  },
  'cleanup.policy': {
    field: 'cleanupPolicy',
    parse: cleanupPolicy,
    allowed: `one of ${CLEANUP_POLICIES.join(', ')} (or delete,compact)`,
  },
  'delete.retention.ms': {
    field: 'deleteRetentionMs',
    parse: int(0),
    allowed: 'an integer >= 0',
  },
  'min.cleanable.dirty.ratio': {
    field: 'minCleanableDirtyRatio',
    parse: ratio,
    allowed: 'a number in 0..1',
  },
};

function invalidConfig(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_CONFIG, message);
}

/**
 * The effective config of a topic: defaults overlaid with `overrides`. Throws INVALID_CONFIG
 * naming the key and what is allowed (unknown keys included), and when the combination is
 * inconsistent (max.message.bytes above segment.bytes or the frame limit).
 */
export function resolveTopicConfig(
  defaults: TopicDefaults,
  overrides: Readonly<TopicOverrides>,
  frameBytesMax: number,
): TopicConfig {
  const config: TopicConfig = {
    retentionBytes: defaults.retentionBytes,
    retentionMs: defaults.retentionMs,
    segmentBytes: defaults.segmentBytes,
    segmentMs: defaults.segmentMs,
    durability: defaults.durability,
    flushIntervalMs: defaults.flushIntervalMs,
    maxMessageBytes: defaults.maxMessageBytes,
    timestampSkewMsMax: defaults.timestampSkewMsMax,
    cleanupPolicy: DEFAULT_CLEANUP_POLICY,
    deleteRetentionMs: DEFAULT_DELETE_RETENTION_MS,
    minCleanableDirtyRatio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
  };
  const target = config as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(overrides)) {
    const spec = TOPIC_CONFIG_KEYS[key];
    if (spec === undefined) {
      throw invalidConfig(
        `${key}: unknown topic config (allowed: ${Object.keys(TOPIC_CONFIG_KEYS).join(', ')})`,
      );
    }
    const parsed = spec.parse(value);
    if (parsed === null) throw invalidConfig(`${key}: expected ${spec.allowed}, got '${value}'`);
    target[spec.field] = parsed;
  }
  if (config.maxMessageBytes > config.segmentBytes) {
    throw invalidConfig(
      `max.message.bytes: ${config.maxMessageBytes} exceeds segment.bytes (${config.segmentBytes})`,
    );
  }
  if (config.maxMessageBytes > frameBytesMax - PRODUCE_FRAME_OVERHEAD_BYTES) {
    throw invalidConfig(
      `max.message.bytes: ${config.maxMessageBytes} exceeds the broker's limits.frameBytesMax (${frameBytesMax}) minus ${PRODUCE_FRAME_OVERHEAD_BYTES} bytes of request framing (at most ${frameBytesMax - PRODUCE_FRAME_OVERHEAD_BYTES})`,
    );
  }
  return config;
}

/** Applies an AlterConfigs change: a null value removes the override (back to the default). */
export function mergeOverrides(
  current: Readonly<TopicOverrides>,
  changes: Readonly<Record<string, string | null>>,
): TopicOverrides {
  const next: TopicOverrides = { ...current };
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return next;
}

/** Every key with its effective value, for DescribeConfigs. */
export function describeTopicConfig(
  config: TopicConfig,
  overrides: Readonly<TopicOverrides>,
): Array<{ name: string; value: string; isDefault: boolean; readOnly: boolean }> {
  return Object.entries(TOPIC_CONFIG_KEYS).map(([name, spec]) => ({
    name,
    value: String(config[spec.field]),
    isDefault: !Object.hasOwn(overrides, name),
    readOnly: false,
  }));
}

const TOPIC_NAME_RE = /^[a-zA-Z0-9._-]{1,249}$/;

/** Kafka's legal topic names: [a-zA-Z0-9._-], 1..249 characters, not "." or "..". */
export function checkTopicName(name: string): void {
  if (!TOPIC_NAME_RE.test(name) || name === '.' || name === '..') {
    throw new StreamBusError(
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      `topic name '${name}' is invalid: use 1..249 of [a-zA-Z0-9._-], not '.' or '..'`,
    );
  }
}
