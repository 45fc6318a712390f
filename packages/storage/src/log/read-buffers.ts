// ReadBufferPool: the buffers a partition log reads served batches into, handed back once the
// bytes have left (a fetch response written to its socket) and reused by the next read.
//
// Why: a consumer reading at full speed makes the broker read a few MiB per fetch. Each of those
// reads allocated a fresh ArrayBuffer outside the JS heap, and V8 starts a full (mark-compact)
// collection whenever such external memory has grown by 64 MiB: every ~16 fetches, whatever the
// heap holds. Reusing a handful of read buffers removes that growth.
//
// Safety rule: only the one holder of a read's bytes may `give` them back, and only once it is
// certain nothing will look at them again (the native fetch handler does it from the socket's
// write callback). A buffer that is never given back is simply collected; a reader that does
// not know about the pool loses nothing. `give` ignores buffers the pool did not make and a
// second give of one already free. Small reads are not pooled (Node's own slab serves them).
import assert from 'node:assert/strict';

export interface ReadBufferPoolOptions {
  /** Reads below this many bytes are plain allocations. */
  readonly pooledBytesMin: number;
  /** Free buffers kept at most (the rest are left to the GC). */
  readonly freeBuffersMax: number;
  /** Total bytes of the free buffers kept at most. */
  readonly freeBytesMax: number;
}

export interface ReadBufferPoolStats {
  /** Pooled-size takes served by a free buffer / by a new allocation. */
  readonly reused: number;
  readonly allocated: number;
  readonly freeBuffers: number;
  readonly freeBytes: number;
}

const POOL_OPTIONS_DEFAULT: ReadBufferPoolOptions = {
  pooledBytesMin: 256 * 1024,
  freeBuffersMax: 4,
  freeBytesMax: 32 * 1024 * 1024,
};

/** Capacity granularity: reads of nearly the same size share buffers. */
const ROUND_BYTES = 64 * 1024;

export class ReadBufferPool {
  private readonly free: ArrayBuffer[] = [];
  private freeBytes = 0;
  private readonly made = new WeakSet<ArrayBuffer>();
  private reused = 0;
  private allocated = 0;

  constructor(private readonly options: ReadBufferPoolOptions = POOL_OPTIONS_DEFAULT) {
    assert.ok(options.pooledBytesMin > 0 && options.freeBuffersMax >= 0);
  }

  /**
   * A Buffer of exactly `length` bytes (contents undefined), viewing a pooled ArrayBuffer when
   * the read is large: a free one no more than twice the size, else a new one.
   */
  take(length: number): Buffer {
    if (length < this.options.pooledBytesMin) return Buffer.allocUnsafe(length);
    for (let i = this.free.length - 1; i >= 0; i--) {
      const ab = this.free[i]!;
      if (ab.byteLength >= length && ab.byteLength <= 2 * length + ROUND_BYTES) {
        this.free.splice(i, 1);
        this.freeBytes -= ab.byteLength;
        this.reused++;
        return Buffer.from(ab, 0, length);
      }
    }
    const ab = new ArrayBuffer(Math.ceil(length / ROUND_BYTES) * ROUND_BYTES);
    this.made.add(ab);
    this.allocated++;
    return Buffer.from(ab, 0, length);
  }

  /**
   * Hands back the buffer `view` (any view into a pooled read buffer) for reuse. The caller must
   * hold the only reference to those bytes that will ever be read again.
   */
  give(view: Uint8Array): void {
    const ab = view.buffer;
    if (!(ab instanceof ArrayBuffer) || !this.made.has(ab) || this.free.includes(ab)) return;
    if (ab.byteLength > this.options.freeBytesMax || this.options.freeBuffersMax === 0) return;
    // Over a bound, the oldest free buffers make room (the newest are the likeliest to fit).
    while (
      this.free.length >= this.options.freeBuffersMax ||
      this.freeBytes + ab.byteLength > this.options.freeBytesMax
    ) {
      this.freeBytes -= this.free.shift()!.byteLength;
    }
    this.free.push(ab);
    this.freeBytes += ab.byteLength;
  }

  stats(): ReadBufferPoolStats {
    return {
      reused: this.reused,
      allocated: this.allocated,
      freeBuffers: this.free.length,
      freeBytes: this.freeBytes,
    };
  }
}

/** The process's pool: every partition log reads served batches into it. */
export const readBufferPool = new ReadBufferPool();
