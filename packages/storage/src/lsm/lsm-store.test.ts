import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import type { FileSystem } from '../fs.js';
import { MemoryFileSystem } from '../memory-fs.js';
import { NodeFileSystem } from '../node-fs.js';
import { type LsmOptions, LsmStore, WriteBatch } from './lsm-store.js';

const SMALL: LsmOptions = {
  memtableBytesMax: 4096,
  blockBytesTarget: 256,
  tableBytesTarget: 2048,
  l0CompactionTrigger: 2,
  levelBytesBase: 8192,
  levelSizeMultiplier: 4,
  blockCacheBytesMax: 16 * 1024,
};

async function all(store: LsmStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const kv of store.scan({})) out.set(kv.key.toString(), kv.value.toString());
  return out;
}

describe('LsmStore basics', () => {
  it('puts, gets, overwrites and deletes', async () => {
    const store = await LsmStore.open(new MemoryFileSystem(), '/db');
    expect(await store.get('a')).toBeUndefined();
    await store.put('a', '1');
    await store.put('b', '2');
    await store.put('a', '3');
    expect((await store.get('a'))?.toString()).toBe('3');
    await store.delete('b');
    expect(await store.get('b')).toBeUndefined();
    expect([...(await all(store))]).toEqual([['a', '3']]);
    await store.close();
  });

  it('applies a write batch atomically and scans prefixes and ranges in byte order', async () => {
    const store = await LsmStore.open(new MemoryFileSystem(), '/db', SMALL);
    const batch = new WriteBatch();
    for (const k of ['g/1/a', 'g/1/b', 'g/2/a', 'h', 'g/1/c', 'g/\xff'])
      batch.put(k, k.toUpperCase());
    batch.delete('g/1/c');
    await store.write(batch);
    const prefix: string[] = [];
    for await (const kv of store.scan({ prefix: 'g/1/' })) prefix.push(kv.key.toString());
    expect(prefix).toEqual(['g/1/a', 'g/1/b']);
    const range: string[] = [];
    for await (const kv of store.scan({ start: 'g/1/b', end: 'h' })) range.push(kv.key.toString());
    expect(range).toEqual(['g/1/b', 'g/2/a', 'g/\xff']);
    const limited: string[] = [];
    for await (const kv of store.scan({ prefix: 'g' }, { limit: 2 }))
      limited.push(kv.key.toString());
    expect(limited).toEqual(['g/1/a', 'g/1/b']);
    // Binary keys with 0xff bytes: a prefix of 0xff has no upper bound but still filters.
    await store.put(Buffer.from([0xff, 0xff, 1]), 'x');
    await store.put(Buffer.from([0xfe]), 'y');
    const ff: string[] = [];
    for await (const kv of store.scan({ prefix: Buffer.from([0xff]) }))
      ff.push(kv.key.toString('hex'));
    expect(ff).toEqual(['ffff01']);
    await store.close();
  });

  it('rejects oversized keys and use after close with typed errors', async () => {
    const store = await LsmStore.open(new MemoryFileSystem(), '/db', { keyBytesMax: 8 });
    await expect(store.put('123456789', 'v')).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
    await store.close();
    await expect(store.get('a')).rejects.toBeInstanceOf(StreamBusError);
  });

  it('flushes and compacts many keys, dropping overwritten values and tombstones', async () => {
    const store = await LsmStore.open(new MemoryFileSystem(), '/db', SMALL);
    const model = new Map<string, string>();
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 300; i++) {
        const k = `key-${String((i * 7919) % 500).padStart(4, '0')}`;
        if ((i + round) % 5 === 0) {
          await store.delete(k, { sync: false });
          model.delete(k);
        } else {
          const v = `v${round}-${i}-${'x'.repeat(i % 40)}`;
          await store.put(k, v, { sync: false });
          model.set(k, v);
        }
      }
    }
    await store.flush();
    await store.waitForCompactions();
    const stats = store.stats();
    expect(stats.flushCount).toBeGreaterThan(5);
    expect(stats.compactionCount).toBeGreaterThan(0);
    for (const [k, v] of model) expect((await store.get(k))?.toString()).toBe(v);
    expect(await all(store)).toEqual(new Map([...model].sort()));
    // Compaction dropped shadowed versions: far fewer entries on disk than the 1200 writes.
    expect(stats.tableBytes).toBeLessThan(1200 * 60);
    await store.close();
    const again = await LsmStore.open(store['fs' as never] as FileSystem, '/db', SMALL);
    expect(await all(again)).toEqual(new Map([...model].sort()));
    await again.close();
  });

  it('keeps snapshots and open scans consistent while writes and compactions continue', async () => {
    const store = await LsmStore.open(new MemoryFileSystem(), '/db', SMALL);
    for (let i = 0; i < 200; i++)
      await store.put(`k${String(i).padStart(3, '0')}`, 'old', { sync: false });
    const snap = store.snapshot();
    const iter = store.scan({ prefix: 'k' });
    const first = await iter.next();
    expect(first.value?.value.toString()).toBe('old');
    for (let i = 0; i < 200; i++) {
      if (i % 2 === 0) await store.delete(`k${String(i).padStart(3, '0')}`, { sync: false });
      else await store.put(`k${String(i).padStart(3, '0')}`, 'new'.repeat(20), { sync: false });
    }
    await store.flush();
    await store.waitForCompactions();
    let n = 1;
    for await (const kv of { [Symbol.asyncIterator]: () => iter }) {
      expect(kv.value.toString()).toBe('old');
      n++;
    }
    expect(n).toBe(200);
    expect((await snap.get('k000'))?.toString()).toBe('old');
    let m = 0;
    for await (const kv of snap.scan({ prefix: 'k' })) {
      expect(kv.value.toString()).toBe('old');
      m++;
    }
    expect(m).toBe(200);
    snap.release();
    expect(() => snap.get('k000')).toThrow(StreamBusError);
    expect(await store.get('k000')).toBeUndefined();
    expect((await all(store)).size).toBe(100);
    await store.close();
  });

  it('group-commits concurrent synced writes into fewer fsyncs', async () => {
    const fs = new MemoryFileSystem();
    const store = await LsmStore.open(fs, '/db');
    const before = fs.syncCount;
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.put(`k${i}`, 'v')));
    expect(fs.syncCount - before).toBeLessThan(10);
    await store.close();
  });

  it('persists across close and reopen on the real file system', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'streambus-lsm-'));
    try {
      const fs = new NodeFileSystem();
      const store = await LsmStore.open(fs, dir, SMALL);
      for (let i = 0; i < 500; i++) await store.put(`n${i}`, `value-${i}`, { sync: i % 100 === 0 });
      await store.delete('n7');
      await store.close();
      const again = await LsmStore.open(fs, dir, SMALL);
      expect((await again.get('n499'))?.toString()).toBe('value-499');
      expect(await again.get('n7')).toBeUndefined();
      expect((await all(again)).size).toBe(499);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
