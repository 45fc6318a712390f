import { decodeRecordBatch, verifyBatchCrc } from '@streambus/protocol';
import {
  type Entry,
  EntryType,
  encodeConfState,
  type LogIndex,
  type NodeId,
  type Term,
} from '@streambus/raft';
import { describe, expect, it } from 'vitest';
import { batchToSource, encodeControlEntry, isControlBatch } from './control-entry.js';
import { batch } from './replica-test-cluster.js';

const entry = (type: 0 | 1, data: Uint8Array): Entry => ({
  index: 5 as LogIndex,
  term: 3 as Term,
  type,
  data,
});

describe('replica control batches', () => {
  it('stores the no-op and a Conf entry as deterministic one-record control batches', () => {
    const conf = encodeConfState({ voters: [1, 2, 3] as NodeId[], learners: [] });
    for (const e of [entry(EntryType.Normal, new Uint8Array(0)), entry(EntryType.Conf, conf)]) {
      const a = encodeControlEntry(42, 3 as Term, e);
      const b = encodeControlEntry(42, 3 as Term, e);
      expect(a.equals(b)).toBe(true);
      expect(verifyBatchCrc(a, 0)).toBe(true);
      expect(isControlBatch(a)).toBe(true);
      const d = decodeRecordBatch(a);
      expect(d.isControl).toBe(true);
      expect(d.header.baseOffset).toBe(42);
      expect(d.header.partitionLeaderEpoch).toBe(3);
      expect(d.records.length).toBe(1);
      const back = batchToSource(a, 0);
      expect(back).toMatchObject({ baseOffset: 42, recordCount: 1, term: 3, type: e.type });
      expect(Buffer.from(back.data).equals(Buffer.from(e.data))).toBe(true);
    }
  });

  it('reads a data batch as a Normal entry over the same bytes', () => {
    const b = batch(4, 3);
    const s = batchToSource(b, 0);
    expect(s.type).toBe(EntryType.Normal);
    expect(s.recordCount).toBe(3);
    expect(s.data.buffer).toBe(b.buffer); // a view, not a copy
  });
});
