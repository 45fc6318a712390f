// The memory side of the hostile-input bounds, measured on the built broker as a child process
// (`dist/main.js`, needs `tsc -b`): the attacks, scaled to run in a few seconds.
//   - 40 connections stalled inside 16 MiB frames (before: 584 MiB held until the 600 s idle
//     timeout): held bytes stay within limits.brokerInboundBytesMax, stalled frames are closed
//     after limits.frameStallTimeoutMs with a log line.
//   - eight 16 MiB bodies of empty msgpack maps at once (before: 3.1 GiB and a 25 s stall):
//     refused before decoding, RSS and event-loop stalls stay small.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKey, decodeResponse, ErrorCode, encodeFrame } from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { type BrokerChild, startBrokerChild } from './testing/broker-child.js';
import { RawClient } from './testing/raw-client.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(env: Record<string, string> = {}): Promise<BrokerChild> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-hostile-proc-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const b = await startBrokerChild(dir, env);
  cleanups.push(() => b.stop());
  return b;
}

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
  });
}

/** Writes `total` bytes of `frame` prefix in 1 MiB pieces, stopping where the socket pushes back. */
async function writeUntilBlocked(s: Socket, header: Buffer, total: number): Promise<void> {
  s.write(header);
  const piece = Buffer.alloc(MiB, 0x80);
  for (let sent = header.length; sent < total; sent += piece.length) {
    if (!s.write(piece.subarray(0, Math.min(piece.length, total - sent)))) {
      await Promise.race([
        new Promise((r) => s.once('drain', r)),
        new Promise((r) => setTimeout(r, 200)),
      ]);
    }
    if (s.writableLength > 2 * MiB) return; // the broker stopped reading: leave it stalled
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('broker process under hostile input', () => {
  it('holds 40 stalled 16 MiB frames within the inbound budget and closes them after the stall timeout', async () => {
    const b = await broker({
      STREAMBUS_LIMITS_BROKER_INBOUND_BYTES_MAX: String(64 * MiB),
      STREAMBUS_LIMITS_FRAME_STALL_TIMEOUT_MS: '3000',
    });
    const idleKiB = b.statusKiB('VmRSS');
    const header = Buffer.alloc(14);
    header.writeUInt32BE(16 * MiB - 4, 0);
    header.writeUInt16BE(ApiKey.PRODUCE, 4);
    const attackers = await Promise.all(Array.from({ length: 40 }, () => rawSocket(b.port)));
    await Promise.all(attackers.map((s) => writeUntilBlocked(s, header, 15 * MiB)));
    await sleep(1000);
    const heldMiB = (b.statusKiB('VmRSS') - idleKiB) / 1024;
    // 64 MiB of reserved frames + one 64 KiB read for each of the others + allocator slack.
    expect(heldMiB).toBeLessThan(150); // measured 65 MiB; 604 MiB without the budget
    // A small request is answered meanwhile.
    const c = await RawClient.connect(b.port);
    cleanups.push(() => c.close());
    expect((await c.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    // The first four (the budget's worth) stall and are closed, well before the idle timeout.
    const closed = () => attackers.filter((s) => s.destroyed || s.readableEnded).length;
    const stalled = () => b.logs.filter((l) => l.msg === 'closing connection: frame stalled');
    // The log lines come through the child's stdout pipe, maybe after the sockets close.
    const deadline = Date.now() + 10_000;
    while ((closed() < 4 || stalled().length < 4) && Date.now() < deadline) await sleep(100);
    expect(closed()).toBeGreaterThanOrEqual(4);
    expect(stalled().length).toBeGreaterThanOrEqual(4);
    expect(stalled()[0]).toMatchObject({ code: ErrorCode.FRAME_STALLED, frameBytes: 16 * MiB });
  }, 30_000);

  it('refuses eight 16 MiB bodies of empty maps at once without decoding them', async () => {
    const b = await broker();
    const idleKiB = b.statusKiB('VmRSS');
    // 160 arrays of 100,000 empty maps: 16 M objects (~1 GiB decoded) in 16 MB.
    const inner = Buffer.alloc(5 + 100_000, 0x80);
    inner[0] = 0xdd;
    inner.writeUInt32BE(100_000, 1);
    const body = Buffer.concat([Buffer.from([0xdc, 0, 160]), ...Array(160).fill(inner)]);
    const frame = encodeFrame(
      { apiKey: ApiKey.METADATA, apiVersion: 0, correlationId: 9, flags: 0 },
      body,
    );
    expect(frame.length).toBeLessThan(16 * MiB);
    const ping = await RawClient.connect(b.port);
    cleanups.push(() => ping.close());
    let pingMsMax = 0;
    let pinging = true;
    const pinger = (async () => {
      while (pinging) {
        const t0 = performance.now();
        await ping.request(ApiKey.API_VERSIONS, {});
        pingMsMax = Math.max(pingMsMax, performance.now() - t0);
        await sleep(20);
      }
    })();
    const bombers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const c = await RawClient.connect(b.port);
        cleanups.push(() => c.close());
        return c;
      }),
    );
    for (const c of bombers) c.socket.write(frame);
    const deadline = Date.now() + 20_000;
    while (!bombers.every((c) => c.frames.length === 1) && Date.now() < deadline) await sleep(20);
    pinging = false;
    await pinger;
    for (const c of bombers) {
      expect(() => decodeResponse(ApiKey.METADATA, c.frames[0]!)).toThrow(
        expect.objectContaining({
          code: ErrorCode.INVALID_REQUEST,
          message: expect.stringMatching(/^metadata: decoded size over/),
        }),
      );
    }
    // The frames themselves (8 x 16 MiB, a copy each while reassembled), nothing decoded.
    expect((b.statusKiB('VmHWM') - idleKiB) / 1024).toBeLessThan(300); // measured ~160
    expect(pingMsMax).toBeLessThan(1000);
    expect((await bombers[0]!.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
  }, 30_000);
});
