// Dynamic broker configuration (issue 12): the broker settings that change at runtime, without a
// restart, through `streambus config set KEY VALUE [--broker ID]` (AlterBrokerConfig, API 33),
// or SIGHUP re-reading the configuration file (run.ts). Every change is validated here (typed
// INVALID_CONFIG naming the key), recorded in the controller's metadata log
// (`alter-broker-config`, for one broker or, with broker id -1, for all), and applied by each
// broker when it applies the record (cluster-node.ts), onto its live BrokerConfig.
//
// Precedence per key: this broker's dynamic value > the cluster-wide dynamic value > the value
// the process started with (flags > environment > file > default). Removing a dynamic value
// (`config unset`) goes back to the next one.
import { type BrokerConfig, ConfigError, isConfigKey, parseConfigValue } from '../config.js';
import type { ConfigEntry } from '../controller/metadata-records.js';

/** The keys that change at runtime, and where each takes effect. */
export const DYNAMIC_BROKER_KEYS: Readonly<Record<string, string>> = {
  logLevel: 'the process log level, at once',
  'leaderBalance.intervalMs': 'the next house tick',
  retentionCheckIntervalMs: 'after the retention check running now',
  reassignmentBytesPerSecond: 'the next message to a joining replica',
  // limits.* (issue 12): only those read where they are used, on the live config, whose change
  // keeps every invariant: a bound on one request's wait or size, or on how many requests a
  // connection reads ahead (lowering it below what is in flight only stops reading until those
  // answer). Static, so `config set` refuses them naming the key: limits that size buffers or
  // parsers built at start (frameBytesMax, inflightBytesMax, outbound/inbound budgets), that the
  // controller's planner or a partition captured (partitionsMax, partitionsPerTopicMax,
  // fetchWaitersMax, unsyncedBytesMax, replicationUncommittedBytesMax), the listener's
  // connectionsMax, the descriptor cache's openFilesMax, and the idle and stall timeouts that
  // also pace peer-link keepalives and the sweep.
  'limits.requestTimeoutMs': 'the next request (the sweep checks at most every second)',
  'limits.fetchBytesMax': 'the next fetch',
  'limits.inflightRequestsMax': 'the next request read on every connection, open ones too',
  'limits.decompressedBytesMax': 'the next produced compressed batch',
  'limits.shutdownTimeoutMs': 'the connection drain of the next shutdown',
};

/** Cluster-wide dynamic values are recorded under this broker id. */
export const ALL_BROKERS = -1;

export function isDynamicBrokerKey(key: string): boolean {
  return Object.hasOwn(DYNAMIC_BROKER_KEYS, key);
}

/** Checks one change (null = back to the default): the key is known, dynamic, the value valid. */
export function checkBrokerConfigChange(key: string, value: string | null): void {
  if (!isDynamicBrokerKey(key)) {
    const dynamic = Object.keys(DYNAMIC_BROKER_KEYS).join(', ');
    throw new ConfigError(
      key,
      isConfigKey(key)
        ? `not a dynamic setting (restart the broker to change it); dynamic: ${dynamic}`
        : `unknown key; dynamic broker settings: ${dynamic}`,
    );
  }
  if (value !== null) parseConfigValue(key, value);
}

/** The value of a dynamic key in `config`. */
export function dynamicValue(config: BrokerConfig, key: string): unknown {
  const dot = key.indexOf('.');
  const root = config as unknown as Record<string, unknown>;
  return dot < 0
    ? root[key]
    : (root[key.slice(0, dot)] as Record<string, unknown>)[key.slice(dot + 1)];
}

function setValue(config: BrokerConfig, key: string, value: unknown): void {
  const dot = key.indexOf('.');
  const root = config as unknown as Record<string, unknown>;
  if (dot < 0) root[key] = value;
  else (root[key.slice(0, dot)] as Record<string, unknown>)[key.slice(dot + 1)] = value;
}

/** The values the process started with, per dynamic key (what an unset goes back to). */
export function staticDynamicValues(config: BrokerConfig): Map<string, unknown> {
  return new Map(Object.keys(DYNAMIC_BROKER_KEYS).map((k) => [k, dynamicValue(config, k)]));
}

export interface EffectiveEntry {
  readonly key: string;
  readonly value: unknown;
  readonly source: 'static' | 'dynamic-cluster' | 'dynamic-broker';
}

/** Each dynamic key's effective value and where it comes from (see the top). */
export function effectiveDynamicConfig(
  base: ReadonlyMap<string, unknown>,
  cluster: readonly ConfigEntry[],
  broker: readonly ConfigEntry[],
): EffectiveEntry[] {
  return Object.keys(DYNAMIC_BROKER_KEYS).map((key) => {
    const own = broker.find((e) => e.key === key);
    const all = cluster.find((e) => e.key === key);
    const parse = (raw: string): unknown => {
      try {
        return parseConfigValue(key, raw);
      } catch {
        return undefined;
      }
    };
    const ownValue = own === undefined ? undefined : parse(own.value);
    if (ownValue !== undefined) return { key, value: ownValue, source: 'dynamic-broker' };
    const allValue = all === undefined ? undefined : parse(all.value);
    if (allValue !== undefined) return { key, value: allValue, source: 'dynamic-cluster' };
    return { key, value: base.get(key), source: 'static' };
  });
}

/** Writes the effective values into `config`; the keys whose value changed. */
export function applyDynamicConfig(
  config: BrokerConfig,
  entries: readonly EffectiveEntry[],
): string[] {
  const changed: string[] = [];
  for (const e of entries) {
    if (dynamicValue(config, e.key) === e.value) continue;
    setValue(config, e.key, e.value);
    changed.push(e.key);
  }
  return changed;
}
