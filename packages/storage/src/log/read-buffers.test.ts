import { describe, expect, it } from 'vitest';
import { ReadBufferPool } from './read-buffers.js';

const KiB = 1024;

describe('ReadBufferPool', () => {
  const pool = () =>
    new ReadBufferPool({
      pooledBytesMin: 256 * KiB,
      freeBuffersMax: 2,
      freeBytesMax: 3 * 1024 * KiB,
    });

  it('reuses a given-back buffer for a read of about its size, never a smaller one', () => {
    const p = pool();
    const a = p.take(1000 * KiB);
    expect(a.length).toBe(1000 * KiB);
    p.give(a.subarray(10, 20)); // any view of it hands the whole buffer back
    expect(p.stats()).toMatchObject({ allocated: 1, reused: 0, freeBuffers: 1 });
    // Too large for it, and so small that it would waste it: new buffers.
    expect(p.take(1100 * KiB).buffer === a.buffer).toBe(false);
    expect(p.take(300 * KiB).buffer === a.buffer).toBe(false);
    const b = p.take(900 * KiB);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(900 * KiB);
    expect(p.stats()).toMatchObject({ allocated: 3, reused: 1, freeBuffers: 0, freeBytes: 0 });
  });

  it('ignores buffers it did not make, small reads and a second give of a free buffer', () => {
    const p = pool();
    const small = p.take(4 * KiB);
    p.give(small);
    p.give(Buffer.alloc(512 * KiB));
    expect(p.stats().freeBuffers).toBe(0);
    const a = p.take(512 * KiB);
    p.give(a);
    p.give(a);
    expect(p.stats().freeBuffers).toBe(1);
    expect(p.take(512 * KiB).buffer).toBe(a.buffer);
    expect(p.take(512 * KiB).buffer).not.toBe(a.buffer);
  });

  it('keeps at most freeBuffersMax buffers and freeBytesMax bytes, the newest', () => {
    const p = pool();
    const [a, b, c] = [p.take(1024 * KiB), p.take(1024 * KiB), p.take(1024 * KiB)];
    p.give(a);
    p.give(b);
    p.give(c); // over freeBuffersMax: a leaves
    expect(p.stats()).toMatchObject({ freeBuffers: 2, freeBytes: 2048 * KiB });
    const big = p.take(2048 * KiB);
    p.give(big); // over freeBytesMax: b (the oldest) leaves
    expect(p.stats()).toMatchObject({ freeBuffers: 2, freeBytes: 3072 * KiB });
    p.give(p.take(4096 * KiB)); // larger than freeBytesMax on its own: not kept
    expect(p.stats()).toMatchObject({ freeBuffers: 2, freeBytes: 3072 * KiB });
    expect(p.take(1024 * KiB).buffer === big.buffer).toBe(true); // the newest that fits
  });
});
