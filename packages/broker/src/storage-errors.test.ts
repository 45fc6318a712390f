// The one mapping of storage's own error codes to what a client sees (storage-errors.ts).
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { clientStorageError, systemStorageError } from './storage-errors.js';

describe('storage error mapping', () => {
  it('answers LOG_TRUNCATED as NOT_LEADER_OR_FOLLOWER, keeping the cause', () => {
    const truncated = new StreamBusError(ErrorCode.LOG_TRUNCATED, 'log /p was reset to 7');
    const mapped = systemStorageError(truncated);
    expect(mapped?.code).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect(mapped?.retriable).toBe(true);
    expect(mapped?.message).toBe('LOG_TRUNCATED: log /p was reset to 7');
    expect(mapped?.cause).toBe(truncated);
    expect(clientStorageError(truncated)?.code).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
  });

  it('sends LOG_BACKPRESSURE as it is (retriable in the shared table, not a storage failure)', () => {
    const busy = new StreamBusError(ErrorCode.LOG_BACKPRESSURE);
    expect(busy.retriable).toBe(true);
    expect(systemStorageError(busy)).toBeNull();
    expect(clientStorageError(busy)).toBeNull();
  });

  it('leaves other typed errors alone and still names OS errors', () => {
    expect(systemStorageError(new StreamBusError(ErrorCode.OFFSET_OUT_OF_RANGE))).toBeNull();
    expect(clientStorageError(new Error('x'))).toBeNull();
    const os = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    expect(systemStorageError(os, 'writing m')?.code).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
  });
});
