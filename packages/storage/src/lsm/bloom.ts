// A bloom filter over latin1 key strings, stored in each sorted table. Double hashing
// (Kirsch-Mitzenmacher) over two 32-bit FNV-1a variants. With 10 bits per key and 7 probes the
// false-positive rate is about 1%. It never gives a false negative. No I/O here.

/** Bits per key and probe count (about 1% false positives). */
export const BLOOM_BITS_PER_KEY = 10;
export const BLOOM_PROBES = 7;

function hash1(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function hash2(key: string): number {
  let h = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995);
    h ^= h >>> 15;
  }
  return (h | 1) >>> 0;
}

export class BloomBuilder {
  private readonly hashes: number[] = [];
  add(key: string): void {
    this.hashes.push(hash1(key), hash2(key));
  }
  /** The filter bits: byte 0 = probe count, then the bit array. */
  finish(): Buffer {
    const keys = this.hashes.length / 2;
    const bits = Math.max(64, keys * BLOOM_BITS_PER_KEY);
    const bytes = Math.ceil(bits / 8);
    const out = Buffer.alloc(1 + bytes);
    out[0] = BLOOM_PROBES;
    const nbits = bytes * 8;
    for (let i = 0; i < this.hashes.length; i += 2) {
      let h = this.hashes[i]!;
      const d = this.hashes[i + 1]!;
      for (let p = 0; p < BLOOM_PROBES; p++) {
        const bit = h % nbits;
        out[1 + (bit >>> 3)]! |= 1 << (bit & 7);
        h = (h + d) >>> 0;
      }
    }
    return out;
  }
}

/** False means the key is certainly absent. `filter` is what `BloomBuilder.finish` produced. */
export function bloomMayContain(filter: Uint8Array, key: string): boolean {
  const probes = filter[0]!;
  const nbits = (filter.length - 1) * 8;
  if (nbits === 0) return true;
  let h = hash1(key);
  const d = hash2(key);
  for (let p = 0; p < probes; p++) {
    const bit = h % nbits;
    if ((filter[1 + (bit >>> 3)]! & (1 << (bit & 7))) === 0) return false;
    h = (h + d) >>> 0;
  }
  return true;
}
