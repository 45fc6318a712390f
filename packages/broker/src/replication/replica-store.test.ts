import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import {
  type Entry,
  EntryType,
  encodeConfState,
  type LogIndex,
  type NodeId,
  type Term,
} from '@streambus/raft';
import { FaultyFileSystem, type FileSystem, MemoryFileSystem } from '@streambus/storage';
import { describe, expect, it } from 'vitest';
import {
  encodeSnapshotData,
  HARD_STATE_FILE,
  SNAPSHOT_FILE,
  saveSnapshot,
  TERM_RUNS_FILE,
} from './replica-files.js';
import { ReplicaStore } from './replica-store.js';
import { batch, DIR, REPLICA_LOG_CONFIG } from './replica-test-cluster.js';

const CONF = { voters: [1, 2, 3] as NodeId[], learners: [] };
const term = (n: number) => n as Term;
const idx = (n: number) => n as LogIndex;

function open(fs: FileSystem, messages: string[] = []): Promise<ReplicaStore> {
  return ReplicaStore.open({
    fs,
    dir: DIR,
    logConfig: REPLICA_LOG_CONFIG,
    initialConf: CONF,
    onRecovery: (m) => messages.push(m),
  });
}

/** A data entry at `index` whose batch the leader stamped for `offset`. */
function dataEntry(index: number, t: number, offset: number, tag: number): Entry {
  const b = batch(tag);
  b.writeBigInt64BE(BigInt(offset), 0);
  b.writeInt32BE(t, 12);
  return { index: idx(index), term: term(t), type: EntryType.Normal, data: b };
}

async function filled(): Promise<{ fs: MemoryFileSystem; conf: Uint8Array }> {
  const fs = new MemoryFileSystem({ seed: 5 });
  const store = await open(fs);
  const conf = encodeConfState({ voters: [1, 2, 3, 4] as NodeId[], learners: [] });
  await store.saveHardState({ term: term(1), vote: 1 as NodeId, commit: idx(0) });
  await store.persistEntries([
    { index: idx(1), term: term(1), type: EntryType.Normal, data: new Uint8Array(0) },
    { index: idx(2), term: term(1), type: EntryType.Conf, data: conf },
    dataEntry(3, 1, 2, 3), // 1 record at offset 2
    dataEntry(4, 1, 3, 5), // 3 records
  ]);
  return { fs: fs.crash('drop-unsynced'), conf };
}

describe('ReplicaStore recovery', () => {
  it('recovers entries, terms, offsets and configuration entries after a power cut', async () => {
    const { fs, conf } = await filled();
    const store = await open(fs);
    const tail = store.tail;
    expect(tail.firstIndex()).toBe(1);
    expect(tail.lastIndex()).toBe(4);
    expect(tail.term(idx(4))).toBe(1);
    expect(tail.translator.endPosition).toEqual({ index: 5, offset: 6 });
    expect(store.hardState).toMatchObject({ term: 1, vote: 1 });
    const confs = tail.confEntries(idx(1), idx(5));
    expect(confs.map((e) => e.index)).toEqual([2]);
    expect(Buffer.from(confs[0]!.data).equals(Buffer.from(conf))).toBe(true);
    expect(await store.positionAt(4)).toEqual({ index: 4, offset: 3 });
    await store.close();
  });

  it('rebuilds a missing term-run file from the log, and refuses a batch whose term was flipped', async () => {
    const { fs } = await filled();
    await fs.unlink(`${DIR}/${TERM_RUNS_FILE}`);
    await fs.syncDir(DIR);
    const messages: string[] = [];
    const store = await open(fs, messages);
    expect(messages.some((m) => m.includes('term runs rebuilt'))).toBe(true);
    expect(store.tail.term(idx(3))).toBe(1);
    await store.close();
    // partitionLeaderEpoch is outside the batch CRC: the term-run table catches a flipped bit.
    const seg = fs.listFiles().find((f) => f.startsWith(DIR) && f.endsWith('.log'))!;
    fs.flipBit(seg, 15, 1); // the first batch's epoch: 1 -> 3
    const err = await open(fs).catch((e: unknown) => e);
    expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
    expect(String((err as Error).message)).toContain('term');
  });

  it('refuses a damaged hard state file (the vote is only there) with CORRUPT_DATA', async () => {
    const { fs } = await filled();
    fs.flipBit(`${DIR}/${HARD_STATE_FILE}`, 14, 0);
    const err = await open(fs).catch((e: unknown) => e);
    expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
  });

  it('finishes a snapshot install cut short by a power cut (S1)', async () => {
    const { fs } = await filled();
    const snapshot = {
      meta: { index: idx(40), term: term(3), conf: CONF },
      data: encodeSnapshotData({ startOffset: 90, producers: new Uint8Array(0) }),
    };
    await saveSnapshot(fs, `${DIR}/${SNAPSHOT_FILE}`, snapshot, 'installed');
    const restarted = fs.crash('drop-unsynced');
    const store = await open(restarted);
    expect(store.log.logStartOffset).toBe(90);
    expect(store.log.logEndOffset).toBe(90);
    expect(store.tail.firstIndex()).toBe(41);
    expect(store.tail.lastIndex()).toBe(40);
    expect(store.tail.term(idx(40))).toBe(3);
    expect(store.hardState.term).toBeGreaterThanOrEqual(1);
    await store.close();
    // Done once: a second open keeps the log (the file now says 'compaction').
    const again = await open(restarted.crash('drop-unsynced'));
    expect(again.log.logStartOffset).toBe(90);
    await again.close();
  });

  it('fsyncs the recovered log at open: a tail a killed process left unsynced survives a later power cut', async () => {
    const fs = new MemoryFileSystem({ seed: 9 });
    const first = await open(fs);
    await first.saveHardState({ term: term(1), vote: 1 as NodeId, commit: idx(0) });
    await first.persistEntries([
      { index: idx(1), term: term(1), type: EntryType.Normal, data: new Uint8Array(0) },
      dataEntry(2, 1, 1, 3),
    ]);
    await first.close();
    // The same process writes one more entry whose fsync never happens, then is killed (no
    // close): the bytes are in the OS (this MemoryFileSystem's unsynced writes), not on disk.
    const killed = new FaultyFileSystem(fs);
    const second = await open(killed);
    killed.inject = (op, path) => (op === 'sync' && path.endsWith('.log') ? { code: 'EIO' } : null);
    const lost = await second.persistEntries([dataEntry(3, 1, 2, 5)]).catch((e: unknown) => e);
    expect(isStreamBusError(lost)).toBe(true);
    expect(killed.injected.get('sync')).toBeGreaterThan(0);
    // The restarted process reads the page cache back and reports it all durable (PartitionLog's
    // recovery fsyncs what the recovery point does not cover, log-recovery.ts step 5)...
    const restarted = await open(fs);
    expect(restarted.tail.lastIndex()).toBe(3);
    expect(restarted.log.durableEndOffset).toBe(restarted.log.logEndOffset);
    // ...which must then hold: a power cut keeps every entry it opened with.
    const afterCut = await open(fs.crash('drop-unsynced'));
    expect(afterCut.tail.lastIndex()).toBe(3);
    expect(afterCut.tail.translator.endPosition.offset).toBe(restarted.log.logEndOffset);
    await afterCut.close();
  });
});

describe('ReplicaStore writes', () => {
  it('a segment write that fails rejects writeEntries (never hangs) and its durable, and the tail does not take the entries', async () => {
    for (const inline of [false, true]) {
      for (const count of [1, 3]) {
        const fs = new FaultyFileSystem(new MemoryFileSystem({ seed: 7, inlineWrites: inline }));
        const store = await open(fs);
        await store.saveHardState({ term: term(1), vote: 1 as NodeId, commit: idx(0) });
        await store.persistEntries([dataEntry(1, 1, 0, 3)]); // tag 3: one record
        fs.inject = (op, path) =>
          op === 'write' && path.endsWith('.log') ? { code: 'EIO' } : null;
        const entries = Array.from({ length: count }, (_, k) =>
          dataEntry(2 + k, 1, 1 + k, 6 + 3 * k),
        );
        const failed = await store.writeEntries(entries).catch((e: unknown) => e);
        expect(isStreamBusError(failed), `inline ${inline}, ${count} batches`).toBe(true);
        expect(fs.injected.get('write')).toBeGreaterThan(0);
        expect(store.tail.lastIndex()).toBe(1);
        fs.inject = null;
        await store.close().catch(() => undefined);
      }
    }
  });

  it('writeEntries resolves once every batch is written and durable covers all of them', async () => {
    const fs = new MemoryFileSystem({ seed: 8, inlineWrites: true });
    const store = await open(fs);
    await store.saveHardState({ term: term(1), vote: 1 as NodeId, commit: idx(0) });
    const written: number[] = [];
    const { placements, durable } = await store.writeEntries(
      // tags 3, 5, 4: 1, 3 and 2 records
      [dataEntry(1, 1, 0, 3), dataEntry(2, 1, 1, 5), dataEntry(3, 1, 4, 4)],
      (i) => written.push(i),
    );
    expect(written).toEqual([1, 2, 3]);
    expect(placements.map((p) => p.baseOffset)).toEqual([0, 1, 4]);
    expect(store.tail.lastIndex()).toBe(3);
    await durable;
    expect(store.log.durableEndOffset).toBe(store.log.logEndOffset);
    await store.close();
  });
});
