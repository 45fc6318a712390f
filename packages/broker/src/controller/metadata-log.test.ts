import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import {
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  MemoryStorage,
  type NodeId,
  type Snapshot,
  type Term,
} from '@streambus/raft';
import { type CrashMode, FaultyFileSystem, MemoryFileSystem } from '@streambus/storage';
import { describe, expect, it } from 'vitest';
import {
  decodeHardState,
  decodeSnapshotFile,
  encodeFrame,
  encodeHardState,
  encodeSnapshotFile,
  METADATA_HARDSTATE_FILE,
  METADATA_LOG_FILE,
  MetadataLogStore,
  scanFrames,
} from './metadata-log.js';

const dir = '/data/meta';
const conf: ConfState = { voters: [1, 2, 3] as NodeId[], learners: [] };
const bytes = (s: string) => new TextEncoder().encode(s);

function entry(index: number, term: number, data = `e${index}t${term}`): Entry {
  return { index: index as LogIndex, term: term as Term, type: 0, data: bytes(data) };
}
function ents(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(entry(i, term));
  return out;
}
function hs(term: number, vote: number, commit: number): HardState {
  return { term: term as Term, vote: vote as NodeId, commit: commit as LogIndex };
}

/** One step of a workload, applied to the store and to the reference MemoryStorage. */
interface Op {
  readonly name: string;
  /** A Ready whose hard state changes only the commit: not written, so a crash keeps this one. */
  readonly commitAfterCrash?: number;
  run(store: MetadataLogStore): Promise<unknown>;
  model(m: MemoryStorage): void;
}

const installed: Snapshot = {
  meta: { index: 20 as LogIndex, term: 4 as Term, conf },
  data: bytes('state at 20'),
};

const WORKLOAD: readonly Op[] = [
  {
    name: 'append 1-5',
    run: (s) => s.append(ents(1, 5, 1)),
    model: (m) => m.append(ents(1, 5, 1)),
  },
  {
    name: 'hard state',
    run: (s) => s.setHardState(hs(1, 1, 3)),
    model: (m) => m.setHardState(hs(1, 1, 3)),
  },
  {
    name: 'append 4-8 (truncates 4-5)',
    run: (s) => s.append(ents(4, 8, 2)),
    model: (m) => m.append(ents(4, 8, 2)),
  },
  {
    name: 'hard state 2',
    run: (s) => s.setHardState(hs(2, 2, 6)),
    model: (m) => m.setHardState(hs(2, 2, 6)),
  },
  {
    name: 'snapshot at 6',
    run: (s) => s.createSnapshot(6 as LogIndex, conf, bytes('state at 6')),
    model: (m) => {
      m.createSnapshot(6 as LogIndex, conf, bytes('state at 6'));
      m.compact(6 as LogIndex);
    },
  },
  {
    name: 'append 9-10',
    run: (s) => s.append(ents(9, 10, 3)),
    model: (m) => m.append(ents(9, 10, 3)),
  },
  {
    name: 'install snapshot at 20',
    run: (s) => s.write({ snapshot: installed, entries: [], hardState: hs(4, 0, 20) }),
    model: (m) => {
      m.applySnapshot(installed);
      m.setHardState(hs(4, 0, 20));
    },
  },
  {
    name: 'append 21-23 + hard state',
    run: (s) => s.write({ snapshot: null, entries: ents(21, 23, 4), hardState: hs(4, 0, 22) }),
    model: (m) => {
      m.append(ents(21, 23, 4));
      m.setHardState(hs(4, 0, 22));
    },
    // The same term and vote: the commit is kept in memory only, a power cut leaves 20.
    commitAfterCrash: 20,
  },
];

interface View {
  snap: { index: number; term: number; data: string };
  hard: HardState;
  log: string[];
}

function view(s: MemoryStorage | MetadataLogStore): View {
  const snap = s.snapshot();
  const log: string[] = [];
  for (let i = s.firstIndex(); i <= s.lastIndex(); i++) {
    const e = s.entries(i as LogIndex, (i + 1) as LogIndex, 1 << 20)[0]!;
    log.push(`${e.index}/${e.term}:${new TextDecoder().decode(e.data)}`);
  }
  return {
    snap: {
      index: snap.meta.index,
      term: snap.meta.term,
      data: new TextDecoder().decode(snap.data),
    },
    hard: s.hardState(),
    log,
  };
}

function models(): View[] {
  const m = new MemoryStorage(conf);
  const views = [view(m)];
  for (const op of WORKLOAD) {
    op.model(m);
    views.push(view(m));
  }
  return views;
}

/**
 * What a power cut during op `k` may leave: the state after op k-1 or after op k, except that
 * the log may be cut anywhere at or after the point where both agree (unacknowledged suffix),
 * and never below it: entries both states hold were acknowledged durable and must survive.
 */
function expectPlausible(got: View, before: View, after: View): void {
  const snapOk = [before.snap, after.snap].some(
    (s) => JSON.stringify(s) === JSON.stringify(got.snap),
  );
  expect(snapOk, `snapshot ${JSON.stringify(got.snap)}`).toBe(true);
  const hardOk = [before.hard, after.hard].some(
    (h) => JSON.stringify(h) === JSON.stringify(got.hard),
  );
  expect(hardOk, `hard state ${JSON.stringify(got.hard)}`).toBe(true);
  const base = got.snap.index === before.snap.index ? before : after;
  const isPrefix = (of: string[]) => got.log.every((e, i) => of[i] === e);
  expect(isPrefix(before.log) || isPrefix(after.log), `log ${got.log.join(' ')}`).toBe(true);
  if (got.snap.index === before.snap.index && got.snap.index === after.snap.index) {
    let common = 0;
    while (common < before.log.length && before.log[common] === after.log[common]) common++;
    expect(got.log.length, 'acknowledged entries lost').toBeGreaterThanOrEqual(common);
  } else {
    expect(got.log.length).toBeLessThanOrEqual(base.log.length);
  }
  expect(got.hard.commit).toBeLessThanOrEqual(got.snap.index + got.log.length);
}

describe('metadata log store', () => {
  it('file codecs round trip and refuse damage with CORRUPT_DATA naming the file', () => {
    const h = hs(7, 2, 99);
    expect(decodeHardState(encodeHardState(h), 'f')).toEqual(h);
    const snap = decodeSnapshotFile(encodeSnapshotFile(installed), 'f');
    expect(snap.meta).toEqual(installed.meta);
    expect(snap.data).toEqual(installed.data);
    const bad = encodeHardState(h);
    bad[bad.length - 1]! ^= 1;
    try {
      decodeHardState(bad, '/x/meta.hardstate');
      expect.unreachable();
    } catch (err) {
      expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
      expect((err as Error).message).toContain('/x/meta.hardstate');
    }
    const frames = Buffer.concat([encodeFrame(entry(1, 1)), encodeFrame(entry(2, 1))]);
    expect(scanFrames(frames).entries.map((e) => e.index)).toEqual([1, 2]);
    // A torn second frame: only the first survives, and the cut is where the second began.
    const torn = frames.subarray(0, frames.length - 3);
    expect(scanFrames(torn)).toMatchObject({ validBytes: encodeFrame(entry(1, 1)).length });
  });

  it('persists and recovers every kind of write (reference: MemoryStorage)', async () => {
    const views = models();
    for (let n = 1; n <= WORKLOAD.length; n++) {
      const fs = new MemoryFileSystem();
      const store = await MetadataLogStore.open(fs, dir, conf);
      for (const op of WORKLOAD.slice(0, n)) await op.run(store);
      expect(view(store)).toEqual(views[n]);
      // Acknowledged writes survive a power cut that drops everything unsynced (a commit-only
      // hard state is volatile by design).
      const reopened = await MetadataLogStore.open(fs.crash('drop-unsynced'), dir, conf);
      const op = WORKLOAD[n - 1]!;
      const want = views[n]!;
      expect(view(reopened), `after ${op.name}`).toEqual(
        op.commitAfterCrash === undefined
          ? want
          : { ...want, hard: { ...want.hard, commit: op.commitAfterCrash } },
      );
      await reopened.close();
    }
  });

  it('writes a hard state only when term or vote change; a commit-only one is saved at close', async () => {
    const fs = new MemoryFileSystem();
    const store = await MetadataLogStore.open(fs, dir, conf);
    await store.write({ snapshot: null, entries: ents(1, 3, 1), hardState: hs(1, 1, 0) });
    const file = `${dir}/meta.hardstate`;
    const saved = Buffer.from(await fs.readFile(file));
    await store.write({ snapshot: null, entries: [], hardState: hs(1, 1, 3) });
    expect(store.hardState().commit).toBe(3);
    expect(Buffer.from(await fs.readFile(file))).toEqual(saved);
    await store.close();
    const reopened = await MetadataLogStore.open(fs.crash('drop-unsynced'), dir, conf);
    expect(reopened.hardState()).toEqual(hs(1, 1, 3));
    await reopened.close();
  });

  it('a fresh directory records the initial voters durably', async () => {
    const fs = new MemoryFileSystem();
    await (await MetadataLogStore.open(fs, dir, conf)).close();
    const other = await MetadataLogStore.open(fs.crash(), dir, {
      voters: [9] as NodeId[],
      learners: [],
    });
    expect(other.snapshotMeta().conf).toEqual(conf);
    await other.close();
  });

  for (const mode of ['drop-unsynced', 'keep-prefix'] as CrashMode[]) {
    it(`survives a power cut at every file operation (${mode})`, async () => {
      const views = models();
      let cuts = 0;
      for (let k = 0; ; k++) {
        const mem = new MemoryFileSystem({ seed: k + 1 });
        const faulty = new FaultyFileSystem(mem);
        let calls = 0;
        let dead = false;
        faulty.inject = () => {
          if (dead || calls++ === k) {
            dead = true;
            return { code: 'EIO' };
          }
          return null;
        };
        let done = 0;
        let opened: MetadataLogStore | null = null;
        try {
          opened = await MetadataLogStore.open(faulty, dir, conf);
          for (const op of WORKLOAD) {
            await op.run(opened);
            done++;
          }
        } catch (err) {
          expect(isStreamBusError(err, ErrorCode.KAFKA_STORAGE_ERROR)).toBe(true);
        }
        if (!dead) {
          expect(done).toBe(WORKLOAD.length);
          break;
        }
        cuts++;
        const store = await MetadataLogStore.open(mem.crash(mode), dir, conf);
        if (opened === null) {
          expect(view(store)).toEqual(views[0]);
        } else {
          expectPlausible(view(store), views[done]!, views[Math.min(done + 1, WORKLOAD.length)]!);
        }
        // The recovered store takes the rest of the workload from a consistent point.
        await store.append([entry(store.lastIndex() + 1, 9)]);
        await store.close();
      }
      expect(cuts).toBeGreaterThan(30);
    });
  }

  it('a torn tail is cut at recovery; a commit beyond the log is refused', async () => {
    const fs = new MemoryFileSystem();
    const store = await MetadataLogStore.open(fs, dir, conf);
    await store.append(ents(1, 3, 1));
    await store.close();
    const logPath = `${dir}/${METADATA_LOG_FILE}`;
    const size = fs.fileSize(logPath);
    fs.writeDurably(logPath, size, bytes('\u0000\u0000\u0000\u0010garbage'));
    const again = await MetadataLogStore.open(fs, dir, conf);
    expect(again.lastIndex()).toBe(3);
    expect(again.recovery.tornBytes).toBe(11);
    expect(fs.fileSize(logPath)).toBe(size);
    await again.close();
    fs.writeDurably(`${dir}/${METADATA_HARDSTATE_FILE}`, 0, encodeHardState(hs(1, 1, 9)));
    fs.truncateDurably(`${dir}/${METADATA_HARDSTATE_FILE}`, encodeHardState(hs(1, 1, 9)).length);
    try {
      await MetadataLogStore.open(fs, dir, conf);
      expect.unreachable();
    } catch (err) {
      expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
      expect((err as Error).message).toMatch(/commits index 9 but the log ends at 3/);
    }
  });
});
