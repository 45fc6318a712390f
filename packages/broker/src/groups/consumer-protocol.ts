// The bytes a StreamBus consumer puts in its group protocol metadata (a subscription) and that
// its leader puts in each member's assignment. The coordinator never reads them (the group
// state machine treats them as opaque, as Kafka does); the assignors and the members do.
//
// Subscription: u8 version 0, topics count + strings, owned count + (topic string, partition
//               uvarint), userData bytes.
// Assignment:   u8 version 0, partitions count + (topic string, partition uvarint), userData bytes.
// Canonical and bounds-checked: decoding throws StreamBusError(CORRUPT_DATA) naming the field.
import { ByteReader, ByteWriter, corruptData } from '../controller/byte-codec.js';
import type { TopicPartition } from './types.js';

const VERSION = 0;
export const CONSUMER_PROTOCOL_TOPICS_MAX = 10_000;
export const CONSUMER_PROTOCOL_PARTITIONS_MAX = 1_000_000;
export const CONSUMER_PROTOCOL_USER_DATA_MAX = 64 * 1024;
const PARTITION_MAX = 2 ** 31 - 1;

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

function writePartitions(w: ByteWriter, tps: readonly TopicPartition[]): void {
  w.uvarint(tps.length);
  for (const tp of tps) {
    w.string(tp.topic);
    w.uvarint(tp.partition);
  }
}

function readPartitions(r: ByteReader, what: string): TopicPartition[] {
  const n = r.count(what, CONSUMER_PROTOCOL_PARTITIONS_MAX);
  const out: TopicPartition[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      topic: r.string(`${what} topic`),
      partition: r.uvarint(`${what} partition`, PARTITION_MAX),
    });
  }
  return out;
}

function writeUserData(w: ByteWriter, b: Uint8Array): void {
  w.uvarint(b.length);
  w.raw(b);
}

function readUserData(r: ByteReader): Uint8Array {
  return r.raw('userData', r.uvarint('userData length', CONSUMER_PROTOCOL_USER_DATA_MAX)).slice();
}

function reader(bytes: Uint8Array, what: string): ByteReader {
  const r = new ByteReader(bytes);
  const v = r.u8(`${what} version`);
  if (v !== VERSION) throw corruptData(`${what}: unknown version ${v}`);
  return r;
}

export function encodeSubscription(s: Subscription): Uint8Array {
  const w = new ByteWriter();
  w.u8(VERSION);
  w.uvarint(s.topics.length);
  for (const t of s.topics) w.string(t);
  writePartitions(w, s.ownedPartitions);
  writeUserData(w, s.userData);
  return w.finish();
}

export function decodeSubscription(bytes: Uint8Array): Subscription {
  const r = reader(bytes, 'subscription');
  const n = r.count('subscription topics', CONSUMER_PROTOCOL_TOPICS_MAX);
  const topics: string[] = [];
  for (let i = 0; i < n; i++) topics.push(r.string('subscription topic'));
  const ownedPartitions = readPartitions(r, 'owned partitions');
  const userData = readUserData(r);
  r.expectEnd('subscription');
  return { topics, ownedPartitions, userData };
}

export function encodeAssignment(a: MemberAssignment): Uint8Array {
  const w = new ByteWriter();
  w.u8(VERSION);
  writePartitions(w, a.partitions);
  writeUserData(w, a.userData);
  return w.finish();
}

export function decodeAssignment(bytes: Uint8Array): MemberAssignment {
  // An empty assignment (a member that got nothing, or before its first sync) is no partitions.
  if (bytes.length === 0) return { partitions: [], userData: new Uint8Array(0) };
  const r = reader(bytes, 'assignment');
  const partitions = readPartitions(r, 'assigned partitions');
  const userData = readUserData(r);
  r.expectEnd('assignment');
  return { partitions, userData };
}
