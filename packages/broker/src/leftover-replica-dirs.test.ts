// Directories a crash-interrupted topic delete leaves (leftover-replica-dirs.ts): the rule on its
// own, and an in-process broker whose disk loses power between the delete's metadata apply and
// the removal of the topic's directory, restarted on what the disk kept.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKey, encodeRecordBatch } from '@streambus/protocol';
import { FaultyFileSystem, MemoryFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Broker } from './broker.js';
import { defaultConfig } from './config.js';
import { EMPTY_METADATA_STATE, type MetadataState } from './controller/metadata-state.js';
import { removeDeletedTopicDirs } from './leftover-replica-dirs.js';
import { fetchAll } from './testing/fetch-all.js';
import { RawClient } from './testing/raw-client.js';
import { testResources } from './testing/test-resources.js';

const { dirs, open } = testResources({ afterEach, afterAll });
const silent = pino({ level: 'silent' });

async function mkdirs(fs: MemoryFileSystem, paths: string[]): Promise<void> {
  for (const p of paths) {
    await fs.mkdir(p);
    const h = await fs.open(join(p, 'segment.log'), 'create');
    await h.write(new Uint8Array([1, 2, 3]), 0);
    await h.close();
  }
}

describe('directories of deleted topics', () => {
  it('removes only topic ids below topicIdNext that the state has no topic for', async () => {
    const fs = new MemoryFileSystem();
    await mkdirs(fs, ['/d/topics/1/0', '/d/topics/2/0', '/d/topics/3/1', '/d/topics/7/0']);
    await fs.mkdir('/d/topics/not-a-topic');
    // Topic 2 exists; 1 and 3 were deleted; 7 is beyond what this (lagging) state knows.
    const state: MetadataState = {
      ...EMPTY_METADATA_STATE,
      topicIdNext: 5,
      topics: new Map([[2, {} as never]]),
    };
    const removed = await removeDeletedTopicDirs(fs, '/d/topics', state, (id) => id === 3, silent);
    expect(removed).toEqual(['/d/topics/1']);
    expect((await fs.readdir('/d/topics')).sort()).toEqual(['2', '3', '7', 'not-a-topic']);
    // Without the held replica of 3, it goes too; a missing topics directory is no error.
    expect(await removeDeletedTopicDirs(fs, '/d/topics', state, () => false, silent)).toEqual([
      '/d/topics/3',
    ]);
    expect(await removeDeletedTopicDirs(fs, '/none', state, () => false, silent)).toEqual([]);
  });

  it('a power cut between the delete and the removal: the restarted broker removes the directory', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-leftover-'));
    dirs.push(dataDir);
    const config = {
      ...defaultConfig(),
      dataDir,
      listen: { host: '127.0.0.1', port: 0 },
      http: null,
      logLevel: 'silent' as const,
    };
    const disk = new MemoryFileSystem();
    const fs = new FaultyFileSystem(disk);
    const start = async (fileSystem: FaultyFileSystem | MemoryFileSystem) => {
      const broker = await Broker.start(config, { logger: silent, fileSystem });
      open.push(broker);
      const c = await RawClient.connect(broker.address.port);
      open.push({ close: () => c.close() });
      return { broker, c };
    };
    const topicsDir = join(dataDir, 'topics');
    const first = await start(fs);
    const create = async (c: RawClient, name: string) => {
      const r = await c.request(ApiKey.CREATE_TOPICS, {
        topics: [{ name, partitions: 2, replicationFactor: 1, configs: {} }],
        timeoutMs: 5000,
      });
      expect(r.topics[0]!.errorCode).toBe(0);
    };
    await create(first.c, 'gone');
    const goneId = (await disk.readdir(topicsDir))[0]!;
    await create(first.c, 'kept');
    const keptId = (await disk.readdir(topicsDir)).find((n) => n !== goneId)!;
    const produced = await first.c.request(ApiKey.PRODUCE, {
      acks: -1,
      timeoutMs: 5000,
      topics: [
        {
          name: 'kept',
          partitions: [{ partition: 0, records: encodeRecordBatch([{ value: Buffer.from('v') }]) }],
        },
      ],
    });
    expect(produced.topics[0]!.partitions[0]!.errorCode).toBe(0);
    // The power goes out as the broker starts removing the deleted topic's files.
    const goneDir = join(topicsDir, goneId);
    let cut = false;
    fs.inject = (op, path) => {
      if (path.startsWith(goneDir) && (op === 'unlink' || op === 'rmdir')) cut = true;
      return cut ? { code: 'EIO' } : null;
    };
    const deleted = await first.c.request(ApiKey.DELETE_TOPICS, {
      topics: ['gone'],
      timeoutMs: 5000,
    });
    expect(deleted.topics[0]!.errorCode).toBe(0);
    for (const until = Date.now() + 5000; !cut && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(cut).toBe(true);
    const restartedDisk = disk.crash();
    await first.broker.close().catch(() => undefined);
    // What the disk kept: the delete's record, and the directory.
    expect(await restartedDisk.readdir(topicsDir)).toContain(goneId);

    const second = await start(restartedDisk);
    for (const until = Date.now() + 5000; Date.now() < until; ) {
      if (!(await restartedDisk.readdir(topicsDir)).includes(goneId)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await restartedDisk.readdir(topicsDir)).sort()).toEqual([keptId]);
    expect((await restartedDisk.readdir(join(topicsDir, keptId))).sort()).toEqual(['0', '1']);
    expect((await fetchAll(second.c, 'kept')).map((r) => r.value)).toEqual(['v']);
    await second.broker.close();
  });
});
