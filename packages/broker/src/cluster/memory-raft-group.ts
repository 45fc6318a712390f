// A real Raft group over the core's in-memory log storage: the smallest complete `HostedGroup`,
// for the transport's end-to-end tests and the idle-cost benchmark. Not for production: nothing
// is durable and committed entries are only collected in memory (`committed`, bounded).
import {
  type Entry,
  MemoryStorage,
  type Message,
  type NodeId,
  type RaftConfigInput,
  RaftNode,
  seededRandom,
} from '@streambus/raft';
import type { GroupKey, HostedGroup, RaftTransport } from './contract.js';

/** Committed entries kept for inspection at most; older ones are forgotten. */
const COMMITTED_KEPT_MAX = 1024;

export class MemoryRaftGroup implements HostedGroup {
  readonly node: RaftNode;
  /** The latest committed entries (at most COMMITTED_KEPT_MAX), oldest first. */
  readonly committed: Entry[] = [];
  private readonly storage: MemoryStorage;

  constructor(
    readonly key: GroupKey,
    self: NodeId,
    voters: readonly NodeId[],
    private readonly transport: RaftTransport,
    config: Partial<RaftConfigInput> = {},
  ) {
    this.storage = new MemoryStorage({ voters: [...voters].sort((a, b) => a - b), learners: [] });
    this.node = new RaftNode(
      { id: self, random: seededRandom(key.topicId * 7919 + key.partition * 31 + self), ...config },
      this.storage,
    );
  }

  tick(): void {
    this.node.tick();
  }
  step(m: Message): void {
    this.node.step(m);
  }
  reportUnreachable(peer: NodeId): void {
    this.node.reportUnreachable(peer);
  }
  hasWork(): boolean {
    return this.node.hasReady();
  }
  async process(): Promise<void> {
    const rd = this.node.ready();
    if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    this.transport.send(this.key, rd.messages);
    for (const e of rd.committedEntries) {
      this.committed.push(e);
      if (this.committed.length > COMMITTED_KEPT_MAX) this.committed.shift();
    }
    this.node.advance();
  }
}
