// One entry of the metadata Raft group carries one plan: the records the controller leader
// planned for one request (or one tick's fencing), applied together and in order by every
// broker. Putting a plan in one entry makes it atomic: a fence and the ISR changes it implies
// commit together or not at all, and a dropped proposal never leaves half a plan in the log.
//
// Grammar (uvarint and the record encoding as in metadata-records.ts):
//   entry := count:uvarint (1..PLAN_RECORDS_MAX) (length:uvarint record[length])*count
// An empty entry is the Raft leader's no-op and carries no plan. Decoding anything else than a
// valid encoding throws CORRUPT_DATA.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { ByteReader, ByteWriter, corruptData } from './byte-codec.js';
import { decodeRecord, encodeRecord, type MetadataRecord } from './metadata-records.js';

/** Records in one plan at most (a fence of a broker leading every partition of a big cluster). */
export const PLAN_RECORDS_MAX = 200_000;

export function encodePlan(records: readonly MetadataRecord[]): Uint8Array {
  if (records.length === 0 || records.length > PLAN_RECORDS_MAX) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `a plan has 1..${PLAN_RECORDS_MAX} records, not ${records.length}`,
    );
  }
  const w = new ByteWriter();
  w.uvarint(records.length);
  for (const r of records) {
    const bytes = encodeRecord(r);
    w.uvarint(bytes.length);
    w.raw(bytes);
  }
  return w.finish();
}

export function decodePlan(bytes: Uint8Array): MetadataRecord[] {
  const r = new ByteReader(bytes);
  const n = r.count('plan records', PLAN_RECORDS_MAX);
  if (n === 0) throw corruptData('a plan with no records');
  const records: MetadataRecord[] = [];
  for (let i = 0; i < n; i++) {
    const length = r.uvarint('record length', r.remaining);
    records.push(decodeRecord(r.raw('record', length)));
  }
  r.expectEnd('plan');
  return records;
}
