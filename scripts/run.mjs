#!/usr/bin/env node
// The two commands. `npm test` and `npm start` both land here, on a machine that may have only
// Node.js and npm: install the pinned pnpm if it is missing, install the locked dependencies,
// build (tsc -b), and then either run the whole check (lint, type-check, tests) or start the
// embedded local broker. It does nothing clever: every step is a child process whose failure
// stops the run with its exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmVersion = String(pkg.packageManager).replace(/^pnpm@/, '');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) {
    console.error(`streambus: could not run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) {
    console.error(`streambus: '${[cmd, ...args].join(' ')}' failed with exit code ${r.status}`);
    process.exit(r.status ?? 1);
  }
}

/**
 * The pnpm to use: the one on PATH if it is the pinned version or pnpm 11 or later (which run
 * the locked install themselves: pmOnFail in pnpm-workspace.yaml), else the pinned one via npx.
 * Returns the command, its prefix arguments and whether it is the pinned version.
 */
function pnpm() {
  const probe = spawnSync('pnpm', ['--version'], { cwd: root, encoding: 'utf8' });
  const version = probe.status === 0 ? probe.stdout.trim() : '';
  const major = Number(version.split('.')[0]);
  if (version === pnpmVersion) return ['pnpm', [], true];
  if (major >= 11) return ['pnpm', [], false];
  return ['npx', ['--yes', `pnpm@${pnpmVersion}`], true];
}

const [pnpmCmd, pnpmPrefix, pinned] = pnpm();
const pn = (...args) => run(pnpmCmd, [...pnpmPrefix, ...args]);

const mode = process.argv[2];
const rest = process.argv.slice(3);
// After a `pnpm install` by pnpm 11 or later, the pinned 10.x replaces node_modules, which it
// refuses to do without a terminal (ERR_PNPM_ABORTED_REMOVE_MODULES_DIR_NO_TTY) unless told.
// (Not a pnpm-workspace.yaml setting: pnpm 12 warns about it there.)
pn(
  'install',
  '--frozen-lockfile',
  '--reporter=silent',
  ...(pinned ? ['--config.confirm-modules-purge=false'] : []),
);
pn('run', 'build');

if (mode === 'test') {
  pn('exec', 'biome', 'check', '.');
  // The JSON report gives CI one plain closing line: 'vitest: N passed, N failed, N skipped'.
  const reportDir = mkdtempSync(join(tmpdir(), 'streambus-vitest-'));
  const report = join(reportDir, 'report.json');
  const r = spawnSync(
    pnpmCmd,
    [
      ...pnpmPrefix,
      'exec',
      'vitest',
      'run',
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${report}`,
      ...rest,
    ],
    { cwd: root, stdio: 'inherit' },
  );
  try {
    const j = JSON.parse(readFileSync(report, 'utf8'));
    const skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
    console.log(
      `vitest: ${j.numPassedTests} passed, ${j.numFailedTests} failed, ${skipped} skipped`,
    );
  } catch {
    console.log('vitest: no report was written');
  }
  rmSync(reportDir, { recursive: true, force: true });
  process.exit(r.status ?? 1);
} else if (mode === 'start') {
  // Through the bin, which sizes the broker's libuv thread pool (bin/streambus.cjs).
  run(process.execPath, [
    join(root, 'packages/cli/bin/streambus.cjs'),
    ...(rest.length ? rest : ['dev']),
  ]);
} else {
  console.error('usage: node scripts/run.mjs test|start [args...]');
  process.exit(2);
}
