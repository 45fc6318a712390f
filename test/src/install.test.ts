// A clean install prints no warnings: the locked install of a fresh copy of the workspace (the
// manifests, the lockfile and the committed bin shim; no node_modules, no dist/) with the
// pinned pnpm, as scripts/run.mjs runs it, must not print WARN, "Ignored build scripts" or
// "Failed to create bin". The packages come from the local store when it has them (this
// checkout was installed), so the test needs no network on a machine that ran `npm test`.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, removeDir, tempDir } from './harness.js';

const pnpmVersion = String(
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).packageManager,
).replace(/^pnpm@/, '');

/** The pinned pnpm: the one on PATH if it is that version, else through npx (as run.mjs). */
function pinnedPnpm(): [string, string[]] | null {
  const probe = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  if (probe.status === 0 && probe.stdout.trim() === pnpmVersion) return ['pnpm', []];
  const npx = spawnSync('npx', ['--yes', `pnpm@${pnpmVersion}`, '--version'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return npx.status === 0 ? ['npx', ['--yes', `pnpm@${pnpmVersion}`]] : null;
}

/** What a fresh clone has that the install reads: manifests, lockfile, workspace file, bin shim. */
function copyWorkspace(to: string): void {
  for (const f of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml']) {
    cpSync(join(ROOT, f), join(to, f));
  }
  const projects = [
    ...readdirSync(join(ROOT, 'packages')).map((p) => `packages/${p}`),
    'benchmarks',
    'test',
  ];
  for (const p of projects) {
    cpSync(join(ROOT, p, 'package.json'), join(to, p, 'package.json'));
  }
  cpSync(join(ROOT, 'packages/cli/bin'), join(to, 'packages/cli/bin'), { recursive: true });
}

describe('a clean install', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) removeDir(d);
  });

  it('prints no warnings with the pinned pnpm', (ctx) => {
    const pnpm = pinnedPnpm();
    if (pnpm === null) {
      ctx.skip(`pnpm@${pnpmVersion} is neither on PATH nor runnable through npx`);
      return;
    }
    const dir = tempDir('streambus-install-');
    dirs.push(dir);
    copyWorkspace(dir);
    const env: NodeJS.ProcessEnv = { ...process.env, CI: '1' };
    // The install must not inherit the settings of the pnpm running this suite.
    for (const k of Object.keys(env)) if (/^(npm|pnpm)_config_/i.test(k)) delete env[k];
    const r = spawnSync(pnpm[0], [...pnpm[1], 'install', '--frozen-lockfile', '--prefer-offline'], {
      cwd: dir,
      env,
      encoding: 'utf8',
      timeout: 150_000,
    });
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.status, output).toBe(0);
    expect(output).toContain('Done in');
    expect(output).not.toMatch(/WARN|Ignored build scripts|Failed to create bin/i);
    // The linked bin points at the committed shim, which exists before any build.
    expect(readFileSync(join(dir, 'test/node_modules/.bin/streambus'), 'utf8')).toContain(
      'cli/bin/streambus.cjs',
    );
  }, 180_000);
});
