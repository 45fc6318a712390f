import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pacedReferenceLatencies } from './paced-reference.js';
import { spawnReference } from './suites/broker.js';

describe('paced reference (the latency rows’ same-run reference)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const mode of ['always-inline', 'none-inline'] as const) {
    it(`times every frame to its answer and writes every frame first (${mode})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sb-paced-ref-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, 'ref.log');
      const ref = await spawnReference(file, mode);
      cleanups.push(() => ref.stop());
      const latencies = await pacedReferenceLatencies(ref.port, {
        rate: 2000,
        total: 300,
        dropMs: 0,
      });
      expect(latencies).toHaveLength(300);
      for (const ms of latencies) expect(ms).toBeGreaterThan(0);
      // Answered only after the write: every frame is in the file (180 bytes each).
      expect(statSync(file).size).toBe(300 * 180);
    });
  }

  it('fails, not hangs, when the server goes away', async () => {
    let server: Server | undefined;
    const port = await new Promise<number>((resolve) => {
      server = createServer((socket) => {
        // Answers the first frame, then closes the connection.
        socket.once('data', () => {
          socket.write(Buffer.alloc(14));
          setTimeout(() => socket.destroy(), 20);
        });
      }).listen(0, '127.0.0.1', () => {
        const addr = server!.address();
        resolve(typeof addr === 'object' && addr ? addr.port : 0);
      });
    });
    cleanups.push(() => new Promise<void>((r) => server!.close(() => r())));
    await expect(
      pacedReferenceLatencies(port, { rate: 1000, total: 500, dropMs: 0 }),
    ).rejects.toThrow(/closed the connection|EPIPE|ECONNRESET/);
  });
});
