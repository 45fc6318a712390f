// The partition replica's own small files, next to the segment log in the partition directory.
// Both use the checkpoint envelope (checkpoint-file.ts: magic, version, length, CRC-32C) and are
// replaced atomically (temp, fsync, rename, directory fsync): after any crash a file is the old
// one or the new one, never a mix, and a damaged one is detected.
//
//   raft-hard-state   (magic 'SBHS')  term u64, vote u32, commit u64
//   raft-snapshot     (magic 'SBSN')  kind u8 (0 compaction, 1 installed from the leader),
//                                      index u64, term u64, conf length u32 + encodeConfState,
//                                      data length u32 + data (the replica snapshot data below)
//   raft-term-runs    (magic 'SBTR')  term-runs.ts
//   raft-offsets      (magic 'SBOT')  offset-translator.ts
//
// The replica snapshot data (what travels in InstallSnapshot, `Snapshot.data`):
//   start offset u64 (the base offset of the entry at meta.index + 1: the new log start),
//   producer-state length u32 + producer state (JSON of ProducerStateTable, may be empty).
//
// Rules (the shell in replica-store.ts keeps them):
//   H1. The hard state file is written, fsynced, whenever term or vote change, before any
//       message that depends on them leaves (a vote, a campaign). The commit index in it may lag
//       (it is written with term/vote changes and on close): a lower commit after a restart is
//       safe, Raft learns the commit again.
//   S1. The snapshot file is written BEFORE the log is cut to it (delete-records below the new
//       start, or a full reset on install). Recovery finishes the cut the file describes: kind 0
//       moves the log start up to the snapshot's start offset, kind 1 resets the log there.

import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { HardState, LogIndex, NodeId, Snapshot, Term } from '@streambus/raft';
import { decodeConfState, encodeConfState } from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import {
  PayloadReader,
  PayloadWriter,
  readCheckpoint,
  writeCheckpoint,
} from './checkpoint-file.js';

export const HARD_STATE_FILE = 'raft-hard-state';
export const SNAPSHOT_FILE = 'raft-snapshot';
export const TERM_RUNS_FILE = 'raft-term-runs';
export const OFFSETS_FILE = 'raft-offsets';
const HARD_STATE_MAGIC = 'SBHS';
const SNAPSHOT_MAGIC = 'SBSN';

function corrupt(path: string, why: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_DATA, `${path}: ${why}`);
}

export async function saveHardState(fs: FileSystem, path: string, h: HardState): Promise<void> {
  const w = new PayloadWriter(8 + 4 + 8);
  w.u64(h.term);
  w.u32(h.vote);
  w.u64(h.commit);
  await writeCheckpoint(fs, path, HARD_STATE_MAGIC, w.finish());
}

/**
 * The saved hard state; null when there is no file (a fresh replica). A damaged file is
 * CORRUPT_DATA: unlike the two tables it cannot be rebuilt from the log (the vote is only here),
 * and guessing would let this node vote twice in a term.
 */
export async function loadHardState(fs: FileSystem, path: string): Promise<HardState | null> {
  const read = await readCheckpoint(fs, path, HARD_STATE_MAGIC);
  if (read.status === 'missing') return null;
  if (read.status === 'corrupt') throw corrupt(path, read.reason);
  const r = new PayloadReader(read.payload);
  const term = r.u64();
  const vote = r.u32();
  const commit = r.u64();
  if (term === undefined || vote === undefined || commit === undefined || r.remaining !== 0) {
    throw corrupt(path, 'not a hard state');
  }
  return { term: term as Term, vote: vote as NodeId, commit: commit as LogIndex };
}

export type SnapshotKind = 'compaction' | 'installed';

export interface ReplicaSnapshotData {
  /** Base offset of the entry after the snapshot: the log start once the log is cut to it. */
  readonly startOffset: number;
  /** The producer-state table at the snapshot point (JSON bytes; empty for none). */
  readonly producers: Uint8Array;
}

export function encodeSnapshotData(d: ReplicaSnapshotData): Uint8Array {
  const w = new PayloadWriter(8 + 4 + d.producers.length);
  w.u64(d.startOffset);
  w.u32(d.producers.length);
  w.raw(d.producers);
  return w.finish();
}

/** Decodes `Snapshot.data`; CORRUPT_DATA when it is not replica snapshot data. */
export function decodeSnapshotData(data: Uint8Array): ReplicaSnapshotData {
  const r = new PayloadReader(data);
  const startOffset = r.u64();
  const n = r.u32();
  const producers = n === undefined ? undefined : r.raw(n);
  if (startOffset === undefined || producers === undefined || r.remaining !== 0) {
    throw new StreamBusError(ErrorCode.CORRUPT_DATA, 'replica snapshot data is malformed');
  }
  return { startOffset, producers };
}

export async function saveSnapshot(
  fs: FileSystem,
  path: string,
  snapshot: Snapshot,
  kind: SnapshotKind,
): Promise<void> {
  const conf = encodeConfState(snapshot.meta.conf);
  const w = new PayloadWriter(1 + 8 + 8 + 4 + conf.length + 4 + snapshot.data.length);
  w.u8(kind === 'installed' ? 1 : 0);
  w.u64(snapshot.meta.index);
  w.u64(snapshot.meta.term);
  w.u32(conf.length);
  w.raw(conf);
  w.u32(snapshot.data.length);
  w.raw(snapshot.data);
  await writeCheckpoint(fs, path, SNAPSHOT_MAGIC, w.finish());
}

/** The saved snapshot, or null without a file (a fresh replica). Damaged: CORRUPT_DATA. */
export async function loadSnapshot(
  fs: FileSystem,
  path: string,
): Promise<{ snapshot: Snapshot; kind: SnapshotKind } | null> {
  const read = await readCheckpoint(fs, path, SNAPSHOT_MAGIC);
  if (read.status === 'missing') return null;
  if (read.status === 'corrupt') throw corrupt(path, read.reason);
  const r = new PayloadReader(read.payload);
  const kind = r.u8();
  const index = r.u64();
  const term = r.u64();
  const confLength = r.u32();
  const conf = confLength === undefined ? undefined : r.raw(confLength);
  const dataLength = r.u32();
  const data = dataLength === undefined ? undefined : r.raw(dataLength);
  if (
    (kind !== 0 && kind !== 1) ||
    index === undefined ||
    term === undefined ||
    conf === undefined ||
    data === undefined ||
    r.remaining !== 0
  ) {
    throw corrupt(path, 'not a replica snapshot');
  }
  let confState: Snapshot['meta']['conf'];
  try {
    confState = decodeConfState(conf);
  } catch (err) {
    throw corrupt(path, `bad configuration: ${(err as Error).message}`);
  }
  decodeSnapshotData(data); // checked now, so a damaged file is found at open
  return {
    snapshot: {
      meta: { index: index as LogIndex, term: term as Term, conf: confState },
      data: Uint8Array.from(data),
    },
    kind: kind === 1 ? 'installed' : 'compaction',
  };
}
