// What a broker process loads before it serves (issue 12: start-up CPU is part of every
// restart's cost to the rest of a cluster on shared cores). The YAML parser, the compression
// codecs' bindings and msgpackr's native extractor are loaded when first needed, not at start.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ENTRY = fileURLToPath(new URL('../dist/run.js', import.meta.url));
const CONFIG = fileURLToPath(new URL('../dist/config.js', import.meta.url));
const DEFERRED = ['yaml', 'snappy', 'lz4-napi', 'fzstd', 'msgpackr-extract'];

describe('broker start-up modules', () => {
  it('leaves the YAML parser, the codec bindings and msgpackr-extract unloaded until used', () => {
    const script = `
      import { createRequire } from 'node:module';
      import { writeFileSync } from 'node:fs';
      const cache = createRequire(import.meta.url).cache;
      const loaded = () => ${JSON.stringify(DEFERRED)}.filter((n) =>
        Object.keys(cache).some((k) => k.includes('/node_modules/' + n + '/')));
      await import(${JSON.stringify(ENTRY)});
      const { loadConfig } = await import(${JSON.stringify(CONFIG)});
      loadConfig({ env: {}, flags: {} });
      const atStart = loaded();
      const file = process.argv[1];
      writeFileSync(file, 'defaults:\\n  durability: none\\n');
      const c = loadConfig({ file });
      console.log(JSON.stringify({ atStart, after: loaded(), durability: c.defaults.durability }));`;
    const dir = mkdtempSync(join(tmpdir(), 'streambus-startup-modules-'));
    let out: string;
    try {
      out = execFileSync(
        process.execPath,
        ['--input-type=module', '-e', script, join(dir, 'b.yaml')],
        {
          encoding: 'utf8',
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const r = JSON.parse(out) as { atStart: string[]; after: string[]; durability: string };
    expect(r.atStart).toEqual([]);
    expect(r.after).toEqual(['yaml']);
    expect(r.durability).toBe('none');
  });
});
