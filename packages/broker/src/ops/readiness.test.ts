import { describe, expect, it } from 'vitest';
import {
  planBootstrap,
  planCreateTopic,
  planHeartbeat,
  planRegisterBroker,
} from '../controller/controller-planner.js';
import type { MetadataRecord } from '../controller/metadata-records.js';
import { apply, EMPTY_METADATA_STATE, type MetadataState } from '../controller/metadata-state.js';
import { clusterReadiness } from './readiness.js';

const run = (s: MetadataState, records: readonly MetadataRecord[]) => records.reduce(apply, s);

function state(): MetadataState {
  let s = run(EMPTY_METADATA_STATE, planBootstrap(EMPTY_METADATA_STATE, 'c1'));
  for (const id of [1, 2]) {
    s = run(s, planRegisterBroker(s, { brokerId: id, host: 'h', port: id, incarnation: 'a' }));
    s = run(s, planHeartbeat(s, { brokerId: id, brokerEpoch: s.brokers.get(id)!.brokerEpoch }, 0));
  }
  return run(s, planCreateTopic(s, { name: 't', partitions: 2, replicationFactor: 2 }));
}

describe('/ready conditions on the cluster path', () => {
  const base = {
    self: 1,
    state: state(),
    registered: true,
    metadataCaughtUp: true,
    assignedOpen: 2,
    held: [{ role: 'leader' as const }, { role: 'follower' as const }],
    draining: false,
  };

  it('is ready when registered, caught up and every assigned replica is open', () => {
    const r = clusterReadiness(base);
    expect(r).toEqual({
      ready: true,
      missing: [],
      registered: true,
      metadataCaughtUp: true,
      metadataLogOffline: null,
      replicasAssigned: 2,
      replicasOpen: 2,
      replicaRoles: { leader: 1, follower: 1, candidate: 0, offline: 0 },
    });
  });

  it('names each missing condition', () => {
    expect(clusterReadiness({ ...base, registered: false }).missing).toEqual(['registered']);
    expect(clusterReadiness({ ...base, metadataCaughtUp: false }).missing).toEqual([
      'metadata-caught-up',
    ]);
    expect(
      clusterReadiness({ ...base, assignedOpen: 1, held: [{ role: 'candidate' }] }).missing,
    ).toEqual(['replicas-open']);
    const diskError = clusterReadiness({ ...base, metadataLogOffline: 'EIO: write failed' });
    expect(diskError.missing).toEqual(['metadata-log-offline']);
    expect(diskError.metadataLogOffline).toBe('EIO: write failed');
    const all = clusterReadiness({
      ...base,
      draining: true,
      registered: false,
      metadataCaughtUp: false,
      assignedOpen: 0,
      held: [],
    });
    expect(all.missing).toEqual([
      'shutting-down',
      'registered',
      'metadata-caught-up',
      'replicas-open',
    ]);
    // An offline replica (storage failure) is counted, but the broker stays ready.
    const offline = clusterReadiness({ ...base, held: [{ role: 'offline' }, { role: 'leader' }] });
    expect(offline.ready).toBe(true);
    expect(offline.replicaRoles.offline).toBe(1);
  });
});
