import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Compression } from './compression-errors.js';
import { ErrorCode } from './errors.js';
import { lazyModule } from './lazy-module.js';

const INDEX = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** In a fresh process: which of `names` are loaded after importing the package, then after `then`. */
function loadedIn(then: string, names: readonly string[]): { atImport: string[]; after: string[] } {
  const script = `
    import { createRequire } from 'node:module';
    const cache = createRequire(import.meta.url).cache;
    const names = ${JSON.stringify(names)};
    const loaded = () => names.filter((n) => Object.keys(cache).some((k) => k.includes('/node_modules/' + n + '/')));
    const p = await import(${JSON.stringify(INDEX)});
    const atImport = loaded();
    ${then}
    console.log(JSON.stringify({ atImport, after: loaded() }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  return JSON.parse(out) as { atImport: string[]; after: string[] };
}

describe('lazyModule', () => {
  it('loads the compression bindings at their first use, not at import', () => {
    const r = loadedIn(
      `const data = Buffer.alloc(4096, 7);
       for (const c of [p.Compression.SNAPPY, p.Compression.LZ4])
         if (!p.decompress(c, p.compress(c, data)).equals(data)) throw new Error('round trip ' + c);`,
      ['snappy', 'lz4-napi', 'msgpackr-extract'],
    );
    expect(r.atImport).toEqual([]);
    // msgpackr's native extractor is never loaded (codec.ts imports msgpackr/pack).
    expect(r.after).toEqual(['snappy', 'lz4-napi']);
  });

  it('answers a module that cannot load with UNSUPPORTED_COMPRESSION_TYPE naming the codec, each time', () => {
    const get = lazyModule('streambus-no-such-codec-binding', Compression.SNAPPY);
    for (let i = 0; i < 2; i++) {
      let err: { code?: number; message?: string } = {};
      try {
        get();
      } catch (e) {
        err = e as typeof err;
      }
      expect(err.code).toBe(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE);
      expect(err.message).toMatch(
        /compression codec snappy is not available: streambus-no-such-codec-binding did not load/,
      );
    }
  });

  it('returns the same module on every call', () => {
    const get = lazyModule<typeof import('node:path')>('node:path', Compression.LZ4);
    expect(get()).toBe(get());
    expect(typeof get().join).toBe('function');
  });
});
