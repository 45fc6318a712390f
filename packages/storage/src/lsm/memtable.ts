// The LSM's sorted memtable: a skip list of versioned entries ordered by (key ascending, sequence
// number descending), so the newest version of a key comes first. Keys are byte strings held as
// latin1 JS strings (one char per byte), which makes `<` the same as bytewise comparison.
//
// It keeps every version (snapshots and open iterators filter by sequence number), never removes
// anything, and is frozen (made immutable) before it is flushed to a sorted table. Iterators stay
// valid while entries are added: nodes are only ever linked in, never moved or unlinked.
// It does no I/O and knows nothing of the write-ahead log.
import assert from 'node:assert/strict';

export const EntryKind = { DELETE: 0, PUT: 1 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** One version of a key, as memtables, tables and iterators pass it around. */
export interface Entry {
  readonly key: string;
  readonly seq: number;
  readonly kind: EntryKind;
  /** null for a DELETE (tombstone). */
  readonly value: Buffer | null;
}

/** (key asc, seq desc): negative when a sorts first. */
export function compareEntries(aKey: string, aSeq: number, bKey: string, bSeq: number): number {
  if (aKey < bKey) return -1;
  if (aKey > bKey) return 1;
  return bSeq - aSeq;
}

const LEVEL_MAX = 20;
/** Bytes of bookkeeping we charge per entry on top of key and value (node, arrays, strings). */
export const ENTRY_OVERHEAD_BYTES = 80;

class Node implements Entry {
  readonly next: Array<Node | null>;
  constructor(
    readonly key: string,
    readonly seq: number,
    readonly kind: EntryKind,
    readonly value: Buffer | null,
    level: number,
  ) {
    this.next = new Array<Node | null>(level).fill(null);
  }
}

export class Memtable {
  private readonly head = new Node('', Number.MAX_SAFE_INTEGER, EntryKind.DELETE, null, LEVEL_MAX);
  private level = 1;
  private rng: number;
  /** Approximate memory held, for the flush trigger. */
  bytes = 0;
  count = 0;
  frozen = false;
  /** Highest sequence number added. */
  maxSeq = 0;

  constructor(seed = 0x9e3779b9) {
    this.rng = seed >>> 0 || 1;
  }

  private randomLevel(): number {
    // xorshift32; a quarter of the nodes go up each level.
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    let level = 1;
    let bits = this.rng;
    while (level < LEVEL_MAX && (bits & 3) === 0) {
      level++;
      bits >>>= 2;
    }
    return level;
  }

  add(key: string, seq: number, kind: EntryKind, value: Buffer | null): void {
    assert.ok(!this.frozen, 'add to a frozen memtable');
    const update = new Array<Node>(LEVEL_MAX);
    let x = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let n = x.next[i];
      while (n && compareEntries(n.key, n.seq, key, seq) < 0) {
        x = n;
        n = x.next[i];
      }
      update[i] = x;
    }
    const level = this.randomLevel();
    if (level > this.level) {
      for (let i = this.level; i < level; i++) update[i] = this.head;
      this.level = level;
    }
    const node = new Node(key, seq, kind, value, level);
    for (let i = 0; i < level; i++) {
      node.next[i] = update[i]!.next[i]!;
      update[i]!.next[i] = node;
    }
    this.bytes += key.length + (value?.length ?? 0) + ENTRY_OVERHEAD_BYTES;
    this.count++;
    if (seq > this.maxSeq) this.maxSeq = seq;
  }

  /** The first node at or after (key, seq) in entry order, or null. */
  private seekNode(key: string, seq: number): Node | null {
    let x = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let n = x.next[i];
      while (n && compareEntries(n.key, n.seq, key, seq) < 0) {
        x = n;
        n = x.next[i];
      }
    }
    return x.next[0] ?? null;
  }

  /** The newest version of `key` with seq <= `seqMax`, or undefined. */
  get(key: string, seqMax: number): Entry | undefined {
    const n = this.seekNode(key, seqMax);
    return n && n.key === key ? n : undefined;
  }

  /** A cursor positioned at the first entry with key >= `start`. */
  cursor(start: string): MemtableCursor {
    return new MemtableCursor(this.seekNode(start, Number.MAX_SAFE_INTEGER));
  }
}

/** A synchronous forward cursor over a memtable (valid while entries are being added). */
export class MemtableCursor {
  constructor(private node: Node | null) {}
  get entry(): Entry | null {
    return this.node;
  }
  next(): void {
    if (this.node) this.node = this.node.next[0] ?? null;
  }
}
