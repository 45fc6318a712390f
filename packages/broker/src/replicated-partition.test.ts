// ReplicatedPartition.produce (issue 9, acks=1 CPU): produce validation already checked every
// batch's CRC (its ValidatedRecords is the proof), so the replica is told not to check it again.
import { encodeRecordBatch } from '@streambus/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultConfig } from './config.js';
import { validateProduceRecords } from './produce-validation.js';
import { ReplicatedPartition } from './replicated-partition.js';
import { ReplicaCluster } from './replication/replica-test-cluster.js';
import { resolveTopicConfig } from './topic-config.js';

let cluster: ReplicaCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

describe('ReplicatedPartition.produce', () => {
  it('hands validated batches to the replica as CRC-checked (the CRC is computed once per produce)', async () => {
    const c = new ReplicaCluster({ ids: [1], seed: 3 });
    cluster = c;
    await c.startAll();
    c.replica(1).campaignIfSoleVoter();
    const r = await c.waitLeader();
    const served = await ReplicatedPartition.open(
      't',
      0,
      resolveTopicConfig(defaultConfig().defaults, {}, 16 * 1024 * 1024),
      { dir: '', open: async () => r, remove: () => undefined },
      10,
    );
    const propose = vi.spyOn(r, 'propose');
    const records = encodeRecordBatch([{ value: Buffer.from('v'), timestamp: 1 }], {
      timestamp: 1,
    });
    const limits = { maxMessageBytes: 1 << 20, segmentBytes: 1 << 20, timestampSkewMsMax: -1 };
    const validated = validateProduceRecords(records, limits, 1);
    const done = served.produce(records, validated, 1);
    await c.settle();
    const out = await done;
    expect(out.baseOffset).toBeGreaterThan(0);
    expect(propose).toHaveBeenCalledTimes(1);
    expect(propose.mock.calls[0]![2]).toEqual({ crcVerified: true });
    await served.close();
  });
});
