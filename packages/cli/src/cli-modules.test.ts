// What a CLI command loads (issue 13: a first hour without waits): client commands do not load
// the broker package (~200 modules, about 0.1 s of CPU on every `streambus topic list`);
// `broker start` loads it when it runs, and not the client package (issue 12: a broker start's
// CPU is taken from the serving brokers on shared cores). Checked with a module load hook that lists every URL.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'streambus-cli-modules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOOKS = join(dir, 'hooks.mjs');
const REGISTER = join(dir, 'register.mjs');
writeFileSync(
  HOOKS,
  `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.SB_LOADED_URLS, url + '\\n');
  return next(url, context);
}
`,
);
writeFileSync(
  REGISTER,
  `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(HOOKS).href)});\n`,
);

/** The module URLs `streambus ...args` loaded, and its exit status. */
function loadedBy(args: readonly string[]): { urls: string[]; status: number | null } {
  const file = join(dir, `urls-${args.join('-').replace(/[^a-z0-9-]/gi, '')}.txt`);
  writeFileSync(file, '');
  const r = spawnSync(process.execPath, ['--import', REGISTER, BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', SB_LOADED_URLS: file },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { urls: readFileSync(file, 'utf8').split('\n').filter(Boolean), status: r.status };
}

const broker = (urls: readonly string[]) => urls.filter((u) => u.includes('/packages/broker/'));

describe('CLI module loading', () => {
  it('client commands do not load the broker package', () => {
    for (const args of [['--version'], ['topic', 'list', '--help']]) {
      const r = loadedBy(args);
      expect(r.status).toBe(0);
      // The hook saw the CLI itself (so an empty broker list means something).
      expect(r.urls.some((u) => u.includes('/packages/cli/'))).toBe(true);
      expect(broker(r.urls)).toEqual([]);
    }
  });

  it('broker start loads it when it runs, not the client package, and a bad flag still exits 2', () => {
    const r = loadedBy(['broker', 'start', '--listen', '127.0.0.1:7070x']);
    expect(r.status).toBe(2);
    expect(broker(r.urls).length).toBeGreaterThan(50);
    // bin.ts builds only the broker commands for `broker` and `dev` (broker-program.ts).
    expect(r.urls.filter((u) => u.includes('/packages/client/'))).toEqual([]);
  });

  it('a mistyped command still gets the whole tree and its suggestion', () => {
    const r = spawnSync(process.execPath, [BIN, 'brokr'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'brokr'/);
    expect(r.stderr).toMatch(/Did you mean broker\?/);
  });
});
