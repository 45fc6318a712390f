// The installed bin (bin/streambus.cjs) sizes the libuv thread pool of the broker it runs: the
// pool's size shows in the process's thread count (libuv starts every pool thread when the pool
// is first used), so this checks the pool itself, not only the variable. Setting the variable
// from an ES module entry would change nothing (the pool is already made by then).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UV_THREADPOOL_SIZE_DEFAULT } from '@streambus/broker';
import { afterAll, describe, expect, it } from 'vitest';

const CJS_BIN = fileURLToPath(new URL('../bin/streambus.cjs', import.meta.url));
/** `./streambus` at the repository root: an ES module, so it starts the bin in a child. */
const ROOT_SCRIPT = fileURLToPath(new URL('../../../streambus', import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Started {
  readonly uvThreadpoolSize: number;
  readonly threads: number;
}

/**
 * `streambus broker start` through `script`; the broker's started line and thread count, then
 * SIGTERM to the process started (the root script passes it on to its child).
 */
async function startThroughBin(pool: string | undefined, script = CJS_BIN): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'streambus-uv-'));
  dirs.push(dir);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '' };
  if (pool !== undefined) env.UV_THREADPOOL_SIZE = pool;
  const child = spawn(
    process.execPath,
    [script, 'broker', 'start', '--data-dir', dir, '--listen', '127.0.0.1:0', '--http', 'off'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no started line: ${out} ${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const found = out.split('\n').find((l) => l.includes('"broker started"'));
      if (found === undefined) return;
      clearTimeout(timer);
      resolve(found);
    });
    void exited.then(() => reject(new Error(`exited before starting: ${err}`)));
  });
  const brokerPid = (JSON.parse(line) as { pid: number }).pid;
  const status = readFileSync(`/proc/${brokerPid}/status`, 'utf8');
  const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]);
  child.kill('SIGTERM');
  await exited;
  return { uvThreadpoolSize: (JSON.parse(line) as Started).uvThreadpoolSize, threads };
}

describe('bin/streambus.cjs and the libuv thread pool', () => {
  it(`gives a broker ${UV_THREADPOOL_SIZE_DEFAULT} pool threads unless the user chose a size`, async () => {
    const chosen = await startThroughBin('4');
    const byDefault = await startThroughBin(undefined);
    expect(chosen.uvThreadpoolSize).toBe(4);
    expect(byDefault.uvThreadpoolSize).toBe(UV_THREADPOOL_SIZE_DEFAULT);
    // The same program either way: the only difference in threads is the pool's.
    expect(byDefault.threads - chosen.threads).toBe(UV_THREADPOOL_SIZE_DEFAULT - 4);
    // `./streambus` cannot set it in its own process (too late): its child has the pool.
    const root = await startThroughBin(undefined, ROOT_SCRIPT);
    expect(root).toEqual(byDefault);
  }, 60_000);
});
