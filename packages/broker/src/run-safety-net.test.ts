// The process-level safety net of `runBroker`: a promise rejection nothing handles (a bug) is
// logged and counted, and the broker process keeps serving instead of exiting (Node's default
// for an unhandled rejection is to exit with code 1). Runs the built `dist/index.js` in a child
// process that starts the broker, rejects a promise with no handler, and is then stopped with
// SIGTERM: it must exit 0 after logging the rejection. Requires `tsc -b packages/broker` first.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js');
const dataDir = mkdtempSync(join(tmpdir(), 'sb-run-net-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const SCRIPT = `
const { runBroker, defaultConfig } = await import(${JSON.stringify(ENTRY)});
const config = { ...defaultConfig(), dataDir: ${JSON.stringify(dataDir)},
  listen: { host: '127.0.0.1', port: 0 }, http: null, logLevel: 'info' };
const running = runBroker(config);
setTimeout(() => { Promise.reject(new Error('injected: nobody handles this')); }, 200);
setTimeout(() => { console.log('{"msg":"still alive"}'); process.kill(process.pid, 'SIGTERM'); }, 600);
await running;
`;

it('logs an unhandled rejection and keeps the broker running', async () => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(timer);
  expect(out).toMatch(/unhandled promise rejection \(a bug\)/);
  expect(out).toMatch(/injected: nobody handles this/);
  expect(out).toMatch(/still alive/);
  expect(out).toMatch(/broker stopped/);
  expect(code, out).toBe(0);
});
