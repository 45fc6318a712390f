// The durable Raft log of the controller's metadata group (issue 9): the `LogStorage` the Raft
// core reads, plus the writes a `Ready` asks for, over the storage package's `FileSystem` seam
// (so MemoryFileSystem crash tests run the real code). The metadata log is small: the whole of
// it after the latest snapshot is kept in memory (reads are synchronous, as the core needs), and
// the controller bounds it by snapshotting every N entries or bytes (`MetadataLogLimits`).
// It knows nothing about metadata records: entries and snapshot data are opaque bytes.
//
// Files in `dir` (all integers big-endian; crc = CRC-32C):
//   meta.log        append-only; frames back to back:
//                     frame := length:u32 crc:u32 (of body) body[length]
//                     body  := index:uvarint term:uvarint type:u8 data[...]
//                   An append at index i <= the last index first truncates the file at the frame
//                   of i (the Ready contract's "truncate the stored suffix"), then writes and
//                   fsyncs. Frames are contiguous by index.
//   meta.hardstate  "SBHS" version:u8 (=1) crc:u32 (of body) body := term vote commit (uvarints)
//   meta.snapshot   "SBSN" version:u8 (=1) crc:u32 (of body)
//                     body := index term voters:uvarint[] learners:uvarint[] data[...]
//                   index 0 holds the bootstrap configuration (written when the directory is new,
//                   so the initial voters are durable) and empty data.
// The hard state and the snapshot are replaced atomically (temporary file, fsync, rename,
// directory fsync: `writeFileAtomic`). Compaction rewrites meta.log the same way.
// A Ready's hard state is written only when its term or vote differs from the saved one (what
// a vote promises); a commit-only change stays in memory and reaches the file with the next
// term/vote change, an explicit `setHardState`, or `close` (Raft's commit index is volatile: a
// restart from an older saved commit re-learns it from the leader, or as leader by committing
// its first entry). That keeps a heartbeat's commit from costing three fsyncs per broker.
//
// Recovery (`open`), the only place that reads the files:
//   1. snapshot and hard state: a bad magic, version or checksum is CORRUPT_DATA naming the file
//      (both are replaced atomically, so a torn one is damage, not a crash).
//   2. meta.log: frames are read until the first incomplete frame, bad checksum, undecodable
//      body or index out of sequence; the file is cut there (a torn tail from a crash during an
//      append) and the cut is made durable.
//   3. The snapshot wins over the log (Raft §7): if the log holds the snapshot's index with the
//      snapshot's term, the entries after it are kept (and the first kept frame at or before it
//      serves as the term of firstIndex - 1); otherwise the whole log is discarded (a crash
//      between installing a leader's snapshot and clearing the old log).
//   4. The hard state's commit must be within the recovered log (entries are fsynced before the
//      hard state that commits them): a commit beyond it means committed entries were lost,
//      CORRUPT_DATA, never a silent start with a shorter log.
import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';
import type {
  ConfState,
  Entry,
  EntryType,
  HardState,
  LogIndex,
  LogStorage,
  NodeId,
  Snapshot,
  SnapshotMeta,
  Term,
} from '@streambus/raft';
import { MemoryStorage } from '@streambus/raft';
import {
  type FileHandle,
  type FileSystem,
  isNotFound,
  joinPath,
  writeFileAtomic,
} from '@streambus/storage';
import { ByteReader, ByteWriter } from './byte-codec.js';

export const METADATA_LOG_FILE = 'meta.log';
export const METADATA_HARDSTATE_FILE = 'meta.hardstate';
export const METADATA_SNAPSHOT_FILE = 'meta.snapshot';

const HARDSTATE_MAGIC = 'SBHS';
const SNAPSHOT_MAGIC = 'SBSN';
const FILE_VERSION = 1;
const FRAME_HEADER_BYTES = 8;
/** One entry's data at most (metadata entries are small; a plan of records is far below). */
export const METADATA_ENTRY_BYTES_MAX = 8 * 1024 * 1024;
/** Voters plus learners of the metadata group. */
const CONF_NODES_MAX = 65_536;

/** When the controller snapshots (and so compacts) the metadata log. */
export interface MetadataLogLimits {
  /** Snapshot once this many entries follow the latest snapshot. */
  readonly snapshotEveryEntries: number;
  /** ... or once their data exceeds this many bytes. */
  readonly snapshotEveryBytes: number;
}

export const DEFAULT_METADATA_LOG_LIMITS: MetadataLogLimits = {
  snapshotEveryEntries: 1000,
  snapshotEveryBytes: 4 * 1024 * 1024,
};

/** The writes of one Ready, in the order the contract gives. */
export interface ReadyWrites {
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

function corrupt(path: string, why: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_DATA, `metadata log file ${path} is corrupt: ${why}`);
}

function invalid(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_ARGUMENT, `metadata log: ${message}`);
}

const ascii = new TextEncoder();

/** magic version crc body: the hard-state and snapshot files. */
function encodeChecked(magic: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + body.length);
  out.set(ascii.encode(magic), 0);
  out[4] = FILE_VERSION;
  new DataView(out.buffer).setUint32(5, crc32c(body));
  out.set(body, 9);
  return out;
}

function decodeChecked(magic: string, bytes: Uint8Array, path: string): ByteReader {
  if (bytes.length < 9) throw corrupt(path, `${bytes.length} bytes is shorter than its header`);
  if (new TextDecoder().decode(bytes.subarray(0, 4)) !== magic) {
    throw corrupt(path, `magic is not ${magic}`);
  }
  if (bytes[4] !== FILE_VERSION) throw corrupt(path, `version ${bytes[4]} is not supported`);
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(5);
  const body = bytes.subarray(9);
  const computed = crc32c(body);
  if (stored !== computed) {
    throw corrupt(path, `checksum ${stored.toString(16)} does not match ${computed.toString(16)}`);
  }
  return new ByteReader(body);
}

export function encodeHardState(hs: HardState): Uint8Array {
  const w = new ByteWriter();
  w.uvarint(hs.term);
  w.uvarint(hs.vote);
  w.uvarint(hs.commit);
  return encodeChecked(HARDSTATE_MAGIC, w.finish());
}

export function decodeHardState(bytes: Uint8Array, path: string): HardState {
  const r = decodeChecked(HARDSTATE_MAGIC, bytes, path);
  try {
    const hs = {
      term: r.uvarint('term') as Term,
      vote: r.uvarint('vote', 2 ** 31 - 1) as NodeId,
      commit: r.uvarint('commit') as LogIndex,
    };
    r.expectEnd('hard state');
    return hs;
  } catch (err) {
    throw corrupt(path, (err as Error).message);
  }
}

function writeIds(w: ByteWriter, ids: readonly number[]): void {
  w.uvarint(ids.length);
  for (const id of ids) w.uvarint(id);
}

function readIds(r: ByteReader, what: string): NodeId[] {
  const n = r.count(what, CONF_NODES_MAX);
  const ids: NodeId[] = [];
  for (let i = 0; i < n; i++) ids.push(r.uvarint(what, 2 ** 31 - 1) as NodeId);
  return ids;
}

export function encodeSnapshotFile(snap: Snapshot): Uint8Array {
  const w = new ByteWriter();
  w.uvarint(snap.meta.index);
  w.uvarint(snap.meta.term);
  writeIds(w, snap.meta.conf.voters);
  writeIds(w, snap.meta.conf.learners);
  w.raw(snap.data);
  return encodeChecked(SNAPSHOT_MAGIC, w.finish());
}

export function decodeSnapshotFile(bytes: Uint8Array, path: string): Snapshot {
  const r = decodeChecked(SNAPSHOT_MAGIC, bytes, path);
  try {
    const index = r.uvarint('snapshot index') as LogIndex;
    const term = r.uvarint('snapshot term') as Term;
    const voters = readIds(r, 'voters');
    const learners = readIds(r, 'learners');
    const data = r.raw('snapshot data', r.remaining).slice();
    return { meta: { index, term, conf: { voters, learners } }, data };
  } catch (err) {
    throw corrupt(path, (err as Error).message);
  }
}

export function encodeFrame(e: Entry): Uint8Array {
  const w = new ByteWriter();
  w.uvarint(e.index);
  w.uvarint(e.term);
  w.u8(e.type);
  const head = w.finish();
  const length = head.length + e.data.length;
  const out = new Uint8Array(FRAME_HEADER_BYTES + length);
  const view = new DataView(out.buffer);
  view.setUint32(0, length);
  out.set(head, FRAME_HEADER_BYTES);
  out.set(e.data, FRAME_HEADER_BYTES + head.length);
  view.setUint32(4, crc32c(out.subarray(FRAME_HEADER_BYTES)));
  return out;
}

/** The valid frames of a log file, and where the first invalid one starts (the cut). */
export function scanFrames(bytes: Uint8Array): { entries: Entry[]; validBytes: number } {
  const entries: Entry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= bytes.length) {
    const length = view.getUint32(pos);
    if (
      length > METADATA_ENTRY_BYTES_MAX + 32 ||
      pos + FRAME_HEADER_BYTES + length > bytes.length
    ) {
      break;
    }
    const body = bytes.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + length);
    if (crc32c(body) !== view.getUint32(pos + 4)) break;
    let entry: Entry;
    try {
      const r = new ByteReader(body);
      const index = r.uvarint('index') as LogIndex;
      const term = r.uvarint('term') as Term;
      const type = r.u8('type');
      if (type > 1) break;
      entry = { index, term, type: type as EntryType, data: body.slice(r.offset) };
    } catch {
      break;
    }
    const prev = entries[entries.length - 1];
    if (prev !== undefined && entry.index !== prev.index + 1) break;
    entries.push(entry);
    pos += FRAME_HEADER_BYTES + length;
  }
  return { entries, validBytes: pos };
}

/** What `open` found and did, for logs and tests. */
export interface MetadataLogRecovery {
  /** Bytes cut from the tail of meta.log (a torn append). */
  readonly tornBytes: number;
  /** Entries dropped because the snapshot covers or replaced them (rule 3). */
  readonly entriesDiscarded: number;
}

export class MetadataLogStore implements LogStorage {
  /**
   * The in-memory view the core reads: Raft's own MemoryStorage, changed only after the file
   * write it mirrors is durable (so what the core reads is always what a restart recovers).
   */
  private readonly mem: MemoryStorage;
  /** File offset of each entry's frame, in index order from firstIndex. */
  private offsets: number[];
  private fileBytes: number;
  private dataBytes: number;
  private closed = false;
  /** The hard state in the file; `dirtyCommit` when memory holds a newer commit (see top). */
  private savedHard: HardState;
  private dirtyCommit = false;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    private handle: FileHandle,
    state: {
      hard: HardState;
      snap: Snapshot;
      ents: Entry[];
      offsets: number[];
      fileBytes: number;
    },
    readonly recovery: MetadataLogRecovery,
  ) {
    this.mem = new MemoryStorage(state.snap.meta.conf);
    this.mem.applySnapshot(state.snap);
    this.mem.append(state.ents);
    this.mem.setHardState(state.hard);
    this.savedHard = state.hard;
    this.offsets = state.offsets;
    this.fileBytes = state.fileBytes;
    this.dataBytes = sumBytes(state.ents);
  }

  /**
   * Opens (recovering) the log in `dir`, or creates it with `initialConf` as the bootstrap
   * configuration. `initialConf` is ignored for an existing directory: its configuration is in
   * its snapshot and log.
   */
  static async open(
    fs: FileSystem,
    dir: string,
    initialConf: ConfState,
  ): Promise<MetadataLogStore> {
    await fs.mkdir(dir);
    const snapPath = joinPath(dir, METADATA_SNAPSHOT_FILE);
    const hardPath = joinPath(dir, METADATA_HARDSTATE_FILE);
    const logPath = joinPath(dir, METADATA_LOG_FILE);
    let snap = await readOptional(fs, snapPath, (b) => decodeSnapshotFile(b, snapPath));
    if (snap === null) {
      snap = {
        meta: { index: 0 as LogIndex, term: 0 as Term, conf: initialConf },
        data: new Uint8Array(0),
      };
      await writeFileAtomic(fs, snapPath, encodeSnapshotFile(snap));
    }
    const hard = (await readOptional(fs, hardPath, (b) => decodeHardState(b, hardPath))) ?? {
      term: 0 as Term,
      vote: 0 as NodeId,
      commit: 0 as LogIndex,
    };
    const found = await readOptional(fs, logPath, (b) => b);
    const bytes = found ?? new Uint8Array(0);
    const scan = scanFrames(bytes);
    const tornBytes = bytes.length - scan.validBytes;
    // Rule 3: keep the log only if it holds the snapshot's entry with the snapshot's term.
    const meta = snap.meta;
    const frames = scan.entries;
    const firstFrame = frames[0]?.index ?? meta.index + 1;
    let kept: Entry[];
    if (firstFrame > meta.index + 1) {
      throw corrupt(
        logPath,
        `the log starts at ${firstFrame}, after the snapshot at ${meta.index}`,
      );
    }
    if (firstFrame === meta.index + 1) {
      kept = frames;
    } else {
      const atSnap = frames[meta.index - firstFrame];
      kept =
        atSnap !== undefined && atSnap.term === meta.term
          ? frames.slice(meta.index - firstFrame + 1)
          : [];
    }
    const lastIndex = meta.index + kept.length;
    if (hard.commit > lastIndex) {
      throw corrupt(
        logPath,
        `the hard state commits index ${hard.commit} but the log ends at ${lastIndex} (committed entries lost)`,
      );
    }
    // Rewrite the file when anything was cut or discarded, so that it holds exactly `kept`.
    const { offsets, fileBytes } =
      // (and when it is missing: creating its name durably needs the directory fsync).
      found === null || tornBytes > 0 || kept.length !== frames.length
        ? await rewriteLog(fs, dir, kept)
        : frameOffsets(kept);
    const handle = await fs.open(logPath, 'create');
    return new MetadataLogStore(
      fs,
      dir,
      handle,
      { hard, snap, ents: kept, offsets, fileBytes },
      { tornBytes, entriesDiscarded: frames.length - kept.length },
    );
  }

  // ---------------------------------------------------------------- LogStorage (reads)

  hardState(): HardState {
    return this.mem.hardState();
  }
  snapshotMeta(): SnapshotMeta {
    return this.mem.snapshotMeta();
  }
  snapshot(): Snapshot {
    return this.mem.snapshot();
  }
  firstIndex(): LogIndex {
    return this.mem.firstIndex();
  }
  lastIndex(): LogIndex {
    return this.mem.lastIndex();
  }
  term(index: LogIndex): Term | undefined {
    return this.mem.term(index);
  }
  entries(lo: LogIndex, hi: LogIndex, bytesMax: number): readonly Entry[] {
    return this.mem.entries(lo, hi, bytesMax);
  }

  /** Entries after the latest snapshot, and their data bytes (what snapshotting bounds). */
  get entryCount(): number {
    return this.mem.lastIndex() - this.mem.firstIndex() + 1;
  }
  get entryBytes(): number {
    return this.dataBytes;
  }

  // ---------------------------------------------------------------- writes

  /**
   * Persists one Ready's snapshot, entries and hard state, durably, in that order; a hard state
   * that changes only the commit is kept in memory (see top).
   */
  async write(rd: ReadyWrites): Promise<void> {
    this.checkOpen();
    if (rd.snapshot) await this.installSnapshot(rd.snapshot);
    if (rd.entries.length > 0) await this.append(rd.entries);
    const hs = rd.hardState;
    if (hs === null) return;
    if (hs.term === this.savedHard.term && hs.vote === this.savedHard.vote) {
      this.mem.setHardState(hs);
      this.dirtyCommit = hs.commit !== this.savedHard.commit;
      return;
    }
    await this.setHardState(hs);
  }

  async append(entries: readonly Entry[]): Promise<void> {
    this.checkOpen();
    if (entries.length === 0) return;
    const offset = this.mem.firstIndex() - 1;
    let first = entries[0]!.index;
    let list = entries;
    if (first <= offset) {
      // Entries at or below the compaction point are covered by the snapshot.
      const skip = offset + 1 - first;
      if (skip >= entries.length) return;
      list = entries.slice(skip);
      first = list[0]!.index;
    }
    if (first > this.lastIndex() + 1) {
      throw invalid(`append at ${first} leaves a gap after last index ${this.lastIndex()}`);
    }
    const frames: Uint8Array[] = [];
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.index !== first + i) throw invalid(`entries not contiguous at ${e.index}`);
      if (e.data.byteLength > METADATA_ENTRY_BYTES_MAX) {
        throw invalid(`entry ${e.index} of ${e.data.byteLength} bytes exceeds the maximum`);
      }
      frames.push(encodeFrame(e));
    }
    const keep = first - offset - 1; // entries kept before the new ones
    const position = keep < this.offsets.length ? this.offsets[keep]! : this.fileBytes;
    if (position < this.fileBytes) await this.handle.truncate(position);
    await this.handle.writev(frames, position);
    await this.handle.sync();
    // Durable: now the in-memory view follows.
    const last = this.mem.lastIndex();
    if (first <= last) {
      this.dataBytes -= sumBytes(this.mem.entries(first, (last + 1) as LogIndex, Infinity));
    }
    this.mem.append(list);
    this.dataBytes += sumBytes(list);
    this.offsets.length = keep;
    let pos = position;
    for (const frame of frames) {
      this.offsets.push(pos);
      pos += frame.length;
    }
    this.fileBytes = pos;
  }

  async setHardState(hs: HardState): Promise<void> {
    this.checkOpen();
    await writeFileAtomic(
      this.fs,
      joinPath(this.dir, METADATA_HARDSTATE_FILE),
      encodeHardState(hs),
    );
    this.mem.setHardState(hs);
    this.savedHard = hs;
    this.dirtyCommit = false;
  }

  /** A leader's snapshot replaces the whole log: snapshot file first, then an empty log. */
  async installSnapshot(snapshot: Snapshot): Promise<void> {
    this.checkOpen();
    const current = this.mem.snapshotMeta().index;
    if (snapshot.meta.index < current) {
      throw invalid(`snapshot at ${snapshot.meta.index} is older than ${current}`);
    }
    await this.writeSnapshotFile(snapshot);
    await this.replaceLog([]);
    this.mem.applySnapshot(snapshot);
  }

  /**
   * Records the application's snapshot at `index` (<= lastIndex), then compacts the log up to
   * it: the snapshot file is written first, so a crash in between leaves a log the snapshot
   * covers (recovery rule 3 keeps its suffix).
   */
  async createSnapshot(index: LogIndex, conf: ConfState, data: Uint8Array): Promise<Snapshot> {
    this.checkOpen();
    const current = this.mem.snapshotMeta().index;
    if (index <= current) throw invalid(`snapshot at ${index} is not newer than ${current}`);
    const term = this.term(index);
    if (term === undefined || index < this.mem.firstIndex()) {
      throw invalid(`snapshot at ${index} outside the log`);
    }
    const last = this.mem.lastIndex();
    const rest =
      index < last
        ? this.mem.entries((index + 1) as LogIndex, (last + 1) as LogIndex, Infinity)
        : [];
    const snap: Snapshot = { meta: { index, term, conf }, data };
    await this.writeSnapshotFile(snap);
    await this.replaceLog(rest);
    this.mem.createSnapshot(index, conf, data);
    this.mem.compact(index);
    return snap;
  }

  /** Saves a commit kept in memory (best effort: the commit is volatile), then closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.dirtyCommit) await this.setHardState(this.mem.hardState()).catch(() => undefined);
    this.closed = true;
    await this.handle.close();
  }

  /**
   * Closes a store whose write failed, saving nothing (its memory may be ahead of its files; a
   * reopen recovers what is durable) and ignoring a close error of the failed disk.
   */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => undefined);
  }

  private async writeSnapshotFile(snap: Snapshot): Promise<void> {
    await writeFileAtomic(
      this.fs,
      joinPath(this.dir, METADATA_SNAPSHOT_FILE),
      encodeSnapshotFile(snap),
    );
  }

  /** Atomically replaces meta.log by `rest` (the entries that follow the new snapshot). */
  private async replaceLog(rest: readonly Entry[]): Promise<void> {
    await this.handle.close();
    const { offsets, fileBytes } = await rewriteLog(this.fs, this.dir, rest);
    this.handle = await this.fs.open(joinPath(this.dir, METADATA_LOG_FILE), 'create');
    this.offsets = offsets;
    this.fileBytes = fileBytes;
    this.dataBytes = sumBytes(rest);
  }

  private checkOpen(): void {
    if (this.closed) throw new StreamBusError(ErrorCode.SHUTTING_DOWN, 'metadata log is closed');
  }
}

function sumBytes(entries: readonly Entry[]): number {
  let n = 0;
  for (const e of entries) n += e.data.byteLength;
  return n;
}

/** The decoded file at `path`, or null when there is none. */
export async function readOptional<T>(
  fs: FileSystem,
  path: string,
  decode: (bytes: Uint8Array) => T,
): Promise<T | null> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  return decode(bytes);
}

function frameOffsets(entries: readonly Entry[]): { offsets: number[]; fileBytes: number } {
  const offsets: number[] = [];
  let pos = 0;
  for (const e of entries) {
    offsets.push(pos);
    pos += encodeFrame(e).length;
  }
  return { offsets, fileBytes: pos };
}

/** Writes `entries` as the whole of meta.log, atomically. */
async function rewriteLog(
  fs: FileSystem,
  dir: string,
  entries: readonly Entry[],
): Promise<{ offsets: number[]; fileBytes: number }> {
  const frames = entries.map(encodeFrame);
  const total = frames.reduce((n, f) => n + f.length, 0);
  const bytes = new Uint8Array(total);
  const offsets: number[] = [];
  let pos = 0;
  for (const f of frames) {
    offsets.push(pos);
    bytes.set(f, pos);
    pos += f.length;
  }
  await writeFileAtomic(fs, joinPath(dir, METADATA_LOG_FILE), bytes);
  return { offsets, fileBytes: total };
}
