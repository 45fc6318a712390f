// Offline partitions: a replica whose log failed to open (damage found by recovery, EMFILE, an
// I/O error) or met damage while serving (replicated-partition.ts). Every request to it fails
// with KAFKA_STORAGE_ERROR (56, what Kafka answers for a partition on an offline log directory;
// retriable, since a repair brings it back) naming the reason and the repair command. An offline
// partition holds no file and no timer, so any number of them cost nothing.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { LogDamage } from '@streambus/storage';

/** Why a partition is offline, as metadata, /ready and logs report it. */
export interface OfflineState {
  readonly reason: string;
  /** Present when the cause is damaged data (storage's description of it). */
  readonly damage: LogDamage | null;
  readonly sinceMs: number;
}

/** The reason a partition has while its repair runs. */
export const REPAIRING_REASON = 'being repaired';

export function offlineError(topic: string, index: number, state: OfflineState): StreamBusError {
  if (state.reason === REPAIRING_REASON) {
    return new StreamBusError(
      ErrorCode.KAFKA_STORAGE_ERROR,
      `partition ${topic}-${index} is being repaired; retry when the repair ends`,
    );
  }
  return new StreamBusError(
    ErrorCode.KAFKA_STORAGE_ERROR,
    `partition ${topic}-${index} is offline: ${state.reason}; repair it with ` +
      `'streambus partition repair ${topic} ${index} --truncate' (see --dry-run first)`,
  );
}
