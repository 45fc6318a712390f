// The one table of (API, min, max) ranges a StreamBus Kafka listener advertises in ApiVersions,
// chosen as kafka-protocol.md §1 explains, and the header-version rule (§3.1).
//
// Why these numbers (§1.2, §1.3): each maximum is the highest version both kafkajs 2.2.4 and
// librdkafka 2.0.2 would send below the API's flexible threshold, so the only flexible message is
// ApiVersions v3. Minima are what librdkafka 2.0.2's single-version feature probes need: Produce
// is advertised from 0 (gzip/snappy/lz4 probe Produce 0) although only 3–7 decode; a Produce v0–2
// frame is refused with UNSUPPORTED_VERSION and the connection closed. FindCoordinator,
// InitProducerId and SaslHandshake start at 0 for the same reason. Every node must advertise the
// same set: kafkajs reuses the seed broker's answer for every broker.
//
// OPTIONAL_API_RANGES are the admin APIs the codec also covers (kafkajs admin's versions); a
// listener adds them to its answer only once it implements them ("advertise only what is
// implemented", §1.2).

import { ApiKey, apiSchema } from './apis.js';

export interface ApiRange {
  readonly apiKey: number;
  readonly minVersion: number;
  readonly maxVersion: number;
}

function r(apiKey: number, minVersion: number, maxVersion: number): ApiRange {
  return { apiKey, minVersion, maxVersion };
}

/** §1.2, sorted by key: what the listener advertises for produce, fetch, groups and admin. */
export const KAFKA_API_RANGES: readonly ApiRange[] = [
  r(ApiKey.Produce, 0, 7),
  r(ApiKey.Fetch, 4, 11),
  r(ApiKey.ListOffsets, 1, 3),
  r(ApiKey.Metadata, 1, 4),
  r(ApiKey.OffsetCommit, 2, 5),
  r(ApiKey.OffsetFetch, 1, 4),
  r(ApiKey.FindCoordinator, 0, 2),
  r(ApiKey.JoinGroup, 0, 5),
  r(ApiKey.Heartbeat, 0, 3),
  r(ApiKey.LeaveGroup, 0, 1),
  r(ApiKey.SyncGroup, 0, 3),
  r(ApiKey.SaslHandshake, 0, 1),
  r(ApiKey.ApiVersions, 0, 3),
  r(ApiKey.CreateTopics, 2, 4),
  r(ApiKey.DeleteTopics, 0, 1),
  r(ApiKey.InitProducerId, 0, 1),
  r(ApiKey.SaslAuthenticate, 0, 1),
];

/**
 * Admin APIs the codec covers beyond §1.2 (kafkajs 2.2.4 admin's versions; all non-flexible
 * except IncrementalAlterConfigs v1, CreatePartitions v2-3 and DescribeCluster v0, which no
 * target client sends: kafkajs 2.2.4 sends CreatePartitions v0-1).
 */
export const OPTIONAL_API_RANGES: readonly ApiRange[] = [
  r(ApiKey.DescribeGroups, 0, 2),
  r(ApiKey.ListGroups, 0, 2),
  r(ApiKey.DeleteRecords, 0, 1),
  r(ApiKey.DescribeConfigs, 0, 2),
  r(ApiKey.AlterConfigs, 0, 1),
  r(ApiKey.CreatePartitions, 0, 3),
  r(ApiKey.DeleteGroups, 0, 1),
  r(ApiKey.IncrementalAlterConfigs, 0, 1),
  r(ApiKey.DescribeCluster, 0, 0),
];

/** The ApiVersions entries for a set of ranges, sorted by key (the §3.3 vector's order). */
export function apiVersionsEntries(
  ranges: readonly ApiRange[] = KAFKA_API_RANGES,
): { apiKey: number; minVersion: number; maxVersion: number }[] {
  return [...ranges]
    .sort((a, b) => a.apiKey - b.apiKey)
    .map((x) => ({ apiKey: x.apiKey, minVersion: x.minVersion, maxVersion: x.maxVersion }));
}

/** Request header version for (key, version): 2 when flexible, else 1 (§3.1). */
export function requestHeaderVersion(apiKey: number, apiVersion: number): 1 | 2 {
  const a = apiSchema(apiKey);
  return a !== undefined && apiVersion >= a.flexibleFrom ? 2 : 1;
}

/**
 * Response header version: 1 when flexible, else 0; ApiVersions always 0, at every version, so a
 * client can read the error of a version it sent too high (KIP-511, §3.1).
 */
export function responseHeaderVersion(apiKey: number, apiVersion: number): 0 | 1 {
  if (apiKey === ApiKey.ApiVersions) return 0;
  const a = apiSchema(apiKey);
  return a !== undefined && apiVersion >= a.flexibleFrom ? 1 : 0;
}
