// Adaptive batching against a real broker whose fsync is slow (issue 13): a publish loop's
// window of 1,000 per-record send() promises leaves as overlapping produce requests, so the
// broker writes one part of the window while it fsyncs another (group commit). An in-process
// broker runs on a SlowSyncFileSystem over a MemoryFileSystem, behind a probe that counts writes
// to the topic's segment file that started while an fsync of that file was running: only a
// request sent before the previous one was answered can land then. A producer with lingerMs 5
// (one request per window round) is the control: its count stays 0.

import { type Producer, StreamBusClient } from '@streambus/client';
import {
  type FileHandle,
  type FileSystem,
  ForwardingFileSystem,
  MemoryFileSystem,
  type OpenMode,
  SlowSyncFileSystem,
} from '@streambus/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { startInProcessBroker } from './harness.js';

/** Counts writes to watched segment files, and those that start while an fsync of the file runs. */
class OverlapProbe extends ForwardingFileSystem {
  overlappedWrites = 0;
  writes = 0;
  watch = '';
  private readonly syncing = new Map<string, number>();

  constructor(inner: FileSystem) {
    super(inner);
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const h = await this.inner.open(path, mode);
    const watched = (): boolean =>
      this.watch !== '' && path.includes(this.watch) && path.endsWith('.log');
    const wrote = (): void => {
      if (watched()) this.writes++;
      if (watched() && (this.syncing.get(path) ?? 0) > 0) this.overlappedWrites++;
    };
    return {
      path: h.path,
      read: (buffer, offset, length, position) => h.read(buffer, offset, length, position),
      write: (data, position) => {
        wrote();
        return h.write(data, position);
      },
      writev: (chunks, position) => {
        wrote();
        return h.writev(chunks, position);
      },
      sync: async () => {
        this.syncing.set(path, (this.syncing.get(path) ?? 0) + 1);
        try {
          await h.sync();
        } finally {
          this.syncing.set(path, this.syncing.get(path)! - 1);
        }
      },
      truncate: (size) => h.truncate(size),
      size: () => h.size(),
      close: () => h.close(),
    };
  }
}

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
});

/** `total` records through a window of 1,000 outstanding send() promises; their offsets. */
async function windowLoop(producer: Producer, topic: string, total: number): Promise<number[]> {
  const window: Array<Promise<{ offset: number }>> = [];
  const offsets: number[] = [];
  for (let i = 0; i < total; i++) {
    if (window.length === 1000) offsets.push((await window.shift()!).offset);
    window.push(producer.send({ topic, value: `record ${i} `.padEnd(100, '.') }));
  }
  for (const r of await Promise.all(window)) offsets.push(r.offset);
  return offsets;
}

describe('adaptive batching through a slow fsync', () => {
  it('a window of 1,000 send() promises leaves as overlapping requests; lingerMs 5 does not', async () => {
    const slow = new SlowSyncFileSystem(new MemoryFileSystem(), { syncDelayMs: 0 });
    const probe = new OverlapProbe(slow);
    const broker = await startInProcessBroker(probe);
    open.push(broker);
    const client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
    open.push(client);
    const admin = client.admin();
    await admin.createTopics([
      { name: 'pipe-adaptive', partitions: 1, configs: { durability: 'always' } },
      { name: 'pipe-linger', partitions: 1, configs: { durability: 'always' } },
    ]);
    // From here every fsync takes 4 ms: a request answered only after it.
    slow.syncDelayMs = 4;
    const total = 5_000;
    for (const [topic, options, overlaps] of [
      ['pipe-linger', { lingerMs: 5 }, false],
      ['pipe-adaptive', {}, true],
    ] as const) {
      const producer = client.producer(options);
      await producer.connect([topic]);
      probe.watch = '/data/topics/';
      probe.overlappedWrites = 0;
      const offsets = await windowLoop(producer, topic, total);
      await producer.close();
      // In order, once each: contiguous offsets in send order.
      expect(offsets.length).toBe(total);
      for (let i = 1; i < total; i++) expect(offsets[i]).toBe(offsets[0]! + i);
      // The probe saw the segment writes (one per request, or fewer: group commit).
      expect(probe.writes).toBeGreaterThan(0);
      if (overlaps) expect(probe.overlappedWrites).toBeGreaterThanOrEqual(2);
      else expect(probe.overlappedWrites).toBe(0);
    }
  }, 60_000);
});
