// Test helper: every record of one partition from `from` to the high watermark, fetched in as
// many rounds as it takes (a fetch may stop at a segment boundary or at maxBytes); control
// batches skipped.
import { ApiKey, batchSpans, decodeRecordBatch, OffsetSpec } from '@streambus/protocol';
import type { RawClient } from './raw-client.js';

const FETCH_BYTES_MAX = 1 << 20;
/** RecordBatch attributes bit 5: a control batch. */
const CONTROL_BATCH_ATTRIBUTE = 0x20;

export async function fetchAll(
  c: RawClient,
  topic: string,
  from = 0,
  partition = 0,
): Promise<Array<{ offset: number; value: string }>> {
  const lo = await c.request(ApiKey.LIST_OFFSETS, {
    topics: [{ name: topic, partitions: [{ partition, timestamp: OffsetSpec.LATEST }] }],
  });
  const at = lo.topics[0]!.partitions[0]!;
  // A refusal (a new leader not readable yet, a partition reopening) is an error, never "empty".
  if (at.errorCode !== 0) {
    throw new Error(
      `list offsets of ${topic}-${partition}: ${at.errorCode} ${at.errorMessage ?? ''}`,
    );
  }
  const end = at.offset;
  const out: Array<{ offset: number; value: string }> = [];
  let offset = from;
  while (offset < end) {
    const f = await c.request(ApiKey.FETCH, {
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: FETCH_BYTES_MAX,
      topics: [
        {
          name: topic,
          partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: FETCH_BYTES_MAX }],
        },
      ],
    });
    const p = f.topics[0]!.partitions[0]!;
    if (p.errorCode !== 0)
      throw new Error(`fetch of ${topic}-${partition} at ${offset}: ${p.errorCode}`);
    if (p.records.length === 0)
      throw new Error(`fetch of ${topic}-${partition} at ${offset} got nothing below ${end}`);
    for (const { position } of batchSpans(p.records)) {
      const { header, records } = decodeRecordBatch(p.records, position);
      // Control batches (a Raft term's no-op, configuration entries) are skipped, as consumers do.
      if ((header.attributes & CONTROL_BATCH_ATTRIBUTE) === 0) {
        for (const r of records)
          out.push({ offset: r.offset, value: Buffer.from(r.value!).toString() });
      }
      offset = header.baseOffset + header.lastOffsetDelta + 1;
    }
  }
  return out;
}
