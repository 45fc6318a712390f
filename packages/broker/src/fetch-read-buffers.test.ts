// The native fetch path's read buffers (storage read-buffers.ts, handlers/fetch.ts): a fetch
// response's record bytes are written from the buffers they were read into, and those buffers go
// back to the pool only once the socket has taken them. Fetches in flight together on one
// connection must still see every record's own bytes.

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  batchSpans,
  decodeRecordBatch,
  decodeResponse,
  encodeRecordBatch,
  encodeRequest,
  type FetchResponse,
  FrameParser,
} from '@streambus/protocol';
import { MemoryFileSystem, readBufferPool } from '@streambus/storage';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { defaultConfig } from './config.js';
import { RawClient } from './testing/raw-client.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-fetch-bufs-'));
let broker: Broker | null = null;
let client: RawClient | null = null;
afterAll(async () => {
  client?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

const RECORDS_PER_BATCH = 300;
const BATCHES = 32;
const VALUE_BYTES = 1024;

function recordValue(batch: number, i: number): Buffer {
  const v = Buffer.alloc(VALUE_BYTES, 97 + ((batch * 7 + i) % 26));
  v.write(`b${batch} r${i} `);
  return v;
}

/**
 * Sends `frames`, reads nothing until `meanwhile` has run, then decodes their FETCH responses in
 * order.
 */
async function slowReader(port: number, frames: Buffer[], meanwhile: () => Promise<void>) {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.pause();
  for (const f of frames) socket.write(f);
  await new Promise((r) => setTimeout(r, 200));
  await meanwhile();
  const parser = new FrameParser({ frameBytesMax: 64 * 1024 * 1024 });
  const out: FetchResponse[] = [];
  try {
    for await (const chunk of socket) {
      for (const frame of parser.push(chunk as Buffer))
        out.push(decodeResponse(ApiKey.FETCH, frame));
      if (out.length === frames.length) break;
    }
  } finally {
    socket.destroy();
  }
  return out;
}

describe('fetch read buffers', () => {
  it('reuses read buffers across fetches and every record keeps its own bytes', async () => {
    const base = defaultConfig();
    broker = await Broker.start(
      {
        ...base,
        dataDir: dir,
        listen: { host: '127.0.0.1', port: 0 },
        http: { host: '127.0.0.1', port: 0 },
        logLevel: 'silent',
      },
      { logger: pino({ level: 'silent' }), fileSystem: new MemoryFileSystem() },
    );
    const c = await RawClient.connect(broker.address.port);
    client = c;
    const created = await c.request(ApiKey.CREATE_TOPICS, {
      topics: [{ name: 'rb', partitions: 1, replicationFactor: 1, configs: {} }],
      timeoutMs: 1000,
    });
    expect(created.topics[0]!.errorCode).toBe(0);
    for (let b = 0; b < BATCHES; b++) {
      const records = Array.from({ length: RECORDS_PER_BATCH }, (_, i) => ({
        value: recordValue(b, i),
      }));
      const res = await c.request(ApiKey.PRODUCE, {
        acks: 1,
        timeoutMs: 5000,
        topics: [
          { name: 'rb', partitions: [{ partition: 0, records: encodeRecordBatch(records) }] },
        ],
      });
      expect(res.topics[0]!.partitions[0]!.errorCode).toBe(0);
    }
    const fetchBody = (fetchOffset: number) => ({
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 700 * 1024,
      topics: [
        {
          name: 'rb',
          partitions: [{ partition: 0, fetchOffset, partitionMaxBytes: 700 * 1024 }],
        },
      ],
    });
    const fetchFrame = (id: number, fetchOffset: number) =>
      encodeRequest(ApiKey.FETCH, id, fetchBody(fetchOffset));
    const before = readBufferPool.stats();
    const port = broker.address.port;
    for (let pass = 0; pass < 3; pass++) {
      // Every fetch of the pass at once (two batches each; offset 0 is the term's no-op) from a
      // reader that reads nothing for a while: its responses wait in the broker's write queue,
      // while another connection's fetches read (into those responses' buffers, had they been
      // given back before the socket took them).
      const firsts = Array.from({ length: BATCHES / 2 }, (_, i) => 1 + i * 2 * RECORDS_PER_BATCH);
      const responses = await slowReader(
        port,
        firsts.map((o, i) => fetchFrame(i + 1, o)),
        async () => {
          for (const o of firsts) {
            const other = await c.request(ApiKey.FETCH, fetchBody(o));
            expect(other.topics[0]!.partitions[0]!.records.length).toBeGreaterThan(0);
          }
        },
      );
      let seen = 0;
      for (const res of responses) {
        const p = res.topics[0]!.partitions[0]!;
        expect(p.errorCode).toBe(0);
        for (const { position } of batchSpans(p.records)) {
          const { header, records } = decodeRecordBatch(p.records, position);
          if ((header.attributes & 0x20) !== 0) continue;
          for (const r of records) {
            const b = Math.floor(seen / RECORDS_PER_BATCH);
            expect(Buffer.compare(r.value!, recordValue(b, seen % RECORDS_PER_BATCH))).toBe(0);
            seen++;
          }
        }
      }
      expect(seen).toBe(BATCHES * RECORDS_PER_BATCH);
    }
    const after = readBufferPool.stats();
    // 6 fetches of ~600 KiB per pass: later passes read into buffers earlier ones gave back.
    expect(after.reused - before.reused).toBeGreaterThan(3);
    expect(after.freeBuffers).toBeLessThanOrEqual(4);
  });
});
