// Hostile network input against an in-process broker over real TCP (in-memory partition logs):
// fetch response caps and duplicate partitions, per-connection and broker-wide outbound bounds,
// msgpack bodies refused before decoding, the broker-wide inbound frame budget and the frame
// stall timeout. The RSS side of the same bounds is in hostile-net.process.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  ApiKey,
  decodeResponse,
  ErrorCode,
  encodeFrame,
  encodeRecordBatch,
  encodeRequest,
  type FetchRequest,
  isStreamBusError,
} from '@streambus/protocol';
import { MemoryFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { type BrokerConfig, defaultConfig } from './config.js';
import { RawClient } from './testing/raw-client.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const dirs: string[] = [];
const brokers: Broker[] = [];
const clients: RawClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Log lines the broker wrote, parsed. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, sink), lines };
}

async function startBroker(
  limits: Partial<BrokerConfig['limits']>,
  logger = pino({ level: 'silent' }),
): Promise<Broker> {
  const base = defaultConfig();
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-hostile-'));
  dirs.push(dataDir);
  const config: BrokerConfig = {
    ...base,
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: 'silent',
    limits: { ...base.limits, ...limits },
  };
  // A batch must leave room for the request around it in a frame (config.ts relation check).
  config.defaults.maxMessageBytes = Math.min(
    config.defaults.maxMessageBytes,
    (limits.frameBytesMax ?? MiB) - KiB,
  );
  const broker = await Broker.start(config, { logger, fileSystem: new MemoryFileSystem() });
  brokers.push(broker);
  return broker;
}

async function client(broker: Broker): Promise<RawClient> {
  const c = await RawClient.connect(broker.address.port);
  clients.push(c);
  return c;
}

async function createTopic(c: RawClient, name: string, partitions: number): Promise<void> {
  const res = await c.request(ApiKey.CREATE_TOPICS, {
    topics: [{ name, partitions, replicationFactor: 1, configs: {} }],
    timeoutMs: 1000,
  });
  expect(res.topics[0]!.errorCode).toBe(0);
}

/** One batch of `count` records of `valueBytes` each. */
function batch(count: number, valueBytes: number): Buffer {
  return encodeRecordBatch(
    Array.from({ length: count }, () => ({ value: Buffer.alloc(valueBytes, 1) })),
  );
}

async function produce(c: RawClient, topic: string, partition: number, records: Buffer) {
  const res = await c.request(ApiKey.PRODUCE, {
    acks: 1,
    timeoutMs: 5000,
    topics: [{ name: topic, partitions: [{ partition, records }] }],
  });
  expect(res.topics[0]!.partitions[0]!.errorCode).toBe(0);
}

/** The first data record's offset: each partition's first Raft term's no-op is at 0. */
const FIRST = 1;

function fetchBody(topic: string, partitions: number[], maxBytes: number): FetchRequest {
  return {
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes,
    topics: [
      {
        name: topic,
        partitions: partitions.map((partition) => ({
          partition,
          fetchOffset: FIRST,
          partitionMaxBytes: maxBytes,
        })),
      },
    ],
  };
}

function recordBytes(res: { topics: Array<{ partitions: Array<{ records: Buffer }> }> }): number {
  let n = 0;
  for (const t of res.topics) for (const p of t.partitions) n += p.records.length;
  return n;
}

async function metric(broker: Broker, name: string): Promise<number> {
  const text = await broker.metrics.registry.metrics();
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  if (!m) throw new Error(`no metric ${name}`);
  return Number(m[1]);
}

async function bytesOut(broker: Broker): Promise<number> {
  return Number((await broker.metrics.bytesOut.get()).values[0]?.value ?? 0);
}

function errorCodeOf(frame: Parameters<typeof decodeResponse>[1]): number {
  try {
    decodeResponse(frame.apiKey as 0, frame);
    return 0;
  } catch (err) {
    return isStreamBusError(err) ? err.code : -1;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('fetch responses (issue 8 item 8)', () => {
  it('refuses a fetch naming a partition twice, naming the duplicate', async () => {
    const broker = await startBroker({});
    const c = await client(broker);
    await createTopic(c, 'dup', 2);
    await produce(c, 'dup', 1, batch(10, 100));
    const body = fetchBody('dup', [0, 1, 1], MiB);
    const frame = await c.sendRaw(ApiKey.FETCH, body);
    expect(() => decodeResponse(ApiKey.FETCH, frame)).toThrow(
      expect.objectContaining({
        code: ErrorCode.INVALID_REQUEST,
        message: expect.stringContaining('dup-1'),
      }),
    );
    // The same partition under a topic named twice is a duplicate too.
    const twice = {
      ...body,
      topics: [body.topics[0]!, { name: 'dup', partitions: [body.topics[0]!.partitions[1]!] }],
    };
    const again = await c.sendRaw(ApiKey.FETCH, { ...twice });
    expect(errorCodeOf(again)).toBe(ErrorCode.INVALID_REQUEST);
    // Distinct partitions are still served.
    expect(recordBytes(await c.request(ApiKey.FETCH, fetchBody('dup', [0, 1], MiB)))).toBe(
      batch(10, 100).length,
    );
  });

  it('caps the record bytes of one response at limits.fetchBytesMax over all partitions', async () => {
    const broker = await startBroker({ fetchBytesMax: 64 * KiB });
    const c = await client(broker);
    await createTopic(c, 'cap', 8);
    const b = batch(20, 1000); // ~20 KiB
    for (let p = 0; p < 8; p++) for (let i = 0; i < 3; i++) await produce(c, 'cap', p, b);
    const all = [0, 1, 2, 3, 4, 5, 6, 7];
    const res = await c.request(ApiKey.FETCH, fetchBody('cap', all, 1024 * MiB));
    expect(recordBytes(res)).toBeLessThanOrEqual(64 * KiB);
    expect(recordBytes(res)).toBeGreaterThanOrEqual(3 * b.length);
    // A first batch larger than the cap still comes whole (a consumer must make progress).
    await createTopic(c, 'big', 1);
    const large = batch(100, 1000); // ~100 KiB
    await produce(c, 'big', 0, large);
    const first = await c.request(ApiKey.FETCH, fetchBody('big', [0], 1024 * MiB));
    expect(recordBytes(first)).toBe(large.length);
  });

  it('bounds the responses waiting for a reader that does not read, per connection and broker-wide', async () => {
    const broker = await startBroker({
      frameBytesMax: MiB,
      inflightBytesMax: 4 * MiB,
      outboundBytesMax: 2 * MiB,
      brokerOutboundBytesMax: 3 * MiB,
      fetchBytesMax: MiB,
    });
    const admin = await client(broker);
    await createTopic(admin, 'out', 1);
    for (let i = 0; i < 8; i++) await produce(admin, 'out', 0, batch(100, 1000));
    // Two readers that never read, each with 64 pipelined 1 MiB fetches (the inflight bound).
    const slow = [await client(broker), await client(broker)];
    for (const s of slow) {
      s.socket.pause();
      for (let i = 0; i < 64; i++) {
        s.socket.write(encodeRequest(ApiKey.FETCH, 100 + i, fetchBody('out', [0], MiB)));
      }
    }
    await sleep(500);
    // Unbounded, this would be 128 x ~800 KB; the kernel's socket buffers take a few MB more.
    expect(await bytesOut(broker)).toBeLessThan(12 * MiB); // 27 MB before the bound, ~5 MB after
    expect(await metric(broker, 'streambus_outbound_bytes')).toBeLessThanOrEqual(3 * MiB + MiB);
    // Others are served meanwhile: small requests at once, a fetch with what budget is left.
    expect((await admin.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    const starved = await admin.request(ApiKey.FETCH, fetchBody('out', [0], MiB));
    expect(starved.topics[0]!.partitions[0]!.errorCode).toBe(0);
    for (const s of slow) s.close();
    await waitFor(async () => (await metric(broker, 'streambus_outbound_bytes')) === 0);
    const served = await admin.request(ApiKey.FETCH, fetchBody('out', [0], MiB));
    expect(recordBytes(served)).toBeGreaterThan(0);
  });
  it('closes a reader that takes none of its responses for frameStallTimeoutMs, freeing the budget', async () => {
    const { logger, lines } = capturingLogger();
    const broker = await startBroker(
      {
        frameBytesMax: MiB,
        inflightBytesMax: 4 * MiB,
        // More than the kernel's socket buffers take, so the broker holds some of it.
        outboundBytesMax: 8 * MiB,
        brokerOutboundBytesMax: 8 * MiB,
        fetchBytesMax: MiB,
        frameStallTimeoutMs: 500,
        idleTimeoutMs: 60_000,
      },
      logger,
    );
    const admin = await client(broker);
    await createTopic(admin, 'unread', 1);
    for (let i = 0; i < 8; i++) await produce(admin, 'unread', 0, batch(100, 1000));
    const slow = await client(broker);
    slow.socket.pause();
    for (let i = 0; i < 64; i++) {
      slow.socket.write(encodeRequest(ApiKey.FETCH, 100 + i, fetchBody('unread', [0], MiB)));
    }
    // A reader that does read keeps fetching the whole time and is never closed.
    const reader = await client(broker);
    // (The slow client cannot see the close while it does not read: watch the broker's log.)
    const unread = () => lines.find((l) => l.msg === 'closing connection: responses not read');
    const t0 = Date.now();
    while (!unread() && Date.now() - t0 < 5000) {
      await reader.request(ApiKey.FETCH, fetchBody('unread', [0], MiB));
      await sleep(20);
    }
    expect(unread()).toMatchObject({ code: ErrorCode.READER_STALLED });
    expect(reader.socket.destroyed).toBe(false);
    await waitFor(async () => (await metric(broker, 'streambus_outbound_bytes')) === 0);
    // With the budget back, the reader gets records again.
    expect(
      recordBytes(await reader.request(ApiKey.FETCH, fetchBody('unread', [0], MiB))),
    ).toBeGreaterThan(0);
  });
});

describe('msgpack bodies (issue 8 item 9)', () => {
  it('refuses bodies that decode too large or nest too deep before decoding them, and keeps the connection', async () => {
    const broker = await startBroker({ requestDecodedBytesMax: MiB });
    const c = await client(broker);
    // 8 arrays of 60,000 empty maps: 480 k objects (~30 MB decoded) in a 480 KB body.
    const inner = Buffer.alloc(5 + 60_000, 0x80);
    inner[0] = 0xdd;
    inner.writeUInt32BE(60_000, 1);
    const bomb = Buffer.concat([Buffer.from([0x98]), ...Array(8).fill(inner)]);
    const deep = Buffer.alloc(10_001, 0x91);
    deep[10_000] = 0xc0;
    let id = 500;
    for (const body of [bomb, deep]) {
      c.socket.write(
        encodeFrame(
          { apiKey: ApiKey.METADATA, apiVersion: 0, correlationId: id++, flags: 0 },
          body,
        ),
      );
    }
    await waitFor(() => c.frames.length === 2);
    const messages = c.frames.map((f) => {
      try {
        decodeResponse(ApiKey.METADATA, f);
        return 'ok';
      } catch (err) {
        expect(isStreamBusError(err, ErrorCode.INVALID_REQUEST)).toBe(true);
        return (err as Error).message;
      }
    });
    expect(messages[0]).toMatch(/^metadata: decoded size over 1048576 bytes/);
    expect(messages[1]).toMatch(/^metadata: msgpack nesting deeper than 16/);
    expect((await c.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
  });
});

describe('inbound frames (issue 8 item 10)', () => {
  it('reserves partially received frames broker-wide, pauses the rest, still answers small requests, and closes stalled frames', async () => {
    const { logger, lines } = capturingLogger();
    const broker = await startBroker(
      {
        frameBytesMax: 512 * KiB,
        inflightBytesMax: MiB,
        brokerInboundBytesMax: MiB,
        frameStallTimeoutMs: 600,
        idleTimeoutMs: 60_000,
      },
      logger,
    );
    // Six connections each start a 512 KiB frame, send 100 KiB of it, and stall.
    const header = Buffer.alloc(14);
    header.writeUInt32BE(512 * KiB - 4, 0);
    header.writeUInt16BE(ApiKey.PRODUCE, 4);
    const stalled = await Promise.all(Array.from({ length: 6 }, () => client(broker)));
    for (const s of stalled) s.socket.write(Buffer.concat([header, Buffer.alloc(100 * KiB)]));
    await waitFor(
      async () => (await metric(broker, 'streambus_inbound_waiting_connections')) === 4,
    );
    expect(await metric(broker, 'streambus_inbound_frame_bytes')).toBe(MiB);
    // A request in one socket read needs no reservation: served while the budget is spent.
    const good = await client(broker);
    const t0 = Date.now();
    expect((await good.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(300);
    // The two holding the budget stall; they are closed well before idleTimeoutMs.
    await waitFor(() => stalled.filter((s) => s.socket.destroyed).length >= 2, 3000);
    expect(lines.some((l) => l.msg === 'closing connection: frame stalled')).toBe(true);
    const line = lines.find((l) => l.msg === 'closing connection: frame stalled')!;
    expect(line).toMatchObject({ code: ErrorCode.FRAME_STALLED, frameBytes: 512 * KiB });
    // The waiting ones got the budget in turn (FIFO) and were closed for the same stall.
    await waitFor(() => stalled.every((s) => s.socket.destroyed), 5000);
    await waitFor(async () => (await metric(broker, 'streambus_inbound_frame_bytes')) === 0);
    expect(await metric(broker, 'streambus_inbound_waiting_connections')).toBe(0);
    expect((await good.request(ApiKey.API_VERSIONS, {})).errorCode).toBe(0);
  });

  it('lets a frame that waited for the budget finish once it is granted', async () => {
    const broker = await startBroker({
      frameBytesMax: 512 * KiB,
      inflightBytesMax: MiB,
      brokerInboundBytesMax: 512 * KiB,
      frameStallTimeoutMs: 400,
      idleTimeoutMs: 60_000,
    });
    const admin = await client(broker);
    await createTopic(admin, 'wait', 1);
    const holder = await client(broker);
    const header = Buffer.alloc(14);
    header.writeUInt32BE(512 * KiB - 4, 0);
    holder.socket.write(Buffer.concat([header, Buffer.alloc(64 * KiB)]));
    await waitFor(async () => (await metric(broker, 'streambus_inbound_frame_bytes')) > 0);
    // A real 300 KB produce frame: it must wait, then go through once the holder is reaped.
    const producer = await client(broker);
    const records = batch(300, 1000);
    const res = await producer.request(ApiKey.PRODUCE, {
      acks: 1,
      timeoutMs: 5000,
      topics: [{ name: 'wait', partitions: [{ partition: 0, records }] }],
    });
    expect(res.topics[0]!.partitions[0]!.errorCode).toBe(0);
    expect(holder.socket.destroyed).toBe(true);
  });
});
