// The built broker (`dist/main.js`) as a child process for tests that measure it from outside
// (RSS, event-loop stalls, log lines): ephemeral ports, the given STREAMBUS_* environment, stdout
// log lines kept (bounded), SIGKILL on stop or when the test process exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withThreadPoolSize } from '../thread-pool.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');
const START_TIMEOUT_MS = 15_000;
const LOG_LINES_MAX = 10_000;

export interface BrokerChild {
  readonly pid: number;
  readonly port: number;
  /** Parsed JSON log lines, oldest first (at most LOG_LINES_MAX). */
  readonly logs: Array<Record<string, unknown>>;
  /** A /proc/<pid>/status field in KiB (VmRSS, VmHWM). */
  statusKiB(field: 'VmRSS' | 'VmHWM'): number;
  stop(): Promise<void>;
}

export function startBrokerChild(
  dataDir: string,
  env: Record<string, string> = {},
  /** Node flags for the child, before the entry (e.g. a V8 flag). */
  nodeFlags: readonly string[] = [],
): Promise<BrokerChild> {
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeFlags, MAIN, '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--http', 'off'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: withThreadPoolSize({ PATH: process.env.PATH ?? '', ...env }),
    },
  );
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const logs: Array<Record<string, unknown>> = [];
  let partial = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 10_000) stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`broker did not start in ${START_TIMEOUT_MS} ms: ${stderr}`));
    }, START_TIMEOUT_MS);
    child.stdout!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (logs.length >= LOG_LINES_MAX) logs.shift();
        logs.push(msg);
        if (msg.msg !== 'broker started') continue;
        clearTimeout(timer);
        resolve({
          pid: child.pid!,
          port: msg.port as number,
          logs,
          statusKiB(field) {
            const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
              readFileSync(`/proc/${child.pid}/status`, 'utf8'),
            );
            return m ? Number(m[1]) : -1;
          },
          async stop() {
            process.off('exit', kill);
            kill();
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before listening: ${stderr}`));
    });
  });
}
