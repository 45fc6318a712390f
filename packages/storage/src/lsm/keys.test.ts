import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeKey, encodeKey, type KeyPart } from './keys.js';

const part = fc.oneof(
  fc.string(),
  fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  fc.uint8Array({ maxLength: 8 }),
) as fc.Arbitrary<KeyPart>;

function comparePart(a: KeyPart, b: KeyPart): number {
  const tag = (x: KeyPart) => (typeof x === 'string' ? 1 : typeof x === 'number' ? 2 : 3);
  if (tag(a) !== tag(b)) return tag(a) - tag(b);
  if (typeof a === 'number') return a - (b as number);
  const ab = typeof a === 'string' ? Buffer.from(a) : Buffer.from(a);
  const bb = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b as Uint8Array);
  return Buffer.compare(ab, bb);
}

function compareTuples(a: KeyPart[], b: KeyPart[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = comparePart(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

describe('tuple keys', () => {
  it('round-trip and order bytewise exactly as the tuples order', () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 4 }), fc.array(part, { maxLength: 4 }), (a, b) => {
        const ea = encodeKey(...a);
        const eb = encodeKey(...b);
        expect(decodeKey(ea).map(String)).toEqual(a.map(String));
        expect(Math.sign(Buffer.compare(ea, eb))).toBe(Math.sign(compareTuples(a, b)));
      }),
      { numRuns: 500 },
    );
  });

  it('makes a prefix of parts a byte prefix, so prefix scans select sub-trees', () => {
    const group = encodeKey('offsets', 'group-a');
    const key = encodeKey('offsets', 'group-a', 'topic', 3);
    const other = encodeKey('offsets', 'group-ab', 'topic', 3);
    expect(key.subarray(0, group.length).equals(group)).toBe(true);
    expect(other.subarray(0, group.length).equals(group)).toBe(false);
  });

  it('rejects negative numbers and garbage with typed errors', () => {
    expect(() => encodeKey(-1)).toThrow(/non-negative/);
    expect(() => decodeKey(Buffer.from([9]))).toThrow(/tuple key/);
    expect(() => decodeKey(Buffer.from([1, 65]))).toThrow(/tuple key/);
  });
});
