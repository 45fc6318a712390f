// Start-up and limit errors that must say what is wrong: a data directory that cannot be written,
// which listener's port is taken, and a batch of exactly max.message.bytes answered with
// MESSAGE_TOO_LARGE rather than a closed connection (the frame limit keeps room for it).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  ErrorCode,
  encodeRecordBatch,
  isStreamBusError,
  type StreamBusError,
} from '@streambus/protocol';
import { MemoryFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { type BrokerConfig, defaultConfig, PRODUCE_FRAME_OVERHEAD_BYTES } from './config.js';
import { RawClient } from './testing/raw-client.js';

const silent = pino({ level: 'silent' });
const root = mkdtempSync(join(tmpdir(), 'sb-startup-'));
const mounts: string[] = [];
const brokers: Broker[] = [];
const clients: RawClient[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(brokers.splice(0).map((b) => b.close()));
  await Promise.all(
    servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
  );
});
afterAll(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
function config(overrides: Partial<BrokerConfig> = {}): BrokerConfig {
  return {
    ...defaultConfig(),
    dataDir: join(root, `d${n++}`),
    listen: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    ...overrides,
  };
}

async function startError(c: BrokerConfig): Promise<StreamBusError> {
  try {
    // The real disk: the data directory checks run on it (a test file system skips them).
    brokers.push(await Broker.start(c, { logger: silent }));
  } catch (err) {
    expect(isStreamBusError(err)).toBe(true);
    return err as StreamBusError;
  }
  throw new Error('expected Broker.start to fail');
}

async function takenPort(): Promise<number> {
  const s = net.createServer();
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as net.AddressInfo).port;
}

describe('start-up errors', () => {
  it('names the listener whose port is taken: --listen and --http differ', async () => {
    const port = await takenPort();
    const native = await startError(config({ listen: { host: '127.0.0.1', port } }));
    expect(native.message).toBe(
      `cannot listen on 127.0.0.1:${port} for the native listener (--listen): address in use`,
    );
    const http = await startError(config({ http: { host: '127.0.0.1', port } }));
    expect(http.message).toBe(
      `cannot listen on 127.0.0.1:${port} for the HTTP admin port (--http): address in use`,
    );
  });

  it('reports a file where the data directory should be as not usable', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const err = await startError(config({ dataDir: file }));
    expect(err.code).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect(err.message).toBe(`data directory ${file} is not usable (${file} is not a directory)`);
    const below = join(file, 'data');
    expect((await startError(config({ dataDir: below }))).message).toBe(
      `data directory ${below} is not usable (${file} is not a directory)`,
    );
  });

  it('reports a data directory on a read-only mount as not writable', async (ctx) => {
    const mnt = join(root, 'ro');
    mkdirSync(mnt);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', mnt], {
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      ctx.skip(`cannot mount a read-only tmpfs here (${(r.stderr || r.error?.message) ?? ''})`);
      return;
    }
    mounts.push(mnt);
    // Missing below the mount: the recursive mkdir fails; existing on it: the write check fails.
    const below = join(mnt, 'data');
    const missing = await startError(config({ dataDir: below }));
    expect(missing.code).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect(missing.message).toBe(
      `data directory ${below} is not writable (cannot create it in ${mnt}: read-only file system)`,
    );
    const existing = await startError(config({ dataDir: mnt }));
    expect(existing.message).toMatch(
      new RegExp(`^data directory ${mnt} is not writable \\(.*read-only file system\\)$`),
    );
  });
});

describe('max.message.bytes and the frame limit', () => {
  const frameBytesMax = 64 * 1024;
  const most = frameBytesMax - PRODUCE_FRAME_OVERHEAD_BYTES;

  async function start(): Promise<RawClient> {
    const c = config();
    c.limits = { ...c.limits, frameBytesMax, inflightBytesMax: 1024 * 1024 };
    c.defaults = { ...c.defaults, maxMessageBytes: 32 * 1024 };
    const broker = await Broker.start(c, { logger: silent, fileSystem: new MemoryFileSystem() });
    brokers.push(broker);
    const client = await RawClient.connect(broker.address.port);
    clients.push(client);
    return client;
  }

  async function createTopic(c: RawClient, name: string, maxMessageBytes: number) {
    const res = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [
        {
          name,
          partitions: 1,
          replicationFactor: 1,
          configs: { 'max.message.bytes': String(maxMessageBytes) },
        },
      ],
      timeoutMs: 1000,
    });
    return res.topics[0];
  }

  it('refuses a topic whose max.message.bytes leaves no room for the request framing', async () => {
    const res = await createTopic(await start(), 'equal', frameBytesMax);
    expect(res?.errorCode).toBe(ErrorCode.INVALID_CONFIG);
    expect(res?.errorMessage).toContain('limits.frameBytesMax');
  });

  it('answers a record of exactly max.message.bytes with MESSAGE_TOO_LARGE and keeps the connection', async () => {
    const c = await start();
    expect((await createTopic(c, 'big', most))?.errorCode).toBe(0);
    const produce = (value: Buffer) =>
      c.request(ApiKey.PRODUCE, {
        acks: 1,
        timeoutMs: 5000,
        topics: [
          { name: 'big', partitions: [{ partition: 0, records: encodeRecordBatch([{ value }]) }] },
        ],
      });
    const tooLarge = await produce(Buffer.alloc(most, 7));
    expect(tooLarge.topics[0]?.partitions[0]?.errorCode).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    // Same connection: a batch under the limit is appended.
    const ok = await produce(Buffer.alloc(most - 200, 7));
    // At 1: the partition's first Raft term's no-op is a control batch at 0.
    expect(ok.topics[0]?.partitions[0]).toMatchObject({ errorCode: 0, baseOffset: 1 });
  });
});
