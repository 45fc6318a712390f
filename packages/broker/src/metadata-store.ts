// The broker's durable metadata: cluster id, topics (name, id, partition count, config
// overrides), and the producer-id high-water mark. Single node, so one JSON file replaced
// atomically (durable-file.ts, over the broker's FileSystem) on every change; topic changes are rare and each one is fsynced
// before it is acknowledged. When the controller quorum arrives (ARCHITECTURE.md §4) this becomes
// the state machine applied from the metadata Raft log.
//
// File `<dataDir>/metadata.json`:
//   { "version": 1, "clusterId": "<uuid>", "nextTopicId": N, "producerIdsReservedUntil": N,
//     "topics": [{ "name", "id", "partitions", "overrides": { key: value } }] }
// Topic data lives in `<dataDir>/topics/<id>/<partition>`; the id (never reused) keeps a
// recreated topic apart from the files of a deleted one still being removed.
//
// Producer ids are handed out from blocks of PRODUCER_ID_BLOCK: the file records the end of the
// reserved block, so after a crash allocation resumes past every id that may have been given out.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { FileSystem } from '@streambus/storage';
import { readFileIfExists, writeFileDurably } from './durable-file.js';
import type { TopicOverrides } from './topic-config.js';

export const METADATA_VERSION = 1;
export const PRODUCER_ID_BLOCK = 1000;

export interface TopicRecord {
  name: string;
  id: number;
  partitions: number;
  overrides: TopicOverrides;
}

export interface MetadataState {
  version: number;
  clusterId: string;
  nextTopicId: number;
  producerIdsReservedUntil: number;
  topics: TopicRecord[];
}

export class MetadataStore {
  private nextProducerId: number;

  private constructor(
    private readonly fs: FileSystem,
    readonly path: string,
    private state: MetadataState,
  ) {
    this.nextProducerId = state.producerIdsReservedUntil;
  }

  static async open(fs: FileSystem, dataDir: string): Promise<MetadataStore> {
    const path = join(dataDir, 'metadata.json');
    let bytes: Buffer | null;
    try {
      bytes = await readFileIfExists(fs, path);
    } catch (err) {
      throw new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, `cannot read ${path}`, {
        cause: err,
      });
    }
    if (bytes === null) {
      const store = new MetadataStore(fs, path, {
        version: METADATA_VERSION,
        clusterId: randomUUID(),
        nextTopicId: 1,
        producerIdsReservedUntil: 0,
        topics: [],
      });
      await store.persist(store.state);
      return store;
    }
    return new MetadataStore(fs, path, parseMetadata(bytes.toString('utf8'), path));
  }

  get clusterId(): string {
    return this.state.clusterId;
  }

  get topics(): readonly TopicRecord[] {
    return this.state.topics;
  }

  topic(name: string): TopicRecord | undefined {
    return this.state.topics.find((t) => t.name === name);
  }

  /**
   * A topic id not handed out before in this process, for a topic whose data is made before its
   * record is written (atomic creation: metadata last). Not persisted: after a crash the id may
   * come again, which is safe because startup removes directories no topic owns first.
   */
  reserveTopicId(): number {
    const id = this.state.nextTopicId;
    this.state = { ...this.state, nextTopicId: id + 1 };
    return id;
  }

  /** Adds a topic durably; returns its record (with a fresh id, or the one reserved). */
  async addTopic(
    name: string,
    partitions: number,
    overrides: TopicOverrides,
    id: number = this.state.nextTopicId,
  ): Promise<TopicRecord> {
    const record: TopicRecord = { name, id, partitions, overrides };
    await this.persist({
      ...this.state,
      nextTopicId: Math.max(this.state.nextTopicId, id + 1),
      topics: [...this.state.topics, record],
    });
    return record;
  }

  async removeTopic(name: string): Promise<void> {
    await this.persist({ ...this.state, topics: this.state.topics.filter((t) => t.name !== name) });
  }

  async setOverrides(name: string, overrides: TopicOverrides): Promise<void> {
    await this.persist({
      ...this.state,
      topics: this.state.topics.map((t) => (t.name === name ? { ...t, overrides } : t)),
    });
  }

  /** A producer id never handed out before (not even before a crash). */
  async allocateProducerId(): Promise<number> {
    if (this.nextProducerId >= this.state.producerIdsReservedUntil) {
      await this.persist({
        ...this.state,
        producerIdsReservedUntil: this.state.producerIdsReservedUntil + PRODUCER_ID_BLOCK,
      });
    }
    return this.nextProducerId++;
  }

  /** Writes `next` and only then adopts it, so memory never runs ahead of the disk. */
  private async persist(next: MetadataState): Promise<void> {
    await writeFileDurably(this.fs, this.path, Buffer.from(`${JSON.stringify(next, null, 1)}\n`));
    this.state = next;
  }
}

function parseMetadata(text: string, path: string): MetadataState {
  const bad = (why: string): never => {
    throw new StreamBusError(ErrorCode.CORRUPT_DATA, `${path}: ${why}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  const s = doc as Partial<MetadataState>;
  if (typeof s !== 'object' || s === null) return bad('not an object');
  if (s.version !== METADATA_VERSION) return bad(`unsupported version ${String(s.version)}`);
  if (typeof s.clusterId !== 'string') return bad('clusterId missing');
  if (!Number.isSafeInteger(s.nextTopicId)) return bad('nextTopicId missing');
  if (!Number.isSafeInteger(s.producerIdsReservedUntil))
    return bad('producerIdsReservedUntil missing');
  if (!Array.isArray(s.topics)) return bad('topics missing');
  for (const t of s.topics) {
    if (
      typeof t?.name !== 'string' ||
      !Number.isSafeInteger(t.id) ||
      !Number.isSafeInteger(t.partitions) ||
      typeof t.overrides !== 'object'
    ) {
      return bad(`topic entry ${JSON.stringify(t)} is malformed`);
    }
  }
  return s as MetadataState;
}
