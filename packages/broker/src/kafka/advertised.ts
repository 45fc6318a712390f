// What this Kafka listener advertises in ApiVersions: exactly the APIs it implements, at the
// ranges kafka-protocol.md §1.2 chooses (the codec's KAFKA_API_RANGES and OPTIONAL_API_RANGES),
// the same on every node (kafkajs reuses the seed broker's answer for every broker, §1.1).
//
// CreatePartitions (v0-3) adds partitions through the controller (controller/add-partitions.ts).
// The group APIs run on the group coordinator (group-handlers.ts). Left out until they are
// implemented: SaslHandshake and SaslAuthenticate (no security yet) and transactions.
import { kafka } from '@streambus/protocol';

export type ApiRange = kafka.ApiRange;

const K = kafka.ApiKey;

const IMPLEMENTED: ReadonlySet<number> = new Set([
  K.Produce,
  K.Fetch,
  K.ListOffsets,
  K.Metadata,
  K.FindCoordinator,
  K.ApiVersions,
  K.CreateTopics,
  K.DeleteTopics,
  K.DeleteRecords,
  K.InitProducerId,
  K.DescribeConfigs,
  K.AlterConfigs,
  K.IncrementalAlterConfigs,
  K.DescribeCluster,
  K.CreatePartitions,
  K.OffsetCommit,
  K.OffsetFetch,
  K.JoinGroup,
  K.Heartbeat,
  K.LeaveGroup,
  K.SyncGroup,
  K.DescribeGroups,
  K.ListGroups,
  K.DeleteGroups,
]);

/** The advertised set, sorted by key. */
export const KAFKA_LISTENER_RANGES: readonly ApiRange[] = [
  ...kafka.KAFKA_API_RANGES,
  ...kafka.OPTIONAL_API_RANGES,
]
  .filter((r) => IMPLEMENTED.has(r.apiKey))
  .sort((a, b) => a.apiKey - b.apiKey);

/** Whether (key, version) is inside an advertised range. */
export function isAdvertised(
  ranges: readonly ApiRange[],
  apiKey: number,
  version: number,
): boolean {
  const r = ranges.find((x) => x.apiKey === apiKey);
  return r !== undefined && version >= r.minVersion && version <= r.maxVersion;
}
