// The bytes a consumer puts in its group protocol metadata (a subscription) and that its leader
// puts in each member's assignment: Kafka's ConsumerProtocolSubscription and
// ConsumerProtocolAssignment (non-flexible, big-endian), so a StreamBus member and a Kafka client
// on the Kafka listener can share a group. The coordinator never reads them (the group state
// machine treats them as opaque, as Kafka does); the assignors and the members do.
//
// Subscription v1 (written): int16 version, topics (int32 count, int16-length strings), userData
//   (int32-length nullable bytes), ownedPartitions (int32 count of { topic, int32 count of int32
//   partitions }). Read: v0..v3 (v2 adds an int32 generation, v3 a nullable rack id); a newer
//   version is read as v3 and its trailing fields ignored, as Kafka's own readers do.
// Assignment v1 (written; v0..v3 share the layout): int16 version, assignedPartitions (as
//   ownedPartitions), userData. Empty bytes are an empty assignment.
// Bounds-checked: decoding throws StreamBusError(CORRUPT_DATA) naming what was being read.
import { ErrorCode, StreamBusError } from '../errors.js';
import { KafkaReader } from '../kafka/reader.js';
import { KafkaWriter } from '../kafka/writer.js';
import type { TopicPartition } from './topic-partition.js';

const SUBSCRIPTION_VERSION = 1;
const ASSIGNMENT_VERSION = 1;
/** Fields beyond this version are skipped when reading. */
const VERSION_READ_MAX = 3;
export const CONSUMER_PROTOCOL_TOPICS_MAX = 10_000;
export const CONSUMER_PROTOCOL_PARTITIONS_MAX = 1_000_000;
export const CONSUMER_PROTOCOL_USER_DATA_MAX = 64 * 1024;

export interface Subscription {
  readonly topics: readonly string[];
  /** What the member owns now (KIP-429: the cooperative assignor keeps these where it can). */
  readonly ownedPartitions: readonly TopicPartition[];
  readonly userData: Uint8Array;
}

export interface MemberAssignment {
  readonly partitions: readonly TopicPartition[];
  readonly userData: Uint8Array;
}

function writePartitions(w: KafkaWriter, tps: readonly TopicPartition[]): void {
  const byTopic = new Map<string, number[]>();
  for (const tp of tps) {
    const list = byTopic.get(tp.topic) ?? [];
    list.push(tp.partition);
    byTopic.set(tp.topic, list);
  }
  w.int32(byTopic.size);
  for (const [topic, partitions] of byTopic) {
    w.nullableString(topic);
    w.int32(partitions.length);
    for (const p of partitions) w.int32(p);
  }
}

function readPartitions(r: KafkaReader, what: string): TopicPartition[] {
  // A topic entry is at least a 2-byte name and a 4-byte count.
  const topics = r.arrayCount(6);
  if (topics > CONSUMER_PROTOCOL_TOPICS_MAX) {
    throw r.fail(`${what}: ${topics} topics exceed ${CONSUMER_PROTOCOL_TOPICS_MAX}`);
  }
  const out: TopicPartition[] = [];
  for (let i = 0; i < topics; i++) {
    const topic = r.string();
    const n = r.arrayCount(4);
    if (out.length + n > CONSUMER_PROTOCOL_PARTITIONS_MAX) {
      throw r.fail(`${what}: more than ${CONSUMER_PROTOCOL_PARTITIONS_MAX} partitions`);
    }
    for (let j = 0; j < n; j++) {
      const partition = r.int32();
      if (partition < 0) throw r.fail(`${what}: negative partition ${partition}`);
      out.push({ topic, partition });
    }
  }
  return out;
}

function readUserData(r: KafkaReader): Uint8Array {
  const b = r.nullableBytes();
  if (b === null) return new Uint8Array(0);
  if (b.length > CONSUMER_PROTOCOL_USER_DATA_MAX) {
    throw r.fail(`userData of ${b.length} bytes exceeds ${CONSUMER_PROTOCOL_USER_DATA_MAX}`);
  }
  return new Uint8Array(b);
}

/** Runs a decoder, prefixing its CORRUPT_DATA message with what was decoded. */
function decoding<T>(what: string, bytes: Uint8Array, fn: (r: KafkaReader) => T): T {
  const r = new KafkaReader(bytes, 0, bytes.length, ErrorCode.CORRUPT_DATA);
  try {
    return fn(r);
  } catch (err) {
    if (err instanceof StreamBusError && err.code === ErrorCode.CORRUPT_DATA) {
      throw new StreamBusError(ErrorCode.CORRUPT_DATA, `${what}: ${err.message}`);
    }
    throw err;
  }
}

function readVersion(r: KafkaReader): number {
  const v = r.int16();
  if (v < 0) throw r.fail(`unknown version ${v}`);
  return v;
}

export function encodeSubscription(s: Subscription): Buffer {
  const w = new KafkaWriter(256);
  w.int16(SUBSCRIPTION_VERSION);
  w.int32(s.topics.length);
  for (const t of s.topics) w.nullableString(t);
  w.nullableBytes(s.userData);
  writePartitions(w, s.ownedPartitions);
  return w.toBuffer();
}

export function decodeSubscription(bytes: Uint8Array): Subscription {
  return decoding('subscription', bytes, (r) => {
    const version = readVersion(r);
    const n = r.arrayCount(2);
    if (n > CONSUMER_PROTOCOL_TOPICS_MAX) {
      throw r.fail(`${n} topics exceed ${CONSUMER_PROTOCOL_TOPICS_MAX}`);
    }
    const topics: string[] = [];
    for (let i = 0; i < n; i++) topics.push(r.string());
    const userData = readUserData(r);
    const ownedPartitions = version >= 1 ? readPartitions(r, 'owned partitions') : [];
    if (version >= 2) r.int32();
    if (version >= 3) r.nullableString();
    if (version <= VERSION_READ_MAX) r.expectEnd('subscription');
    return { topics, ownedPartitions, userData };
  });
}

export function encodeAssignment(a: MemberAssignment): Buffer {
  const w = new KafkaWriter(256);
  w.int16(ASSIGNMENT_VERSION);
  writePartitions(w, a.partitions);
  w.nullableBytes(a.userData);
  return w.toBuffer();
}

export function decodeAssignment(bytes: Uint8Array): MemberAssignment {
  // An empty assignment (a member that got nothing, or before its first sync) is no partitions.
  if (bytes.length === 0) return { partitions: [], userData: new Uint8Array(0) };
  return decoding('assignment', bytes, (r) => {
    const version = readVersion(r);
    const partitions = readPartitions(r, 'assigned partitions');
    const userData = readUserData(r);
    if (version <= VERSION_READ_MAX) r.expectEnd('assignment');
    return { partitions, userData };
  });
}
