// ReplicatedPartition.produce (issue 9, acks=1 CPU): produce validation already checked every
// batch's CRC (its ValidatedRecords is the proof), so the replica is told not to check it again.
import { ErrorCode, encodeRecordBatch } from '@streambus/protocol';
import { MessageType } from '@streambus/raft';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultConfig } from './config.js';
import { validateProduceRecords } from './produce-validation.js';
import { ReplicatedPartition } from './replicated-partition.js';
import { NotLeaderError, type PartitionReplica } from './replication/partition-replica.js';
import { ReplicaCluster } from './replication/replica-test-cluster.js';
import { resolveTopicConfig } from './topic-config.js';

let cluster: ReplicaCluster | null = null;

/** Topic t partition 0 served over `replica` (the cluster's replica, opened already). */
function servedOver(replica: PartitionReplica): Promise<ReplicatedPartition> {
  return ReplicatedPartition.open(
    't',
    0,
    resolveTopicConfig(defaultConfig().defaults, {}, 16 * 1024 * 1024),
    { dir: '', open: async () => replica, remove: () => undefined },
    10,
  );
}
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
    const served = await servedOver(r);
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

describe('ReplicatedPartition.electionWait (issue 12)', () => {
  it('a produce arriving while the replica campaigns waits for the outcome, then is proposed', async () => {
    const c = new ReplicaCluster({ seed: 5 });
    cluster = c;
    await c.startAll();
    const l = await c.waitLeader();
    const f = c.live().find((r) => r !== l)!;
    const served = await servedOver(f);
    // Following a known leader: no wait.
    for (let i = 0; i < 50 && f.leaderId !== l.self; i++) await c.tick();
    expect(served.electionWait()).toBeNull();
    // The target of a transfer, its vote requests held: a candidate.
    c.setLink(f.self, l.self, 'hold');
    for (const o of c.live()) if (o !== f && o !== l) c.setLink(f.self, o.self, 'hold');
    l.transferLeadership(f.self);
    for (let i = 0; i < 50 && f.role !== 'candidate'; i++) await c.tick();
    expect(f.role).toBe('candidate');
    const wait = served.electionWait();
    expect(wait).not.toBeNull();
    // Every produce meanwhile shares the one wait.
    expect(served.electionWait()).toBe(wait);
    let settled = false;
    void wait!.then(() => {
      settled = true;
    });
    await c.tick();
    expect(settled).toBe(false);
    c.release();
    for (let i = 0; i < 50 && f.role !== 'leader'; i++) await c.tick();
    expect(f.role).toBe('leader');
    await wait;
    expect(settled).toBe(true);
    expect(served.electionWait()).toBeNull();
    const records = encodeRecordBatch([{ value: Buffer.from('v'), timestamp: 1 }], {
      timestamp: 1,
    });
    const limits = { maxMessageBytes: 1 << 20, segmentBytes: 1 << 20, timestampSkewMsMax: -1 };
    const done = served.produce(records, validateProduceRecords(records, limits, 1), 1);
    for (let i = 0; i < 20; i++) await c.tick();
    expect((await done).baseOffset).toBeGreaterThan(0);
    await served.close();
  });

  it('the leader that handed over names its target at once, before it hears from the new leader', async () => {
    const c = new ReplicaCluster({ seed: 7 });
    cluster = c;
    await c.startAll();
    const l = await c.waitLeader();
    const f = c.live().find((r) => r !== l)!;
    const served = await servedOver(l);
    const term = l.leaderEpoch;
    // The old leader gets the target's vote request (it steps down) and nothing after it: the
    // new leader's appends, which would name it, are held.
    c.setLink(f.self, l.self, 'hold');
    l.transferLeadership(f.self);
    for (let i = 0; i < 50 && !c.held.some((h) => h.m.type === MessageType.Vote); i++) {
      await c.tick();
    }
    const votes = c.held.filter((h) => h.m.type === MessageType.Vote);
    expect(votes.length).toBe(1);
    for (const h of votes) {
      c.held.splice(c.held.indexOf(h), 1);
      h.transport.send(h.group, [h.m]);
    }
    for (let i = 0; i < 50 && (f.role !== 'leader' || l.role === 'leader'); i++) await c.tick();
    expect(f.role).toBe('leader');
    expect(l.role).toBe('follower');
    expect(l.leaderId).toBe(0);
    // Not an election to wait out: the produce is refused at once, naming the target and its term
    // (before: it waited up to 250 ms, then was refused naming nobody if no append came).
    expect(served.electionWait()).toBeNull();
    const records = encodeRecordBatch([{ value: Buffer.from('v'), timestamp: 1 }], {
      timestamp: 1,
    });
    const limits = { maxMessageBytes: 1 << 20, segmentBytes: 1 << 20, timestampSkewMsMax: -1 };
    const refusal = await served
      .produce(records, validateProduceRecords(records, limits, 1), 1)
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(refusal).toBeInstanceOf(NotLeaderError);
    expect((refusal as NotLeaderError).code).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect((refusal as NotLeaderError).leaderHint).toBe(f.self);
    expect((refusal as NotLeaderError).leaderEpoch).toBe(term + 1);
    // Once the new leader's appends arrive, the hint is the leader it follows (the same one).
    c.release();
    for (let i = 0; i < 50 && l.leaderId !== f.self; i++) await c.tick();
    expect(l.leaderHint).toEqual({ leaderId: f.self, leaderEpoch: term + 1 });
    await served.close();
  });
});
