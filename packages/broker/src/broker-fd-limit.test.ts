// Descriptor limits lowered with `ulimit -n` in a child process: a broker started under
// `ulimit -n 256` creates 2,000 partitions, takes a produce to every one of them and serves them
// all back, holds fewer descriptors than the limit throughout (counted in /proc/<pid>/fd), stops
// gracefully without one EMFILE in its log, and after a restart under the same limit reads
// everything back. The data directory is a small tmpfs (fsync costs nothing there, keeping the
// test within seconds); the test is skipped, saying why, where tmpfs cannot be mounted or there
// is no /proc. Requires `tsc -b packages/broker` first (as `npm test` does).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiKey, decodeRecordBatch, ErrorCode, encodeRecordBatch } from '@streambus/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { RawClient } from './testing/raw-client.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const ULIMIT = 256;
/** What the broker derives from the limit: half of it for storage. */
const STORAGE_FILES_MAX = ULIMIT / 2;
const PARTITIONS = 2000;
/** Partitions per produce or fetch request. */
const CHUNK = 250;

const root = mkdtempSync(join(tmpdir(), 'sb-fdlimit-'));
let mounted = false;
let skipReason = '';
if (!existsSync('/proc/self/fd')) {
  skipReason = 'no /proc (descriptors cannot be counted)';
} else {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'tmpfs', root], { stdio: 'pipe' });
    mounted = true;
  } catch (err) {
    skipReason = `cannot mount a tmpfs (${(err as Error).message.split('\n')[0]})`;
  }
}
const children: ChildProcess[] = [];
const clients: RawClient[] = [];

afterAll(() => {
  for (const c of clients.splice(0)) c.close();
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  if (mounted) {
    try {
      execFileSync('umount', [root], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', root], { stdio: 'pipe' });
    }
  }
  rmSync(root, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  port: number;
  httpPort: number;
  output: () => string;
  exited: Promise<number | null>;
}

function startUnderUlimit(dataDir: string): Promise<Started> {
  // `exec` replaces the shell, so the child's pid is the broker's.
  const child = spawn(
    'bash',
    [
      '-c',
      `ulimit -n ${ULIMIT} && exec "$0" "$@"`,
      process.execPath,
      MAIN,
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
  );
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start: ${out}`)), 30_000);
    const onData = (): void => {
      const line = out.split('\n').find((l) => l.includes('"broker started"'));
      if (!line) return;
      child.stdout!.off('data', onData);
      clearTimeout(timer);
      const msg = JSON.parse(line) as { port: number; httpPort: number };
      resolve({ child, port: msg.port, httpPort: msg.httpPort, output: () => out, exited });
    };
    child.stdout!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code}: ${out}`));
    });
  });
}

function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function connect(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

const value = (p: number, j: number) => `p${p}-r${j}`;

async function produceAll(c: RawClient): Promise<void> {
  for (let from = 0; from < PARTITIONS; from += CHUNK) {
    const partitions = [];
    for (let p = from; p < Math.min(PARTITIONS, from + CHUNK); p++) {
      const records = [0, 1].map((j) => ({ value: Buffer.from(value(p, j)) }));
      partitions.push({ partition: p, records: encodeRecordBatch(records) });
    }
    // Right after the create a partition may not have elected itself yet (retriable
    // NOT_LEADER_OR_FOLLOWER): retried, as a client would.
    let res = await c.request(ApiKey.PRODUCE, {
      acks: -1,
      timeoutMs: 10_000,
      topics: [{ name: 'wide', partitions }],
    });
    for (let k = 0; k < 100; k++) {
      const retry = res.topics[0]!.partitions.filter(
        (r) => r.errorCode === ErrorCode.NOT_LEADER_OR_FOLLOWER,
      );
      if (retry.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
      const again = await c.request(ApiKey.PRODUCE, {
        acks: -1,
        timeoutMs: 10_000,
        topics: [
          {
            name: 'wide',
            partitions: partitions.filter((p) => retry.some((r) => r.partition === p.partition)),
          },
        ],
      });
      const answered = new Map(again.topics[0]!.partitions.map((r) => [r.partition, r]));
      res = {
        topics: [
          {
            ...res.topics[0]!,
            partitions: res.topics[0]!.partitions.map((r) => answered.get(r.partition) ?? r),
          },
        ],
      };
    }
    for (const r of res.topics[0]!.partitions) {
      // At 1: each partition's first Raft term's no-op is a control batch at 0.
      expect(r, `produce to partition ${r.partition}`).toMatchObject({
        errorCode: 0,
        baseOffset: 1,
      });
    }
  }
}

/** Every partition's records, checked against what produceAll wrote. */
async function fetchAll(c: RawClient, pid: number, fdMax: { n: number }): Promise<void> {
  for (let from = 0; from < PARTITIONS; from += CHUNK) {
    const partitions = [];
    for (let p = from; p < Math.min(PARTITIONS, from + CHUNK); p++) {
      partitions.push({ partition: p, fetchOffset: 1, partitionMaxBytes: 4096 });
    }
    const res = await c.request(ApiKey.FETCH, {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 16 * 1024 * 1024,
      topics: [{ name: 'wide', partitions }],
    });
    fdMax.n = Math.max(fdMax.n, openDescriptors(pid));
    for (const r of res.topics[0]!.partitions) {
      expect(r.errorCode, `fetch from partition ${r.partition}`).toBe(0);
      const { records } = decodeRecordBatch(r.records, 0);
      expect(records.map((x) => Buffer.from(x.value!).toString())).toEqual([
        value(r.partition, 0),
        value(r.partition, 1),
      ]);
    }
  }
}

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} missing`);
  return Number(m[1]);
}

describe(`broker under ulimit -n ${ULIMIT}`, () => {
  it(`serves ${PARTITIONS} partitions within the descriptor limit, stops and restarts without EMFILE`, async (ctx) => {
    if (!mounted) {
      console.warn(`skipped: ${skipReason}`);
      ctx.skip();
    }
    const dataDir = join(root, 'data');
    const b1 = await startUnderUlimit(dataDir);
    const pid1 = b1.child.pid!;
    expect(await metric(b1.httpPort, 'streambus_storage_open_files_max')).toBe(STORAGE_FILES_MAX);
    const c = await connect(b1.port);
    const created = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: 'wide', partitions: PARTITIONS, replicationFactor: 1, configs: {} }],
      timeoutMs: 30_000,
    });
    expect(created.topics[0]!.errorCode).toBe(0);
    const fdMax = { n: openDescriptors(pid1) };
    await produceAll(c);
    fdMax.n = Math.max(fdMax.n, openDescriptors(pid1));
    await fetchAll(c, pid1, fdMax);
    expect(await metric(b1.httpPort, 'streambus_storage_open_files')).toBeLessThanOrEqual(
      STORAGE_FILES_MAX,
    );
    // 2,000 active segments through 128 descriptors: most were closed and reopened.
    expect(await metric(b1.httpPort, 'streambus_storage_file_evictions_total')).toBeGreaterThan(
      PARTITIONS,
    );
    expect(await metric(b1.httpPort, 'streambus_storage_open_files_exhausted_total')).toBe(0);
    expect(fdMax.n).toBeLessThan(ULIMIT);
    c.close();
    b1.child.kill('SIGTERM');
    expect(await b1.exited).toBe(0);
    expect(b1.output()).not.toMatch(/EMFILE|ENFILE|TOO_MANY_OPEN_FILES/);
    expect(b1.output()).toContain('"broker stopped"');

    const b2 = await startUnderUlimit(dataDir);
    const c2 = await connect(b2.port);
    const fdMax2 = { n: openDescriptors(b2.child.pid!) };
    await fetchAll(c2, b2.child.pid!, fdMax2);
    expect(fdMax2.n).toBeLessThan(ULIMIT);
    c2.close();
    b2.child.kill('SIGTERM');
    expect(await b2.exited).toBe(0);
    expect(b2.output()).not.toMatch(/EMFILE|ENFILE|TOO_MANY_OPEN_FILES/);
  }, 90_000);
});
