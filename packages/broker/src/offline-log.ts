// The log an offline partition holds in place of its real one: a partition whose log failed to
// open (damage found by recovery, EMFILE, an I/O error) or whose log met damage while serving.
// Every operation fails with KAFKA_STORAGE_ERROR (56, what Kafka answers for a partition on an
// offline log directory; retriable, since a repair brings it back) naming the reason and the
// repair command; offsets are the last ones known (0 when the log never opened). Closing it is a
// no-op. It holds no file and no timer, so any number of offline partitions cost nothing.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { LogDamage } from '@streambus/storage';
import type { PartitionLogLike } from './partition.js';

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
      `'streambus partition repair ${topic} ${index} --truncate' (or --skip, see --dry-run first)`,
  );
}

export class OfflineLog implements PartitionLogLike {
  readonly writtenEndOffset: number;
  readonly durableEndOffset: number;
  readonly sizeBytes = 0;

  constructor(
    private readonly error: () => StreamBusError,
    readonly logStartOffset: number,
    readonly logEndOffset: number,
  ) {
    this.writtenEndOffset = logEndOffset;
    this.durableEndOffset = logEndOffset;
  }

  private fail<T>(): Promise<T> {
    return Promise.reject(this.error());
  }
  append(): Promise<{ baseOffset: number; lastOffset: number; appendTimeMs: number }> {
    return this.fail();
  }
  waitDurable(): Promise<void> {
    return this.fail();
  }
  read(): Promise<{ data: Buffer; nextOffset: number }> {
    return this.fail();
  }
  offsetForTimestamp(): Promise<number | null> {
    return this.fail();
  }
  findOffsetByTimestamp(): Promise<{ offset: number; timestamp: number } | null> {
    return this.fail();
  }
  deleteRecordsBefore(): Promise<number> {
    return this.fail();
  }
  enforceRetention(): Promise<void> {
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
