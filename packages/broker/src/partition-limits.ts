// Limits on partition counts, checked before a topic is created (nothing is made when they
// refuse): `limits.partitionsPerTopicMax` (INVALID_PARTITIONS) and `limits.partitionsMax` across
// the whole broker (POLICY_VIOLATION). Every partition costs at least one open segment file,
// its in-memory indexes and producer state, and its share of recovery time at startup; the
// limits make a typo like `--partitions 100000` a clear error instead of a broker that runs out
// of file descriptors half-way. Pure: no I/O.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { BrokerLimits } from './config.js';

export function checkPartitionLimits(
  limits: Pick<BrokerLimits, 'partitionsPerTopicMax' | 'partitionsMax'>,
  topic: string,
  partitions: number,
  brokerPartitions: number,
): void {
  if (partitions > limits.partitionsPerTopicMax) {
    throw new StreamBusError(
      ErrorCode.INVALID_PARTITIONS,
      `topic ${topic}: ${partitions} partitions exceed limits.partitionsPerTopicMax (${limits.partitionsPerTopicMax})`,
    );
  }
  if (brokerPartitions + partitions > limits.partitionsMax) {
    throw new StreamBusError(
      ErrorCode.POLICY_VIOLATION,
      `topic ${topic}: ${partitions} more partitions would make ${brokerPartitions + partitions} on this broker, over limits.partitionsMax (${limits.partitionsMax}; ${brokerPartitions} exist)`,
    );
  }
}
