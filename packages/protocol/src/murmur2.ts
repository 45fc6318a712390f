// Kafka's default partitioner hash: murmur2 exactly as the Java client and kafkajs 2.x's
// DefaultPartitioner compute it (kafka-protocol.md §7), with 32-bit arithmetic via Math.imul.
// A string key is hashed as its UTF-8 bytes. partitionForKey masks the sign bit (not abs) and
// takes the remainder over all partitions. Keyless records are the caller's business.

import { ErrorCode, StreamBusError } from './errors.js';

const SEED = 0x9747b28c | 0;
const M = 0x5bd1e995;
const R = 24;

/** murmur2 of the key's bytes (UTF-8 for a string), as a signed int32. */
export function murmur2(key: Uint8Array | string): number {
  const data = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const length = data.length;
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  // Tail, with the Java original's deliberate fall-through written as cumulative ifs.
  const tail = length & 3;
  if (tail === 3) h ^= data[whole + 2]! << 16;
  if (tail >= 2) h ^= data[whole + 1]! << 8;
  if (tail >= 1) {
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Kafka's default partitioner picks for a keyed record. */
export function partitionForKey(key: Uint8Array | string, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount <= 0) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `partitionCount must be a positive integer, got ${partitionCount}`,
    );
  }
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}
