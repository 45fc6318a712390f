// The internal topic the group coordinator lives on (docs/groups.md "The coordinator"): its name,
// which of its partitions holds a group, and the rules that keep clients off it (hidden from
// Metadata listings unless named, not creatable, deletable or producible by clients).
import { ErrorCode, StreamBusError } from '@streambus/protocol';

export const OFFSETS_TOPIC = '__consumer_offsets';

/**
 * The topic configs `__consumer_offsets` is created with: compacted (the latest record of each
 * key is the state; no time or size retention). Tombstones go after delete.retention.ms (the
 * store's checkpoint is not trusted past that age, group-store.ts).
 */
export const OFFSETS_TOPIC_CONFIGS: Readonly<Record<string, string>> = {
  'cleanup.policy': 'compact',
};

/** Topics only the broker writes (one today). */
export function isInternalTopic(name: string): boolean {
  return name === OFFSETS_TOPIC;
}

/**
 * Java's String.hashCode (UTF-16 code units, 32-bit wrap-around), so that a group lands on the
 * partition Kafka would put it on: Kafka clients and the native SDK agree on the coordinator.
 */
export function javaStringHashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/**
 * The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(groupId.hashCode) %
 * partitions`, where Utils.abs maps Integer.MIN_VALUE to 0.
 */
export function groupPartition(groupId: string, partitions: number): number {
  if (!Number.isSafeInteger(partitions) || partitions < 1) {
    throw new Error(`assertion: ${OFFSETS_TOPIC} needs at least one partition, got ${partitions}`);
  }
  const h = javaStringHashCode(groupId);
  return (h === -2147483648 ? 0 : Math.abs(h)) % partitions;
}

/** Throws INVALID_TOPIC_EXCEPTION for an internal topic (produce, create, delete by clients). */
export function checkClientTopic(name: string, what: string): void {
  if (isInternalTopic(name)) {
    throw new StreamBusError(
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      `topic ${name} is internal (the group coordinator's): clients cannot ${what} it`,
    );
  }
}
