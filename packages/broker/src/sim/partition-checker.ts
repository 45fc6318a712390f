// The checkers of the partition replicas, independent of the code under test: they see only what
// producers were told, what consumers read and, at the end, each replica's log read back.
//
//   acked-record-lost      a record acknowledged with acks=all is not at its offset in the
//                          final committed log (Raft's promise: committed means durable on a
//                          quorum, survives any minority of crashes);
//   consumed-record-lost   a record a consumer read (below a high watermark) is not at that
//                          offset in the final log, or two consumers read different records at
//                          one offset;
//   replicas-diverge       the committed prefixes of two replicas are not byte-identical;
//   offsets-not-contiguous the final log's batches do not follow each other offset by offset,
//                          or a batch fails its CRC;
//   idempotent-duplicate   a batch of an idempotent producer (producer id, sequence) appears
//                          twice (checked when the replica deduplicates);
//   liveness               no progress within the bound after healing (recorded by the sim);
//   exception              the code under test threw out of a tick, a message or an event (an
//                          assertion, say); harness-bug: a contract rule was broken (process()
//                          rejected, an untyped error, a replica that cannot reopen).
// Violations are data, never exceptions: the run stops at the first and prints its seed.

import {
  batchSizeAt,
  decodeRecordBatch,
  readBatchHeader,
  verifyBatchCrc,
} from '@streambus/protocol';

export interface Violation {
  readonly kind:
    | 'acked-record-lost'
    | 'consumed-record-lost'
    | 'leader-read-below-acked'
    | 'replicas-diverge'
    | 'offsets-not-contiguous'
    | 'idempotent-duplicate'
    | 'liveness'
    | 'harness-bug'
    | 'exception'
    | 'metadata-diverge'
    | 'topic-not-once';
  readonly detail: string;
}

/** One batch of the final log, decoded. */
export interface LogBatch {
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly isControl: boolean;
  readonly producerId: number;
  readonly baseSequence: number;
  /** Record values (utf8) by position; control batches have none. */
  readonly ids: readonly string[];
}

/** Splits whole batches and decodes them; a damaged batch is reported as a violation. */
export function decodeLog(bytes: Buffer, violations: Violation[], what: string): LogBatch[] {
  const out: LogBatch[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    let size: number;
    try {
      const h = readBatchHeader(bytes, pos);
      size = batchSizeAt(bytes, pos);
      if (pos + size > bytes.length || !verifyBatchCrc(bytes, pos)) {
        violations.push({
          kind: 'offsets-not-contiguous',
          detail: `${what}: damaged batch at byte ${pos}`,
        });
        return out;
      }
      const d = decodeRecordBatch(bytes.subarray(pos, pos + size));
      out.push({
        baseOffset: h.baseOffset,
        lastOffset: h.baseOffset + h.lastOffsetDelta,
        isControl: d.isControl,
        producerId: h.producerId,
        baseSequence: h.baseSequence,
        ids: d.isControl
          ? []
          : d.records.map((r) => (r.value ? Buffer.from(r.value).toString('utf8') : '')),
      });
    } catch (err) {
      violations.push({
        kind: 'offsets-not-contiguous',
        detail: `${what}: undecodable batch at byte ${pos}: ${String(err)}`,
      });
      return out;
    }
    pos += size;
  }
  return out;
}

export interface Ack {
  readonly baseOffset: number;
  readonly ids: readonly string[];
  readonly atMs: number;
}

/** Everything the workload learned about one partition during the run. */
export class PartitionObservations {
  readonly acked: Ack[] = [];
  /** offset -> record id, as consumers read it. */
  readonly consumed = new Map<number, string>();
  readonly violations: Violation[] = [];

  constructor(readonly name: string) {}

  observeAck(ack: Ack): void {
    this.acked.push(ack);
  }

  observeConsumed(offset: number, id: string, node: number): void {
    const before = this.consumed.get(offset);
    if (before !== undefined && before !== id) {
      this.violations.push({
        kind: 'consumed-record-lost',
        detail: `${this.name}: offset ${offset} was read as ${before}, now node ${node} serves ${id}`,
      });
      return;
    }
    this.consumed.set(offset, id);
  }
}

/**
 * The final checks over every replica's committed log (`logs`: node -> bytes from offset 0 up to
 * its high watermark). Returns the violations found.
 */
export function checkPartition(
  obs: PartitionObservations,
  logs: ReadonlyMap<number, Buffer>,
  options: { readonly idempotent: boolean },
): Violation[] {
  const v: Violation[] = [...obs.violations];
  // 1. Byte-identical committed prefixes: every log is a prefix of the longest.
  let longest: [number, Buffer] | null = null;
  for (const entry of logs) if (!longest || entry[1].length > longest[1].length) longest = entry;
  if (!longest) return v;
  const [refNode, ref] = longest;
  for (const [node, bytes] of logs) {
    if (!ref.subarray(0, bytes.length).equals(bytes)) {
      let at = 0;
      while (at < bytes.length && bytes[at] === ref[at]) at++;
      v.push({
        kind: 'replicas-diverge',
        detail: `${obs.name}: node ${node}'s committed log differs from node ${refNode}'s at byte ${at} (of ${bytes.length})`,
      });
    }
  }
  // 2. Offsets contiguous and unique, CRCs good.
  const batches = decodeLog(ref, v, `${obs.name} node ${refNode}`);
  const final = new Map<number, string>();
  let next = batches[0]?.baseOffset ?? 0;
  if (next !== 0)
    v.push({
      kind: 'offsets-not-contiguous',
      detail: `${obs.name}: log starts at offset ${next}, not 0`,
    });
  const seqs = new Set<string>();
  const ids = new Set<string>();
  for (const b of batches) {
    if (b.baseOffset !== next) {
      v.push({
        kind: 'offsets-not-contiguous',
        detail: `${obs.name}: batch at offset ${b.baseOffset} follows end offset ${next}`,
      });
      break;
    }
    next = b.lastOffset + 1;
    b.ids.forEach((id, i) => {
      final.set(b.baseOffset + i, id);
    });
    if (b.producerId >= 0 && options.idempotent) {
      const k = `${b.producerId}/${b.baseSequence}`;
      if (seqs.has(k)) {
        v.push({
          kind: 'idempotent-duplicate',
          detail: `${obs.name}: producer ${k} appended twice (again at offset ${b.baseOffset})`,
        });
      }
      seqs.add(k);
      for (const id of b.ids) {
        if (ids.has(id))
          v.push({
            kind: 'idempotent-duplicate',
            detail: `${obs.name}: record ${id} appears twice`,
          });
        ids.add(id);
      }
    }
  }
  // 3. Every acks=all record at its offset.
  for (const a of obs.acked) {
    a.ids.forEach((id, i) => {
      const at = a.baseOffset + i;
      const got = final.get(at);
      if (got !== id) {
        v.push({
          kind: 'acked-record-lost',
          detail: `${obs.name}: ${id} acknowledged (acks=all) at offset ${at} at ${a.atMs} ms; the final log has ${got ?? 'nothing'} there`,
        });
      }
    });
  }
  // 4. Every record a consumer saw is still there.
  for (const [offset, id] of obs.consumed) {
    const got = final.get(offset);
    if (got !== id) {
      v.push({
        kind: 'consumed-record-lost',
        detail: `${obs.name}: a consumer read ${id} at offset ${offset}; the final log has ${got ?? 'nothing'} there`,
      });
    }
  }
  return v;
}
