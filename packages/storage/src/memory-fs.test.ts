import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { isNotFound, readFully, removeTree, writeFileAtomic } from './fs.js';
import { MemoryFileSystem } from './memory-fs.js';
import { NodeFileSystem } from './node-fs.js';

describe('MemoryFileSystem', () => {
  it('removes a tree durably, and refuses rmdir while names inside are unsynced', async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdir('/t/1/0');
    await fs.mkdir('/keep');
    for (const path of ['/t/1/0/a', '/t/1/b', '/keep/c']) {
      await writeFileAtomic(fs, path, Buffer.from(path));
    }
    const late = await fs.open('/t/1/late', 'create');
    await late.close();
    await expect(fs.rmdir('/t/1')).rejects.toMatchObject({ cause: { code: 'ENOTEMPTY' } });
    await fs.syncDir('/t/1');
    await expect(fs.rmdir('/t/1')).rejects.toThrow(/not empty/);
    await removeTree(fs, '/t/1');
    await removeTree(fs, '/t/missing');
    expect(await fs.readdir('/t')).toEqual([]);
    const after = fs.crash('drop-unsynced');
    expect(after.listFiles()).toEqual(['/keep/c']);
    expect(await after.stat('/t/1')).toBeNull();
  });

  it('loses unsynced writes and unsynced names at a crash', async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdir('/d');
    const a = await fs.open('/d/a', 'create');
    await a.write(Buffer.from('durable'), 0);
    await a.sync();
    await fs.syncDir('/d');
    await a.write(Buffer.from('-lost'), 7);
    const b = await fs.open('/d/b', 'create');
    await b.write(Buffer.from('synced but never linked durably'), 0);
    await b.sync();
    const fs2 = fs.crash('drop-unsynced');
    expect((await fs2.readFile('/d/a')).toString()).toBe('durable');
    expect(await fs2.stat('/d/b')).toBeNull();
    await expect(a.read(Buffer.alloc(1), 0, 1, 0)).rejects.toMatchObject({
      code: ErrorCode.KAFKA_STORAGE_ERROR,
    });
    await expect(fs.readdir('/d')).rejects.toThrow(/crashed/);
  });

  it('keeps a seeded random prefix of unsynced writes, the last possibly torn', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const fs = new MemoryFileSystem({ seed });
      const f = await fs.open('/f', 'create');
      await fs.syncDir('/');
      await f.sync();
      for (let i = 0; i < 4; i++) await f.write(Buffer.from(`<${i}>`), i * 3);
      const text = (await fs.crash('keep-prefix').readFile('/f')).toString();
      expect('<0><1><2><3>'.startsWith(text)).toBe(true);
      outcomes.add(text);
    }
    expect(outcomes.size).toBeGreaterThan(4); // prefixes of different lengths, some torn
    const again = async (seed: number) => {
      const fs = new MemoryFileSystem({ seed });
      const f = await fs.open('/f', 'create');
      await fs.syncDir('/');
      for (let i = 0; i < 4; i++) await f.write(Buffer.from(`<${i}>`), i * 3);
      return (await fs.crash('keep-prefix').readFile('/f')).toString();
    };
    expect(await again(9)).toBe(await again(9)); // deterministic per seed
  });

  it('replaces files atomically and flips bits and truncates durably', async () => {
    const fs = new MemoryFileSystem();
    await writeFileAtomic(fs, '/m', Buffer.from('one'));
    await writeFileAtomic(fs, '/m', Buffer.from('two'));
    fs.flipBit('/m', 0, 0);
    fs.truncateDurably('/m', 2);
    const fs2 = fs.crash('keep-prefix');
    expect((await fs2.readFile('/m')).toString()).toBe('uw');
    expect(fs2.listFiles()).toEqual(['/m']);
    await expect(fs2.open('/nope/x', 'create')).rejects.toSatisfy(isNotFound);
    await expect(fs2.open('/m', 'create-new')).rejects.toMatchObject({
      code: ErrorCode.KAFKA_STORAGE_ERROR,
    });
  });
});

describe('NodeFileSystem', () => {
  it('writes more chunks than one writev takes, reads them back, and maps errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'streambus-fs-'));
    try {
      const fs = new NodeFileSystem();
      const h = await fs.open(join(dir, 'x'), 'create-new');
      const chunks = Array.from({ length: 2500 }, (_, i) => Buffer.from(`${i};`));
      await h.writev(chunks, 0);
      await h.sync();
      const size = await h.size();
      expect(size).toBe(Buffer.concat(chunks).length);
      expect((await readFully(h, 0, size)).equals(Buffer.concat(chunks))).toBe(true);
      await h.truncate(4);
      expect((await fs.readFile(join(dir, 'x'))).toString()).toBe('0;1;');
      await h.close();
      await h.close(); // idempotent
      // A closed raw descriptor may be reused by the OS: every call is refused, typed.
      await expect(h.write(Buffer.from('z'), 0)).rejects.toMatchObject({
        code: ErrorCode.KAFKA_STORAGE_ERROR,
      });
      await expect(h.writev([Buffer.from('a'), Buffer.from('b')], 0)).rejects.toThrow(/closed/);
      await expect(h.read(Buffer.alloc(1), 0, 1, 0)).rejects.toThrow(/closed/);
      await expect(h.sync()).rejects.toThrow(/closed/);
      expect((await fs.readFile(join(dir, 'x'))).toString()).toBe('0;1;');
      await fs.syncDir(dir);
      expect(await fs.readdir(dir)).toEqual(['x']);
      expect(await fs.stat(join(dir, 'missing'))).toBeNull();
      await expect(fs.open(join(dir, 'missing'), 'read')).rejects.toSatisfy(isNotFound);
      await expect(fs.open(join(dir, 'x'), 'create-new')).rejects.toThrow(/x/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
