import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cImplementation, crc32cPortable } from './crc32c.js';

/** Bit-at-a-time reference, independent of the table code. */
function crc32cSlow(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the Castagnoli check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    // RFC 3720 B.4 vectors: 32 zero bytes and 32 0xFF bytes.
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  });

  it('agrees with a bit-at-a-time reference on every length and alignment', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(16), (data, skip) => {
        const start = Math.min(skip, data.length);
        expect(crc32c(data, 0, start)).toBe(crc32cSlow(data.subarray(start)));
        expect(crc32c(data.subarray(start))).toBe(crc32cSlow(data.subarray(start)));
      }),
    );
  });

  it('gives the same answer from both implementations around the size switch', () => {
    expect(crc32cImplementation).toBe('native');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 200, maxLength: 5000 }), fc.nat(300), (data, cut) => {
        const start = Math.min(cut, data.length);
        expect(crc32c(data, 7, start)).toBe(crc32cPortable(data, 7, start));
        expect(crc32c(data, 0, 0, data.length - start)).toBe(
          crc32cSlow(data.subarray(0, data.length - start)),
        );
      }),
      { numRuns: 50 },
    );
  });

  it('continues from a previous value', () => {
    fc.assert(
      fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => {
        const whole = Buffer.concat([a, b]);
        expect(crc32c(b, crc32c(a))).toBe(crc32c(whole));
      }),
    );
  });
});
