// planIsrChange with partition groups that elect their own leaders: a live replica reporting a
// leader epoch (its Raft term) above the state's is the new leader; a stale one is refused.
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { planIsrChange } from './controller-planner.js';
import type { MetadataRecord } from './metadata-records.js';
import { apply, EMPTY_METADATA_STATE, type MetadataState } from './metadata-state.js';

function state(): MetadataState {
  const records: MetadataRecord[] = [{ type: 'cluster-bootstrap', clusterId: 'c' }];
  for (const id of [1, 2, 3]) {
    records.push(
      {
        type: 'register-broker',
        brokerId: id,
        host: 'h',
        port: id,
        incarnation: 'i',
        brokerEpoch: id,
      },
      { type: 'unfence-broker', brokerId: id, brokerEpoch: id },
    );
  }
  records.push({
    type: 'create-topic',
    topicId: 1,
    name: 't',
    partitions: [{ replicas: [1, 2, 3] }],
    configs: [],
  });
  return records.reduce(apply, EMPTY_METADATA_STATE);
}

describe('planIsrChange and Raft-elected leaders', () => {
  it('takes a higher-epoch report from a live replica as the new leader', () => {
    const s = state();
    const records = planIsrChange(s, {
      topicId: 1,
      partition: 0,
      leader: 2,
      leaderEpoch: 3,
      isr: [2, 3],
    });
    const after = records.reduce(apply, s);
    const p = after.topics.get(1)?.partitions[0];
    expect(p?.leader).toBe(2);
    expect(p?.leaderEpoch).toBe(3);
    expect(p?.isr).toEqual([2, 3]);
  });

  it('refuses a report at a lower epoch, and one from a fenced broker', () => {
    const s = planIsrChange(state(), {
      topicId: 1,
      partition: 0,
      leader: 2,
      leaderEpoch: 3,
      isr: [2],
    }).reduce(apply, state());
    const stale = () =>
      planIsrChange(s, { topicId: 1, partition: 0, leader: 1, leaderEpoch: 2, isr: [1] });
    expect(stale).toThrowError();
    try {
      stale();
    } catch (err) {
      expect(isStreamBusError(err, ErrorCode.NOT_LEADER_OR_FOLLOWER)).toBe(true);
    }
    const fenced = apply(s, { type: 'fence-broker', brokerId: 3, brokerEpoch: 3 });
    expect(() =>
      planIsrChange(fenced, { topicId: 1, partition: 0, leader: 3, leaderEpoch: 9, isr: [3] }),
    ).toThrowError();
  });
});
