// Sorted table (`NNNNNN.sst`): an immutable file of versioned entries in (key asc, seq desc)
// order, with a block index and a bloom filter. Written once by a flush or a compaction, fsynced,
// then only read. Every byte is covered by a CRC-32C, so a flipped bit or a truncation is a
// CORRUPT_DATA error naming the file, never wrong data.
//
// Format (all integers big-endian; f64 = IEEE double holding a safe integer):
//   data block*  : entry* , u32 entryPosition[count] , u32 count , u32 crc32c(all before)
//     entry      : u32 keyLength, key bytes, u8 kind (0 delete, 1 put), f64 seq,
//                  u32 valueLength, value bytes (valueLength 0 for a delete)
//   index block  : u32 blockCount, { u32 lastKeyLength, lastKey, f64 offset, u32 length }*,
//                  u32 crc32c(all before)
//   bloom block  : bloom filter bytes (see bloom.ts), u32 crc32c(all before)
//   footer (44 B): "SBLSMT01", f64 indexOffset, u32 indexLength, f64 bloomOffset,
//                  u32 bloomLength, f64 entryCount, u32 crc32c(the 40 bytes before)
// The index and bloom filter are held in memory while the table is open; data blocks are read
// on demand through a bounded `BlockCache`.
import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';
import type { FileHandle, FileSystem } from '../fs.js';
import { readFully } from '../fs.js';
import { BloomBuilder, bloomMayContain } from './bloom.js';
import { type Entry, EntryKind } from './memtable.js';

const MAGIC = Buffer.from('SBLSMT01', 'latin1');
export const TABLE_FOOTER_BYTES = 44;

export function corruptTable(path: string, what: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_DATA, `corrupt sorted table ${path}: ${what}`);
}

/** A bounded LRU of verified data blocks shared by every table of a store. */
export class BlockCache {
  private readonly blocks = new Map<string, Buffer>();
  private bytes = 0;
  constructor(readonly bytesMax: number) {}
  get(id: string): Buffer | undefined {
    const b = this.blocks.get(id);
    if (b) {
      this.blocks.delete(id);
      this.blocks.set(id, b);
    }
    return b;
  }
  set(id: string, block: Buffer): void {
    if (block.length > this.bytesMax) return;
    this.blocks.set(id, block);
    this.bytes += block.length;
    while (this.bytes > this.bytesMax) {
      const [oldId, old] = this.blocks.entries().next().value as [string, Buffer];
      this.blocks.delete(oldId);
      this.bytes -= old.length;
    }
  }
  get sizeBytes(): number {
    return this.bytes;
  }
}

/** Streams sorted entries into a new table file. Entries must arrive in (key asc, seq desc). */
export class TableWriter {
  private block: Buffer[] = [];
  private blockPositions: number[] = [];
  private blockBytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  private readonly index: Array<{ lastKey: string; offset: number; length: number }> = [];
  private readonly bloom = new BloomBuilder();
  private lastKey: string | null = null;
  entryCount = 0;
  smallest: string | null = null;
  largest: string | null = null;

  constructor(
    private readonly handle: FileHandle,
    private readonly blockBytesTarget: number,
  ) {}

  get estimatedBytes(): number {
    return this.offset + this.pendingBytes + this.blockBytes;
  }

  async add(e: Entry): Promise<void> {
    const keyBytes = Buffer.from(e.key, 'latin1');
    const value = e.value ?? Buffer.alloc(0);
    const head = Buffer.allocUnsafe(4 + keyBytes.length + 1 + 8 + 4);
    head.writeUInt32BE(keyBytes.length, 0);
    keyBytes.copy(head, 4);
    let p = 4 + keyBytes.length;
    head[p++] = e.kind;
    head.writeDoubleBE(e.seq, p);
    head.writeUInt32BE(value.length, p + 8);
    this.blockPositions.push(this.blockBytes);
    this.block.push(head);
    if (value.length > 0) this.block.push(value);
    this.blockBytes += head.length + value.length;
    if (e.key !== this.lastKey) this.bloom.add(e.key);
    this.lastKey = e.key;
    this.smallest ??= e.key;
    this.largest = e.key;
    this.entryCount++;
    if (this.blockBytes >= this.blockBytesTarget) await this.finishBlock();
  }

  private async finishBlock(): Promise<void> {
    if (this.blockPositions.length === 0) return;
    const n = this.blockPositions.length;
    const trailer = Buffer.allocUnsafe(4 * n + 8);
    for (let i = 0; i < n; i++) trailer.writeUInt32BE(this.blockPositions[i]!, 4 * i);
    trailer.writeUInt32BE(n, 4 * n);
    this.block.push(trailer);
    let crc = 0;
    for (let i = 0; i < this.block.length; i++) {
      const part = this.block[i]!;
      crc = crc32c(i === this.block.length - 1 ? part.subarray(0, 4 * n + 4) : part, crc);
    }
    trailer.writeUInt32BE(crc >>> 0, 4 * n + 4);
    const length = this.blockBytes + trailer.length;
    this.index.push({
      lastKey: this.lastKey!,
      offset: this.offset + this.pendingBytes,
      length,
    });
    this.pending.push(...this.block);
    this.pendingBytes += length;
    this.block = [];
    this.blockPositions = [];
    this.blockBytes = 0;
    if (this.pendingBytes >= 256 * 1024) await this.flushPending();
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    await this.handle.writev(this.pending, this.offset);
    this.offset += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Writes index, bloom filter and footer, and fsyncs. Returns the file size. */
  async finish(): Promise<number> {
    await this.finishBlock();
    const parts: Buffer[] = [];
    const count = Buffer.allocUnsafe(4);
    count.writeUInt32BE(this.index.length, 0);
    parts.push(count);
    for (const b of this.index) {
      const k = Buffer.from(b.lastKey, 'latin1');
      const e = Buffer.allocUnsafe(4 + k.length + 12);
      e.writeUInt32BE(k.length, 0);
      k.copy(e, 4);
      e.writeDoubleBE(b.offset, 4 + k.length);
      e.writeUInt32BE(b.length, 12 + k.length);
      parts.push(e);
    }
    const indexBody = Buffer.concat(parts);
    const indexBlock = withCrc(indexBody);
    const bloomBlock = withCrc(this.bloom.finish());
    const indexOffset = this.offset + this.pendingBytes;
    const bloomOffset = indexOffset + indexBlock.length;
    const footer = Buffer.allocUnsafe(TABLE_FOOTER_BYTES);
    MAGIC.copy(footer, 0);
    footer.writeDoubleBE(indexOffset, 8);
    footer.writeUInt32BE(indexBlock.length, 16);
    footer.writeDoubleBE(bloomOffset, 20);
    footer.writeUInt32BE(bloomBlock.length, 28);
    footer.writeDoubleBE(this.entryCount, 32);
    footer.writeUInt32BE(crc32c(footer.subarray(0, 40)) >>> 0, 40);
    this.pending.push(indexBlock, bloomBlock, footer);
    this.pendingBytes += indexBlock.length + bloomBlock.length + footer.length;
    await this.flushPending();
    await this.handle.sync();
    return this.offset;
  }
}

function withCrc(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length + 4);
  body.copy(out, 0);
  out.writeUInt32BE(crc32c(body) >>> 0, body.length);
  return out;
}

function checkCrc(path: string, what: string, block: Buffer): Buffer {
  if (block.length < 4) throw corruptTable(path, `${what} is truncated`);
  const body = block.subarray(0, block.length - 4);
  if (crc32c(body) >>> 0 !== block.readUInt32BE(block.length - 4)) {
    throw corruptTable(path, `${what} fails its CRC`);
  }
  return body;
}

/** An open table: index and bloom filter in memory, data blocks via the cache. */
export class TableReader {
  private readonly lastKeys: string[] = [];
  private readonly offsets: number[] = [];
  private readonly lengths: number[] = [];
  private bloom: Buffer = Buffer.alloc(0);
  entryCount = 0;
  /** References: the current version holds one, every iterator or get in progress one more. */
  refs = 1;
  obsolete = false;

  private constructor(
    readonly path: string,
    readonly fileNumber: number,
    private readonly handle: FileHandle,
    readonly sizeBytes: number,
    private readonly cache: BlockCache,
  ) {}

  static async open(
    fs: FileSystem,
    path: string,
    fileNumber: number,
    cache: BlockCache,
  ): Promise<TableReader> {
    const handle = await fs.open(path, 'read');
    try {
      const size = await handle.size();
      const reader = new TableReader(path, fileNumber, handle, size, cache);
      await reader.load();
      return reader;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private async load(): Promise<void> {
    const size = this.sizeBytes;
    if (size < TABLE_FOOTER_BYTES) throw corruptTable(this.path, `file too short (${size} B)`);
    const footer = await readFully(this.handle, size - TABLE_FOOTER_BYTES, TABLE_FOOTER_BYTES);
    if (!footer.subarray(0, 8).equals(MAGIC)) throw corruptTable(this.path, 'bad footer magic');
    if (crc32c(footer.subarray(0, 40)) >>> 0 !== footer.readUInt32BE(40)) {
      throw corruptTable(this.path, 'footer fails its CRC');
    }
    const indexOffset = footer.readDoubleBE(8);
    const indexLength = footer.readUInt32BE(16);
    const bloomOffset = footer.readDoubleBE(20);
    const bloomLength = footer.readUInt32BE(28);
    this.entryCount = footer.readDoubleBE(32);
    if (
      bloomOffset !== indexOffset + indexLength ||
      bloomOffset + bloomLength !== size - TABLE_FOOTER_BYTES
    ) {
      throw corruptTable(this.path, 'footer offsets do not match the file size');
    }
    const meta = await readFully(this.handle, indexOffset, indexLength + bloomLength);
    const index = checkCrc(this.path, 'index block', meta.subarray(0, indexLength));
    this.bloom = Buffer.from(checkCrc(this.path, 'bloom block', meta.subarray(indexLength)));
    const count = index.readUInt32BE(0);
    let p = 4;
    let expected = 0;
    for (let i = 0; i < count; i++) {
      const kl = index.readUInt32BE(p);
      this.lastKeys.push(index.toString('latin1', p + 4, p + 4 + kl));
      p += 4 + kl;
      const offset = index.readDoubleBE(p);
      const length = index.readUInt32BE(p + 8);
      p += 12;
      if (offset !== expected) throw corruptTable(this.path, `index entry ${i} is out of place`);
      expected = offset + length;
      this.offsets.push(offset);
      this.lengths.push(length);
    }
    if (p !== index.length || expected !== indexOffset) {
      throw corruptTable(this.path, 'index does not cover the data blocks');
    }
  }

  get blockCount(): number {
    return this.lastKeys.length;
  }
  mayContain(key: string): boolean {
    return bloomMayContain(this.bloom, key);
  }

  /** The first block whose last key is >= key (blockCount when none). */
  findBlock(key: string): number {
    let lo = 0;
    let hi = this.lastKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lastKeys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Block `i`, read and verified once, then cached. Returns its body without the CRC. */
  async block(i: number): Promise<Buffer> {
    const id = `${this.fileNumber}:${i}`;
    const cached = this.cache.get(id);
    if (cached) return cached;
    const length = this.lengths[i]!;
    const raw = await readFully(this.handle, this.offsets[i]!, length);
    if (raw.length !== length) throw corruptTable(this.path, `data block ${i} is truncated`);
    const body = checkCrc(this.path, `data block ${i}`, raw);
    if (body.length < 4 || body.readUInt32BE(body.length - 4) * 4 + 4 > body.length) {
      throw corruptTable(this.path, `data block ${i} has a bad entry count`);
    }
    this.cache.set(id, body);
    return body;
  }

  /** The newest version of `key` with seq <= seqMax, or undefined. */
  async get(key: string, seqMax: number): Promise<Entry | undefined> {
    if (!this.mayContain(key)) return undefined;
    let b = this.findBlock(key);
    // Versions of one key can span blocks: keep going while the block ends with this key.
    while (b < this.blockCount) {
      const block = await this.block(b);
      const view = new BlockView(this.path, block);
      for (let i = view.seek(key); i < view.count; i++) {
        const e = view.entry(i);
        if (e.key !== key) return undefined;
        if (e.seq <= seqMax) return e;
      }
      if (this.lastKeys[b] !== key) return undefined;
      b++;
    }
    return undefined;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads entries of one verified data block. */
export class BlockView {
  readonly count: number;
  private readonly positionsAt: number;
  constructor(
    private readonly path: string,
    private readonly block: Buffer,
  ) {
    this.count = block.readUInt32BE(block.length - 4);
    this.positionsAt = block.length - 4 - 4 * this.count;
  }

  keyAt(i: number): string {
    const p = this.block.readUInt32BE(this.positionsAt + 4 * i);
    const kl = this.block.readUInt32BE(p);
    return this.block.toString('latin1', p + 4, p + 4 + kl);
  }

  entry(i: number): Entry {
    const b = this.block;
    const p = b.readUInt32BE(this.positionsAt + 4 * i);
    if (p + 4 > this.positionsAt) throw corruptTable(this.path, 'entry position out of range');
    const kl = b.readUInt32BE(p);
    const q = p + 4 + kl;
    if (q + 13 > this.positionsAt) throw corruptTable(this.path, 'entry overruns its block');
    const key = b.toString('latin1', p + 4, q);
    const kind = b[q]!;
    const seq = b.readDoubleBE(q + 1);
    const vl = b.readUInt32BE(q + 9);
    if (q + 13 + vl > this.positionsAt || (kind !== EntryKind.PUT && kind !== EntryKind.DELETE)) {
      throw corruptTable(this.path, 'malformed entry');
    }
    return {
      key,
      seq,
      kind: kind as EntryKind,
      value: kind === EntryKind.PUT ? b.subarray(q + 13, q + 13 + vl) : null,
    };
  }

  /** The first entry index with key >= `key`. */
  seek(key: string): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keyAt(mid) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A forward cursor over a table, loading one block at a time. */
export class TableCursor {
  private blockIndex: number;
  private view: BlockView | null = null;
  private i = 0;
  entry: Entry | null = null;

  private constructor(
    private readonly table: TableReader,
    start: string,
  ) {
    this.blockIndex = table.findBlock(start);
  }

  static async open(table: TableReader, start: string): Promise<TableCursor> {
    const c = new TableCursor(table, start);
    await c.loadBlock();
    if (c.view) c.i = c.view.seek(start);
    await c.settle();
    return c;
  }

  private async loadBlock(): Promise<void> {
    this.view =
      this.blockIndex < this.table.blockCount
        ? new BlockView(this.table.path, await this.table.block(this.blockIndex))
        : null;
    this.i = 0;
  }

  private async settle(): Promise<void> {
    while (this.view && this.i >= this.view.count) {
      this.blockIndex++;
      await this.loadBlock();
    }
    this.entry = this.view ? this.view.entry(this.i) : null;
  }

  /** Advances; returns a promise only when a new block must be read. */
  next(): Promise<void> | undefined {
    this.i++;
    if (this.view && this.i < this.view.count) {
      this.entry = this.view.entry(this.i);
      return undefined;
    }
    return this.settle();
  }
}
