// Suite `raft`: committed entries/s through a 3-node in-memory @streambus/raft cluster.
//
// Measures: one leader and two followers, each a real RaftNode over MemoryStorage, exchanging
// messages by direct function calls in one thread. The leader proposes entries of a fixed size
// (100 B and 100 KiB), every node runs the full Ready cycle (persist to memory, send, apply,
// advance), and the clock stops when the leader has applied every entry. The value is entries
// committed and applied on the leader per second.
// Reference (same run, alternating): the same entry bytes appended to an in-memory array, which
// is the floor cost of "accepting" an entry with no replication at all.
// Leaves out: serialization, sockets, fsync, and the entry payload copies a real transport and
// disk would make (the core never copies payloads, so 100 KiB and 100 B entries cost nearly the
// same per entry here). Read first: "commit 100B entries" (per-entry protocol overhead).
import {
  asNodeId,
  MemoryStorage,
  type Message,
  type NodeId,
  RaftError,
  RaftNode,
  type Ready,
  StateRole,
  seededRandom,
} from '@streambus/raft';
import { medianOfRuns, type ResultRow, row, type Suite, type SuiteOptions } from '../harness.js';

const CLUSTER_SIZE = 3;
const PROPOSALS_PER_ROUND = 256;

interface BenchNode {
  readonly raft: RaftNode;
  readonly storage: MemoryStorage;
}

function persist(storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

/** Runs every node's Ready cycle and delivers messages until the cluster is quiet. */
function pump(nodes: Map<NodeId, BenchNode>, onLeaderApply: (count: number) => void): void {
  let outbox: Message[] = [];
  for (let round = 0; round < 1_000_000; round++) {
    for (const [id, n] of nodes) {
      while (n.raft.hasReady()) {
        const rd = n.raft.ready();
        persist(n.storage, rd);
        for (const m of rd.messages) outbox.push(m);
        if (id === 1) {
          let applied = 0;
          for (const e of rd.committedEntries) if (e.data.byteLength > 0) applied++;
          onLeaderApply(applied);
        }
        n.raft.advance();
      }
    }
    if (outbox.length === 0) return;
    const batch = outbox;
    outbox = [];
    for (const m of batch) nodes.get(m.to)!.raft.step(m);
  }
  throw new Error('raft bench: cluster did not settle');
}

function makeCluster(): Map<NodeId, BenchNode> {
  const voters = Array.from({ length: CLUSTER_SIZE }, (_, i) => asNodeId(i + 1));
  const nodes = new Map<NodeId, BenchNode>();
  for (const id of voters) {
    const storage = new MemoryStorage({ voters, learners: [] });
    const raft = new RaftNode(
      {
        id,
        random: seededRandom(id),
        appendBytesMax: 1024 * 1024,
        inflightMsgsMax: 256,
        inflightBytesMax: 64 * 1024 * 1024,
        uncommittedBytesMax: 256 * 1024 * 1024,
        committedBytesMax: 16 * 1024 * 1024,
      },
      storage,
    );
    nodes.set(id, { raft, storage });
  }
  const leader = nodes.get(asNodeId(1))!.raft;
  leader.campaign();
  pump(nodes, () => {});
  if (leader.currentRole !== StateRole.Leader) throw new Error('raft bench: node 1 did not win');
  return nodes;
}

/** Entries/s committed and applied on the leader of a fresh 3-node cluster. */
function commitRate(entryBytes: number, count: number): number {
  const nodes = makeCluster();
  const leader = nodes.get(asNodeId(1))!.raft;
  const payload = new Uint8Array(entryBytes).fill(7);
  let applied = 0;
  let proposed = 0;
  const onApply = (n: number) => {
    applied += n;
  };
  const start = performance.now();
  while (applied < count) {
    const round = Math.min(PROPOSALS_PER_ROUND, count - proposed);
    for (let i = 0; i < round; i++) {
      try {
        leader.propose(payload);
        proposed++;
      } catch (err) {
        if (!(err instanceof RaftError)) throw err;
        break; // uncommittedBytesMax reached: let the cluster catch up
      }
    }
    pump(nodes, onApply);
  }
  const seconds = (performance.now() - start) / 1000;
  return applied / seconds;
}

function appendRate(entryBytes: number, count: number): number {
  const payload = new Uint8Array(entryBytes).fill(7);
  const log: Uint8Array[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) log.push(payload);
  const seconds = (performance.now() - start) / 1000;
  if (log.length !== count) throw new Error('raft bench: reference lost entries');
  return count / seconds;
}

export const suite: Suite = {
  name: 'raft',
  description:
    'Committed entries/s through a 3-node in-memory Raft cluster (real RaftNodes, MemoryStorage, ' +
    'direct message delivery, full Ready cycle), for 100 B and 100 KiB entries; reference: the ' +
    'same entry bytes pushed onto an in-memory array. No serialization, sockets or fsync. Read ' +
    'first: "commit 100B entries".',
  async run(options: SuiteOptions): Promise<ResultRow[]> {
    const runs = options.quick ? 3 : 7;
    const rows: ResultRow[] = [];
    for (const [label, entryBytes, count] of [
      ['100B', 100, options.quick ? 20_000 : 200_000],
      ['100KiB', 100 * 1024, options.quick ? 2_000 : 20_000],
    ] as const) {
      const r = await medianOfRuns(
        runs,
        () => commitRate(entryBytes, count),
        () => appendRate(entryBytes, count),
      );
      rows.push(
        row(
          `commit ${label} entries`,
          r.value,
          'entries/s',
          {
            entryBytes,
            entries: count,
            clusterSize: CLUSTER_SIZE,
            runs,
            proposalsPerRound: PROPOSALS_PER_ROUND,
            storage: 'MemoryStorage (no fsync)',
            transport: 'direct calls, one thread',
            reference: 'same bytes pushed onto an in-memory array',
          },
          r.reference,
        ),
      );
    }
    return rows;
  },
};
