import { describe, expect, it } from 'vitest';
import { ErrorCode, isStreamBusError } from './errors.js';
import { murmur2, partitionForKey } from './murmur2.js';

// kafka-protocol.md §7: kafkajs's spec vectors, generated from the Java client.
const VECTORS: Array<[string, number]> = [
  ['0', 971027396],
  ['1', -1993445489],
  ['128', -326012175],
  ['2187', -1508407203],
  ['16384', -325739742],
  ['78125', -1654490814],
  ['279936', 1462227128],
  ['823543', -2014198330],
  ['2097152', 607668903],
  ['4782969', -1182699775],
  ['10000000', -1830336757],
  ['100:48069', 1009543857],
  ['hello', 2132663229],
  ['', 275646681],
];

describe('murmur2', () => {
  it('reproduces the Java/kafkajs vectors', () => {
    for (const [key, hash] of VECTORS) {
      expect(murmur2(key), key).toBe(hash);
      expect(murmur2(Buffer.from(key)), key).toBe(hash);
    }
  });

  it('picks partitions like the default partitioner', () => {
    expect(partitionForKey('hello', 3)).toBe(0);
    expect(partitionForKey('hello', 12)).toBe(9);
    expect(partitionForKey('1', 3)).toBe(0);
    // A negative hash is masked, not negated: (-1993445489 & 0x7fffffff) % 10.
    expect(partitionForKey('1', 10)).toBe((-1993445489 & 0x7fffffff) % 10);
    let code: unknown;
    try {
      partitionForKey('x', 0);
    } catch (err) {
      code = isStreamBusError(err) ? err.code : err;
    }
    expect(code).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});
