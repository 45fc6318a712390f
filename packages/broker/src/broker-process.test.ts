// Process-level tests: the built entry `dist/main.js` as a real child process over the real
// storage package. kill -9 during acks=all produce under the default `always` policy must lose no
// acknowledged record, and the idempotent-producer state must be rebuilt from the log.
// Requires `tsc -b packages/broker` first (as `npm test` does).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiKey,
  batchSpans,
  decodeRecordBatch,
  encodeRecordBatch,
  OffsetSpec,
} from '@streambus/protocol';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RawClient } from './testing/raw-client.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const children: ChildProcess[] = [];
const dirs: string[] = [];
const clients: RawClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  port: number;
  httpPort: number;
  exited: Promise<number | null>;
}

function startProcess(dataDir: string, extra: string[] = []): Promise<Started> {
  const child = spawn(
    process.execPath,
    [MAIN, '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '' },
    },
  );
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`broker did not start: ${out} ${err}`)),
      10_000,
    );
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"broker started"')) continue;
        const msg = JSON.parse(line) as { port: number; httpPort: number };
        clearTimeout(timer);
        resolve({ child, port: msg.port, httpPort: msg.httpPort, exited });
        return;
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code}: ${err}`));
    });
  });
}

async function connect(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

describe('broker process', () => {
  it('loses no acknowledged record to kill -9 under acks=all and durability always', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-proc-'));
    dirs.push(dataDir);
    const b1 = await startProcess(dataDir);
    const admin = await connect(b1.port);
    const created = await admin.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: 'crash', partitions: 2, replicationFactor: 1, configs: {} }],
      timeoutMs: 1000,
    });
    expect(created.topics[0]!.errorCode).toBe(0);
    const pid = (await admin.request(ApiKey.INIT_PRODUCER_ID, {})).producerId;

    const acked = new Map<string, number>(); // value -> offset (partition 0 plain, 1 idempotent)
    let lastIdempotent: { batch: Buffer; offset: number } | null = null;
    let stop = false;
    const writer = async (lane: number): Promise<void> => {
      const c = await connect(b1.port);
      let seq = 0;
      for (let i = 0; !stop; i++) {
        const partition = lane === 0 ? 0 : 1;
        const values = Array.from({ length: 5 }, (_, j) => `l${lane}-${i}-${j}`);
        const batch = encodeRecordBatch(
          values.map((v) => ({ value: Buffer.from(v) })),
          partition === 1 ? { producerId: pid, producerEpoch: 0, baseSequence: seq } : {},
        );
        const copy = Buffer.from(batch);
        let res: Awaited<ReturnType<typeof c.request<typeof ApiKey.PRODUCE>>>;
        try {
          res = await c.request(ApiKey.PRODUCE, {
            acks: -1,
            timeoutMs: 5000,
            topics: [{ name: 'crash', partitions: [{ partition, records: batch }] }],
          });
        } catch {
          return; // the broker died: this request's outcome is unknown
        }
        const p = res.topics[0]!.partitions[0]!;
        expect(p.errorCode).toBe(0);
        values.forEach((v, j) => {
          acked.set(`${partition}:${v}`, p.baseOffset + j);
        });
        if (partition === 1) {
          lastIdempotent = { batch: copy, offset: p.baseOffset };
          seq += 5;
        }
      }
    };
    const writers = [writer(0), writer(1)];
    await new Promise((r) => setTimeout(r, 700));
    b1.child.kill('SIGKILL');
    await b1.exited;
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThan(20);

    const b2 = await startProcess(dataDir);
    const c = await connect(b2.port);
    const found = new Map<string, number>();
    for (const partition of [0, 1]) {
      const lo = await c.request(ApiKey.LIST_OFFSETS, {
        topics: [{ name: 'crash', partitions: [{ partition, timestamp: OffsetSpec.LATEST }] }],
      });
      const end = lo.topics[0]!.partitions[0]!.offset;
      let offset = 0;
      while (offset < end) {
        const f = await c.request(ApiKey.FETCH, {
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: 1024 * 1024,
          topics: [
            {
              name: 'crash',
              partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 1024 * 1024 }],
            },
          ],
        });
        const bytes = f.topics[0]!.partitions[0]!.records;
        expect(bytes.length).toBeGreaterThan(0);
        for (const { position } of batchSpans(bytes)) {
          const { header, records } = decodeRecordBatch(bytes, position);
          // Control batches (each Raft term's no-op) hold no data record.
          if ((header.attributes & 0x20) === 0) {
            for (const r of records)
              found.set(`${partition}:${Buffer.from(r.value!).toString()}`, r.offset);
          }
          offset = header.baseOffset + header.lastOffsetDelta + 1;
        }
      }
    }
    for (const [value, offset] of acked) expect(found.get(value), value).toBe(offset);

    // The producer state was rebuilt from the log: a resend of the last acknowledged batch is
    // answered with its original offset and not appended again.
    const last = lastIdempotent as { batch: Buffer; offset: number } | null;
    expect(last).not.toBeNull();
    const retry = await c.request(ApiKey.PRODUCE, {
      acks: -1,
      timeoutMs: 5000,
      topics: [{ name: 'crash', partitions: [{ partition: 1, records: last!.batch }] }],
    });
    expect(retry.topics[0]!.partitions[0]).toMatchObject({
      errorCode: 0,
      baseOffset: last!.offset,
    });
    const metrics = await (await fetch(`http://127.0.0.1:${b2.httpPort}/metrics`)).text();
    expect(metrics).toMatch(
      /streambus_partition_log_end_offset\{topic="crash",partition="1"\} \d+/,
    );

    b2.child.kill('SIGTERM');
    expect(await b2.exited).toBe(0);
  });

  it('refuses a bad configuration with exit code 2 and a message naming the key', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-proc-'));
    dirs.push(dataDir);
    const child = spawn(process.execPath, [MAIN, '--data-dir', dataDir, '--listen', '7070x'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(err).toContain("listen: expected HOST:PORT, got '7070x'");
  });
});
