import { describe, expect, it } from 'vitest';
import { allErrors, ErrorCode, errorInfo, isStreamBusError, StreamBusError } from './errors.js';

describe('error table', () => {
  it('has one row per code and a row for every named code', () => {
    const codes = allErrors().map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const [name, code] of Object.entries(ErrorCode)) {
      expect(errorInfo(code).name).toBe(name);
    }
    expect(codes.length).toBe(Object.keys(ErrorCode).length);
  });

  it("uses Kafka's numbers and retriable flags", () => {
    expect(ErrorCode.NOT_LEADER_OR_FOLLOWER).toBe(6);
    expect(errorInfo(6).retriable).toBe(true);
    expect(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER).toBe(45);
    expect(errorInfo(45).retriable).toBe(false);
    expect(errorInfo(ErrorCode.CORRUPT_MESSAGE).retriable).toBe(true);
    expect(errorInfo(ErrorCode.OFFSET_OUT_OF_RANGE).retriable).toBe(false);
  });

  it('maps unknown codes to a non-retriable row', () => {
    const row = errorInfo(4242);
    expect(row.retriable).toBe(false);
    expect(row.name).toBe('UNKNOWN_ERROR_CODE_4242');
  });

  it('builds typed errors from the table', () => {
    const cause = new Error('disk');
    const e = new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, 'fsync failed', { cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe(56);
    expect(e.errorName).toBe('KAFKA_STORAGE_ERROR');
    expect(e.retriable).toBe(true);
    expect(e.cause).toBe(cause);
    expect(e.toString()).toBe('KAFKA_STORAGE_ERROR (56): fsync failed');
    expect(isStreamBusError(e, 56)).toBe(true);
    expect(isStreamBusError(e, 3)).toBe(false);
    expect(isStreamBusError(new Error('x'))).toBe(false);
    expect(new StreamBusError(ErrorCode.INVALID_REQUEST).message).toBe(
      'malformed or invalid request',
    );
  });
});
