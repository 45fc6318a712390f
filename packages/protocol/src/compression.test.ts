import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compressSync as snappyRaw } from 'snappy';
import { describe, expect, it } from 'vitest';
import { Compression, compress, decompress, zstdCanCompress } from './compression.js';
import { ErrorCode, isStreamBusError } from './errors.js';
import { xxhash32 } from './xxhash32.js';

const TESTDATA = fileURLToPath(new URL('../testdata/', import.meta.url));
const vector = (name: string) => readFileSync(TESTDATA + name);

/** The inputs testdata/generate.sh compressed with the reference CLIs. */
function text(): Buffer {
  let s = '';
  for (let i = 0; i < 3000; i++) s += `record-${i} the quick brown fox ${(i * 7919) % 1000}\n`;
  return Buffer.from(s);
}
function noise(): Buffer {
  const b = Buffer.alloc(70000);
  let x = 12345;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function codeOf(fn: () => unknown): number | string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return isStreamBusError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

describe('xxhash32', () => {
  it('matches the reference values', () => {
    expect(xxhash32(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(xxhash32(Buffer.from('abc'))).toBe(0x32d153ff);
    expect(xxhash32(Buffer.from('Nobody inspects the spammish repetition'))).toBe(0xe2293b2f);
    // The LZ4 header checksum byte of FLG 0x60, BD 0x40 (Kafka's descriptor) is 0x82.
    expect((xxhash32(Buffer.from([0x60, 0x40])) >>> 8) & 0xff).toBe(0x82);
  });
});

describe('lz4 frame', () => {
  it('writes Kafka’s descriptor: FLG 0x60, BD 0x40, HC 0x82, end mark', () => {
    const out = compress(Compression.LZ4, Buffer.from('hello hello hello hello'));
    expect(out.subarray(0, 7).toString('hex')).toBe('04224d18604082');
    expect(out.subarray(out.length - 4).toString('hex')).toBe('00000000');
  });

  it('decodes liblz4 frames: checksums, content size, linked blocks, 64 KB–4 MB blocks', () => {
    const t = text();
    for (const name of [
      'text.default.lz4',
      'text.b64k-linked-blockcrc-size.lz4',
      'text.b256k-nocrc.lz4',
      'text.bauto-blockcrc.lz4',
    ]) {
      expect(decompress(Compression.LZ4, vector(name)).equals(t), name).toBe(true);
    }
    expect(decompress(Compression.LZ4, vector('noise.b64k-stored.lz4')).equals(noise())).toBe(true);
  });

  it('stores incompressible blocks raw (bit 31) and round-trips them', () => {
    const n = noise();
    const out = compress(Compression.LZ4, n);
    expect(out.readUInt32LE(7) >>> 31).toBe(1);
    expect(decompress(Compression.LZ4, out).equals(n)).toBe(true);
  });

  it('refuses checksum mismatches and oversized output', () => {
    const v = Buffer.from(vector('text.b64k-linked-blockcrc-size.lz4'));
    v[6] = v[6]! ^ 0xff; // HC byte sits after 8 bytes of content size: flip a content-size byte
    expect(codeOf(() => decompress(Compression.LZ4, v))).toBe(ErrorCode.CORRUPT_COMPRESSED_DATA);
    expect(codeOf(() => decompress(Compression.LZ4, vector('text.default.lz4'), 1000))).toBe(
      ErrorCode.CORRUPT_COMPRESSED_DATA,
    );
  });

  it('produces frames the lz4 reference CLI accepts', () => {
    const t = text();
    const out = compress(Compression.LZ4, t);
    let cli: Buffer;
    try {
      cli = execFileSync('lz4', ['-d', '-c'], { input: out });
    } catch (err) {
      // The CLI is optional on a developer machine; the decoder tests above still ran.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    expect(cli.equals(t)).toBe(true);
  });
});

describe('snappy', () => {
  it('writes xerial framing and reads both framings', () => {
    const t = text();
    const x = compress(Compression.SNAPPY, t);
    expect(x.subarray(0, 16).toString('hex')).toBe('82534e415050590000000001' + '00000001');
    expect(decompress(Compression.SNAPPY, x).equals(t)).toBe(true);
    expect(decompress(Compression.SNAPPY, snappyRaw(t)).equals(t)).toBe(true);
  });

  it('bounds output by the declared block length before inflating', () => {
    const t = text();
    expect(codeOf(() => decompress(Compression.SNAPPY, snappyRaw(t), 100))).toBe(
      ErrorCode.CORRUPT_COMPRESSED_DATA,
    );
    expect(codeOf(() => decompress(Compression.SNAPPY, compress(Compression.SNAPPY, t), 100))).toBe(
      ErrorCode.CORRUPT_COMPRESSED_DATA,
    );
  });
});

describe('zstd', () => {
  it('decodes frames from the zstd reference CLI', () => {
    const t = text();
    for (const name of ['text.default.zst', 'text.l19-nocheck.zst', 'text.two-frames.zst']) {
      expect(Buffer.from(decompress(Compression.ZSTD, vector(name))).equals(t), name).toBe(true);
    }
    expect(codeOf(() => decompress(Compression.ZSTD, vector('text.default.zst'), 1000))).toBe(
      ErrorCode.CORRUPT_COMPRESSED_DATA,
    );
  });

  it('refuses a declared window or content size above the bound before allocating it', () => {
    // 9 bytes: magic, no flags, window descriptor 1 GiB * 1.875, one empty last raw block.
    const window = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (20 << 3) | 7, 0x01, 0x00, 0x00]);
    const before = process.memoryUsage().arrayBuffers;
    const err = (() => {
      try {
        decompress(Compression.ZSTD, window, 1 << 20);
      } catch (e) {
        return e;
      }
    })();
    expect(isStreamBusError(err, ErrorCode.CORRUPT_COMPRESSED_DATA)).toBe(true);
    expect(String(err)).toMatch(/declares a 2013265920-byte window, above the bound of 8388608/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
    // Single segment, 4-byte content size 2^31: refused from the header.
    const content = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x80, 0x01, 0, 0]);
    expect(codeOf(() => decompress(Compression.ZSTD, content, 1 << 20))).toBe(
      ErrorCode.CORRUPT_COMPRESSED_DATA,
    );
    // The reference CLI's frames (every window and content size within bounds) still decode.
    const t = text();
    expect(decompress(Compression.ZSTD, vector('text.two-frames.zst'), t.length).equals(t)).toBe(
      true,
    );
  });

  it('encodes where the runtime can, else says so with a typed error', () => {
    const t = text();
    if (zstdCanCompress) {
      expect(decompress(Compression.ZSTD, compress(Compression.ZSTD, t)).equals(t)).toBe(true);
    } else {
      expect(codeOf(() => compress(Compression.ZSTD, t))).toBe(
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
      );
    }
  });
});

describe('every codec', () => {
  it('refuses unknown codec ids', () => {
    expect(codeOf(() => compress(5, Buffer.from('x')))).toBe(
      ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    );
    expect(codeOf(() => decompress(7, Buffer.from('x')))).toBe(
      ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    );
  });

  it('turns truncations and bit flips into typed errors only', () => {
    const t = text().subarray(0, 5000);
    const payloads: Array<[number, Buffer]> = [
      [Compression.GZIP, compress(Compression.GZIP, t)],
      [Compression.SNAPPY, compress(Compression.SNAPPY, t)],
      [Compression.SNAPPY, snappyRaw(t)],
      [Compression.LZ4, compress(Compression.LZ4, t)],
      [Compression.ZSTD, vector('text.default.zst')],
    ];
    for (const [codec, payload] of payloads) {
      for (let cut = 0; cut < payload.length; cut += Math.max(1, payload.length >> 6)) {
        const code = codeOf(() => decompress(codec, payload.subarray(0, cut)));
        expect([ErrorCode.CORRUPT_COMPRESSED_DATA, 'no error']).toContain(code);
      }
      for (let i = 0; i < 200; i++) {
        const flipped = Buffer.from(payload);
        const at = (i * 7919) % flipped.length;
        flipped[at] = flipped[at]! ^ (1 << (i % 8));
        const code = codeOf(() => decompress(codec, flipped));
        expect([ErrorCode.CORRUPT_COMPRESSED_DATA, 'no error']).toContain(code);
      }
    }
  });

  it('bounds gzip bombs', () => {
    const bomb = compress(Compression.GZIP, Buffer.alloc(4 * 1024 * 1024));
    expect(codeOf(() => decompress(Compression.GZIP, bomb, 1024 * 1024))).toBe(
      ErrorCode.CORRUPT_COMPRESSED_DATA,
    );
  });
});
