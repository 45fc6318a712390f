// An in-memory PartitionLogLike for the broker's own unit tests: offsets assigned by patching
// baseOffset, reads of whole batches up to a byte limit (at least one), durability that follows
// the policy (`always`: durable at append; otherwise on `flush`). It models the storage
// contract, not its file formats or crash behaviour; the storage package tests those.
import {
  ErrorCode,
  readBatchHeader,
  StreamBusError,
  setBaseOffset,
  splitBatches,
} from '@streambus/protocol';
import type { PartitionLogLike } from '../partition.js';
import type { TopicConfig } from '../topic-config.js';

interface Stored {
  baseOffset: number;
  lastOffset: number;
  bytes: Buffer;
  maxTimestamp: number;
}

export class MemoryPartitionLog implements PartitionLogLike {
  private batches: Stored[] = [];
  private start = 0;
  private end = 0;
  private durable = 0;
  private durableWaiters: Array<{ offset: number; resolve: () => void }> = [];
  appendCalls = 0;
  closed = false;

  constructor(readonly config: TopicConfig) {}

  get logStartOffset(): number {
    return this.start;
  }
  get logEndOffset(): number {
    return this.end;
  }
  get writtenEndOffset(): number {
    return this.end;
  }
  get durableEndOffset(): number {
    return this.durable;
  }
  get sizeBytes(): number {
    return this.batches.reduce((n, b) => n + b.bytes.length, 0);
  }

  async append(
    batches: Buffer,
  ): Promise<{ baseOffset: number; lastOffset: number; appendTimeMs: number }> {
    if (this.closed) throw new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, 'log closed');
    this.appendCalls++;
    const baseOffset = this.end;
    for (const { position, size } of splitBatches(batches)) {
      const h = readBatchHeader(batches, position);
      setBaseOffset(batches, position, this.end);
      const bytes = Buffer.from(batches.subarray(position, position + size));
      this.batches.push({
        baseOffset: this.end,
        lastOffset: this.end + h.lastOffsetDelta,
        bytes,
        maxTimestamp: h.maxTimestamp,
      });
      this.end += h.lastOffsetDelta + 1;
    }
    await Promise.resolve();
    if (this.config.durability === 'always') this.markDurable();
    return { baseOffset, lastOffset: this.end - 1, appendTimeMs: Date.now() };
  }

  private markDurable(): void {
    this.durable = this.end;
    const ready = this.durableWaiters.filter((w) => w.offset <= this.durable);
    this.durableWaiters = this.durableWaiters.filter((w) => w.offset > this.durable);
    for (const w of ready) w.resolve();
  }

  waitDurable(offset: number): Promise<void> {
    if (offset <= this.durable) return Promise.resolve();
    return new Promise((resolve) => this.durableWaiters.push({ offset, resolve }));
  }

  async read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }> {
    if (offset < this.start || offset > this.end) {
      throw new StreamBusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${offset} outside [${this.start}, ${this.end}]`,
      );
    }
    const out: Buffer[] = [];
    let bytes = 0;
    let next = offset;
    for (const b of this.batches) {
      if (b.lastOffset < offset) continue;
      if (out.length > 0 && bytes + b.bytes.length > maxBytes) break;
      out.push(b.bytes);
      bytes += b.bytes.length;
      next = b.lastOffset + 1;
    }
    return { data: Buffer.concat(out), nextOffset: next };
  }

  async offsetForTimestamp(timestampMs: number): Promise<number | null> {
    return (await this.findOffsetByTimestamp(timestampMs))?.offset ?? null;
  }

  /** Batch precision (the storage log decodes to the record): base offset and maxTimestamp. */
  async findOffsetByTimestamp(
    timestampMs: number,
  ): Promise<{ offset: number; timestamp: number } | null> {
    const b = this.batches.find((x) => x.maxTimestamp >= timestampMs);
    return b === undefined
      ? null
      : { offset: Math.max(b.baseOffset, this.start), timestamp: b.maxTimestamp };
  }

  async deleteRecordsBefore(offset: number): Promise<number> {
    this.start = Math.max(this.start, offset);
    this.batches = this.batches.filter((b) => b.lastOffset >= this.start);
    return this.start;
  }

  async enforceRetention(): Promise<void> {}

  /** Takes over another log's contents (a reopen of the same directory). */
  copyFrom(other: MemoryPartitionLog): void {
    this.batches = other.batches;
    this.start = other.start;
    this.end = other.end;
    this.durable = other.durable;
  }

  async flush(): Promise<void> {
    this.markDurable();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** An OpenPartitionLog over memory logs that survive "reopen" in the same process (by dir). */
export function memoryLogs(): {
  open: (dir: string, config: TopicConfig) => Promise<MemoryPartitionLog>;
  logs: Map<string, MemoryPartitionLog>;
} {
  const logs = new Map<string, MemoryPartitionLog>();
  return {
    logs,
    async open(dir, config) {
      const existing = logs.get(dir);
      const log = new MemoryPartitionLog(config);
      if (existing) log.copyFrom(existing);
      logs.set(dir, log);
      return log;
    },
  };
}
