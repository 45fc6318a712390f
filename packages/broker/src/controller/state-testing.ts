// Test helper: a metadata state planned the way the controller would build it.
import { planBootstrap, planHeartbeat, planRegisterBroker } from './controller-planner.js';
import type { MetadataRecord } from './metadata-records.js';
import { apply, EMPTY_METADATA_STATE, type MetadataState } from './metadata-state.js';

export const runRecords = (s: MetadataState, records: readonly MetadataRecord[]): MetadataState =>
  records.reduce(apply, s);

/** A bootstrapped cluster of brokers 1..n, each registered and unfenced by a heartbeat at tick 0. */
export function liveCluster(n: number): MetadataState {
  let s = runRecords(EMPTY_METADATA_STATE, planBootstrap(EMPTY_METADATA_STATE, 'c1'));
  for (let id = 1; id <= n; id++) {
    s = runRecords(
      s,
      planRegisterBroker(s, { brokerId: id, host: `h${id}`, port: 9000 + id, incarnation: 'a' }),
    );
    s = runRecords(
      s,
      planHeartbeat(s, { brokerId: id, brokerEpoch: s.brokers.get(id)!.brokerEpoch }, 0),
    );
  }
  return s;
}
