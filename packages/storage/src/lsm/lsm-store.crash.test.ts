// Property tests of the LSM store against a Map, with crashes at random points (unsynced writes
// dropped or a random prefix kept), and corruption tests over every kind of file. Failures name
// their seed; rerun one with STORAGE_SEED=<seed>, run more with STORAGE_SEED_COUNT=<n>.
import { isStreamBusError } from '@streambus/protocol';
import { describe, it } from 'vitest';
import { type CrashMode, MemoryFileSystem, seededRandom } from '../memory-fs.js';
import { type LsmOptions, LsmStore, WriteBatch } from './lsm-store.js';

const SEEDS = process.env.STORAGE_SEED
  ? [Number(process.env.STORAGE_SEED)]
  : Array.from({ length: Number(process.env.STORAGE_SEED_COUNT ?? 60) }, (_, i) => i + 1);

const SMALL: LsmOptions = {
  memtableBytesMax: 4096,
  blockBytesTarget: 256,
  tableBytesTarget: 2048,
  l0CompactionTrigger: 2,
  levelBytesBase: 6000,
  levelSizeMultiplier: 3,
  blockCacheBytesMax: 8192,
};

type Op = { key: string; value: string | null };
type State = Map<string, string>;

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

async function withSeed(seed: number, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    throw new Error(`seed ${seed} (rerun with STORAGE_SEED=${seed}): ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function apply(state: State, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.value === null) state.delete(op.key);
    else state.set(op.key, op.value);
  }
}

function stateAfter(writes: readonly Op[][], k: number): State {
  const s: State = new Map();
  for (let i = 0; i < k; i++) apply(s, writes[i]!);
  return s;
}

async function contents(store: LsmStore): Promise<State> {
  const out: State = new Map();
  let prev: string | null = null;
  for await (const kv of store.scan({})) {
    const k = kv.key.toString('latin1');
    check(prev === null || prev < k, `scan out of order at ${k}`);
    prev = k;
    out.set(k, kv.value.toString('latin1'));
  }
  return out;
}

const same = (a: State, b: State) => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

async function runScenario(seed: number): Promise<void> {
  const rnd = seededRandom(seed * 31 + 7);
  let fs = new MemoryFileSystem({ seed });
  let store = await LsmStore.open(fs, '/db', SMALL);
  let writes: Op[][] = [];
  let durable = 0;
  const key = () => `key-${Math.floor(rnd() * 60)}`;
  const value = () => `v${Math.floor(rnd() * 1e6)}-${'y'.repeat(Math.floor(rnd() * 80))}`;

  for (let step = 0; step < 120; step++) {
    const r = rnd();
    if (r < 0.55) {
      const n = 1 + Math.floor(rnd() * 5);
      const pending: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const ops: Op[] = [];
        const batch = new WriteBatch();
        for (let j = 1 + Math.floor(rnd() * 3); j > 0; j--) {
          const k = key();
          if (rnd() < 0.25) {
            ops.push({ key: k, value: null });
            batch.delete(k);
          } else {
            const v = value();
            ops.push({ key: k, value: v });
            batch.put(k, v);
          }
        }
        writes.push(ops);
        const index = writes.length;
        const sync = rnd() < 0.4;
        pending.push(
          store.write(batch, { sync }).then(() => {
            if (sync) durable = Math.max(durable, index);
          }),
        );
      }
      if (rnd() < 0.8) await Promise.all(pending);
      else for (const p of pending) p.catch(() => undefined);
    } else if (r < 0.62) {
      await store.flush();
      durable = writes.length;
    } else if (r < 0.75) {
      // Reads against the model, through a snapshot taken now while writes continue.
      await store.flush();
      durable = writes.length;
      const snap = store.snapshot();
      const want = stateAfter(writes, writes.length);
      const more = new WriteBatch().put(key(), 'after-snapshot').delete(key());
      writes.push(
        more.ops.map((o) => ({ key: o.key, value: o.value?.toString('latin1') ?? null })),
      );
      await store.write(more, { sync: false });
      const k = key();
      check((await snap.get(k))?.toString('latin1') === want.get(k), `snapshot get ${k}`);
      const seen: State = new Map();
      for await (const kv of snap.scan({ prefix: 'key-1' }))
        seen.set(kv.key.toString(), kv.value.toString('latin1'));
      const wantPrefix = new Map([...want].filter(([kk]) => kk.startsWith('key-1')));
      check(same(seen, wantPrefix), 'snapshot prefix scan differs from the model');
      snap.release();
    } else {
      for (let t = Math.floor(rnd() * 10); t > 0; t--) await Promise.resolve();
      const mode: CrashMode = rnd() < 0.5 ? 'drop-unsynced' : 'keep-prefix';
      fs = fs.crash(mode);
      store = await LsmStore.open(fs, '/db', SMALL);
      const got = await contents(store);
      let k = -1;
      for (let c = writes.length; c >= durable; c--) {
        if (same(got, stateAfter(writes, c))) {
          k = c;
          break;
        }
      }
      check(
        k >= 0,
        `after a crash (${mode}) the store matches no prefix of >= ${durable} of ${writes.length} writes`,
      );
      writes = writes.slice(0, k);
      durable = k;
    }
  }
  const want = stateAfter(writes, writes.length);
  await store.flush();
  await store.waitForCompactions();
  check(same(await contents(store), want), 'final contents differ from the model');
  for (const [k, v] of want) check((await store.get(k))?.toString('latin1') === v, `get ${k}`);
  await store.close();
}

describe('LsmStore against a Map with crashes', () => {
  it(`equals the model for every durably written key (${SEEDS.length} seeds)`, async () => {
    for (const seed of SEEDS) await withSeed(seed, () => runScenario(seed));
  });
});

describe('LsmStore corruption', () => {
  it('a flipped bit or truncation in any table, WAL or manifest is an error naming the file, or (WAL cut) a prefix', async () => {
    for (const seed of SEEDS) {
      await withSeed(seed, async () => {
        const rnd = seededRandom(seed + 500);
        const fs = new MemoryFileSystem({ seed });
        const store = await LsmStore.open(fs, '/db', { ...SMALL, syncWrites: false });
        const writes: Op[][] = [];
        for (let i = 0; i < 150; i++) {
          const k = `k${(i * 37) % 90}`;
          const v = `value-${i}-${'z'.repeat(i % 50)}`;
          writes.push([{ key: k, value: v }]);
          await store.put(k, v);
        }
        await store.close();
        const files = fs.listFiles().filter((f) => fs.fileSize(f) > 0);
        const file = files[Math.floor(rnd() * files.length)]!;
        const at = Math.floor(rnd() * fs.fileSize(file));
        const truncate = rnd() < 0.4;
        if (truncate) fs.truncateDurably(file, at);
        else fs.flipBit(file, at, Math.floor(rnd() * 8));
        const what = `${truncate ? 'truncated' : 'flipped'} ${file} at ${at}`;
        let got: State | null = null;
        let error: unknown = null;
        try {
          const again = await LsmStore.open(fs, '/db', SMALL);
          got = await contents(again);
          for (const k of got.keys()) await again.get(k);
          await again.close();
        } catch (err) {
          error = err;
        }
        if (error !== null) {
          check(isStreamBusError(error), `${what}: untyped error ${String(error)}`);
          const text = `${(error as Error).message} ${String((error as { cause?: Error }).cause?.message)}`;
          check(
            text.includes(file.split('/').pop()!),
            `${what}: error does not name the file: ${text}`,
          );
          return;
        }
        check(file.endsWith('.wal') && truncate, `${what}: corruption went unnoticed`);
        let ok = false;
        for (let c = writes.length; c >= 0 && !ok; c--) ok = same(got!, stateAfter(writes, c));
        check(ok, `${what}: contents are no prefix of the writes`);
      });
    }
  });
});
