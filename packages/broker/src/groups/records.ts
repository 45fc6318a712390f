// The coordinator's records in its `__consumer_offsets` partition: a compacted topic, so every
// record is a key and a value, and a tombstone is a key with no value. The latest value of each
// key is the state: replay(records) rebuilds what the live coordinator held (records.test.ts
// checks it against random runs of the state machine).
//
// Key:   u8 key version (1 = offset commit, 2 = group metadata), then the key fields.
//          offset: groupId string, topic string, partition uvarint
//          group:  groupId string
// Value: u8 value version (0), then
//          offset: offset uvarint, metadata bytes (UTF-8), commitTick uvarint
//          group:  stateTick uvarint, protocolType ?string, protocolName ?string,
//                  generation uvarint, leaderId ?string, members count, each: memberId string,
//                  groupInstanceId ?string, clientId string, sessionTimeoutTicks uvarint,
//                  rebalanceTimeoutTicks uvarint, protocols count (name string, metadata bytes),
//                  assignment bytes
// (?string is a bool then the string; bytes is a uvarint length then the bytes.) Canonical: the
// decoder accepts exactly what the encoder writes and throws StreamBusError(CORRUPT_DATA) on
// anything else, naming the field.
import { ByteReader, ByteWriter, corruptData } from '../controller/byte-codec.js';
import { emptyGroup } from './group-state.js';
import {
  type CommittedOffset,
  type CoordinatorState,
  type Group,
  type GroupMember,
  type GroupRecord,
  offsetKey,
  type PersistedMember,
} from './types.js';

const KEY_OFFSET = 1;
const KEY_GROUP = 2;
const VALUE_VERSION = 0;
/** Decoder bounds, above every coordinator limit (the limits are checked when writing). */
export const RECORD_BYTES_FIELD_MAX = 1024 * 1024;
export const RECORD_MEMBERS_MAX = 100_000;
export const RECORD_PROTOCOLS_MAX = 256;
const PARTITION_MAX = 2 ** 31 - 1;

export interface EncodedGroupRecord {
  readonly key: Uint8Array;
  /** null for a tombstone. */
  readonly value: Uint8Array | null;
}

function writeBytes(w: ByteWriter, bytes: Uint8Array): void {
  w.uvarint(bytes.length);
  w.raw(bytes);
}

function readBytes(r: ByteReader, what: string): Uint8Array {
  const n = r.uvarint(`${what} length`, RECORD_BYTES_FIELD_MAX);
  return r.raw(what, n).slice();
}

function writeOptString(w: ByteWriter, s: string | null): void {
  w.bool(s !== null);
  if (s !== null) w.string(s);
}

function readOptString(r: ByteReader, what: string): string | null {
  return r.bool(`${what} present`) ? r.string(what) : null;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function encodeGroupRecord(rec: GroupRecord): EncodedGroupRecord {
  const k = new ByteWriter();
  if (rec.type === 'offset' || rec.type === 'offset-tombstone') {
    k.u8(KEY_OFFSET);
    k.string(rec.groupId);
    k.string(rec.topic);
    k.uvarint(rec.partition);
  } else {
    k.u8(KEY_GROUP);
    k.string(rec.groupId);
  }
  const key = k.finish();
  if (rec.type === 'offset-tombstone' || rec.type === 'group-tombstone')
    return { key, value: null };
  const w = new ByteWriter();
  w.u8(VALUE_VERSION);
  if (rec.type === 'offset') {
    w.uvarint(rec.offset);
    writeBytes(w, utf8.encode(rec.metadata));
    w.uvarint(rec.commitTick);
    return { key, value: w.finish() };
  }
  w.uvarint(rec.stateTick);
  writeOptString(w, rec.protocolType);
  writeOptString(w, rec.protocolName);
  w.uvarint(rec.generation);
  writeOptString(w, rec.leaderId);
  w.uvarint(rec.members.length);
  for (const m of rec.members) {
    w.string(m.memberId);
    writeOptString(w, m.groupInstanceId);
    w.string(m.clientId);
    w.uvarint(m.sessionTimeoutTicks);
    w.uvarint(m.rebalanceTimeoutTicks);
    w.uvarint(m.protocols.length);
    for (const p of m.protocols) {
      w.string(p.name);
      writeBytes(w, p.metadata);
    }
    writeBytes(w, m.assignment);
  }
  return { key, value: w.finish() };
}

export function decodeGroupRecord(key: Uint8Array, value: Uint8Array | null): GroupRecord {
  const k = new ByteReader(key);
  const kind = k.u8('record key version');
  if (kind !== KEY_OFFSET && kind !== KEY_GROUP) {
    throw corruptData(`group record: unknown key version ${kind}`);
  }
  const groupId = k.string('groupId');
  if (kind === KEY_OFFSET) {
    const topic = k.string('topic');
    const partition = k.uvarint('partition', PARTITION_MAX);
    k.expectEnd('offset record key');
    if (value === null) return { type: 'offset-tombstone', groupId, topic, partition };
    const r = valueReader(value);
    const offset = r.uvarint('offset');
    let metadata: string;
    try {
      metadata = utf8Decoder.decode(readBytes(r, 'offset metadata'));
    } catch {
      throw corruptData('offset metadata: not valid UTF-8');
    }
    const commitTick = r.uvarint('commitTick');
    r.expectEnd('offset record value');
    return { type: 'offset', groupId, topic, partition, offset, metadata, commitTick };
  }
  k.expectEnd('group record key');
  if (value === null) return { type: 'group-tombstone', groupId };
  const r = valueReader(value);
  const stateTick = r.uvarint('stateTick');
  const protocolType = readOptString(r, 'protocolType');
  const protocolName = readOptString(r, 'protocolName');
  const generation = r.uvarint('generation', PARTITION_MAX);
  const leaderId = readOptString(r, 'leaderId');
  const count = r.count('members', RECORD_MEMBERS_MAX);
  const members: PersistedMember[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < count; i++) {
    const memberId = r.string('memberId');
    if (ids.has(memberId)) throw corruptData(`group record: member ${memberId} twice`);
    ids.add(memberId);
    const groupInstanceId = readOptString(r, 'groupInstanceId');
    const clientId = r.string('clientId');
    const sessionTimeoutTicks = r.uvarint('sessionTimeoutTicks');
    const rebalanceTimeoutTicks = r.uvarint('rebalanceTimeoutTicks');
    const n = r.count('protocols', RECORD_PROTOCOLS_MAX);
    const protocols = [];
    for (let j = 0; j < n; j++) {
      protocols.push({
        name: r.string('protocol name'),
        metadata: readBytes(r, 'protocol metadata'),
      });
    }
    const assignment = readBytes(r, 'assignment');
    members.push({
      memberId,
      groupInstanceId,
      clientId,
      sessionTimeoutTicks,
      rebalanceTimeoutTicks,
      protocols,
      assignment,
    });
  }
  r.expectEnd('group record value');
  if (leaderId !== null && !ids.has(leaderId)) {
    throw corruptData(`group record: leader ${leaderId} is not a member`);
  }
  if ((members.length === 0) !== (leaderId === null)) {
    throw corruptData('group record: a group has a leader exactly when it has members');
  }
  return {
    type: 'group',
    groupId,
    stateTick,
    protocolType,
    protocolName,
    generation,
    leaderId,
    members,
  };
}

function valueReader(value: Uint8Array): ByteReader {
  const r = new ByteReader(value);
  const version = r.u8('record value version');
  if (version !== VALUE_VERSION)
    throw corruptData(`group record: unknown value version ${version}`);
  return r;
}

/**
 * Rebuilds the coordinator state from its partition's records, in log order (compacted or not:
 * the latest record of a key wins). A group with members loads as Stable and its members'
 * sessions start at `loadTick`: a member that is gone expires one session timeout later.
 */
export function replay(
  base: CoordinatorState,
  records: Iterable<GroupRecord>,
  loadTick: number,
): CoordinatorState {
  const groups = new Map<string, Group>(base.groups);
  for (const rec of records) {
    const g = groups.get(rec.groupId);
    switch (rec.type) {
      case 'group': {
        const members = new Map<string, GroupMember>();
        for (const m of rec.members) {
          members.set(m.memberId, {
            ...m,
            heartbeatDeadlineTick: loadTick + m.sessionTimeoutTicks,
            pendingJoin: null,
            pendingSync: null,
          });
        }
        groups.set(rec.groupId, {
          ...emptyGroup(rec.groupId, rec.stateTick),
          state: members.size > 0 ? 'Stable' : 'Empty',
          protocolType: rec.protocolType,
          protocolName: rec.protocolName,
          generation: rec.generation,
          leaderId: rec.leaderId,
          members,
          offsets: g?.offsets ?? new Map(),
        });
        break;
      }
      case 'group-tombstone':
        groups.delete(rec.groupId);
        break;
      case 'offset': {
        const target = g ?? emptyGroup(rec.groupId, rec.commitTick);
        const offsets = new Map<string, CommittedOffset>(target.offsets);
        offsets.set(offsetKey(rec.topic, rec.partition), {
          offset: rec.offset,
          metadata: rec.metadata,
          commitTick: rec.commitTick,
        });
        groups.set(rec.groupId, { ...target, offsets });
        break;
      }
      case 'offset-tombstone': {
        if (g === undefined) break;
        const offsets = new Map(g.offsets);
        offsets.delete(offsetKey(rec.topic, rec.partition));
        groups.set(rec.groupId, { ...g, offsets });
        break;
      }
    }
  }
  return { ...base, groups };
}

/**
 * The durable part of a state, canonical (sorted, transient fields left out), for comparing a
 * replayed state with the live one. Equal when every group is Empty or Stable.
 */
export function durableView(state: CoordinatorState): unknown {
  return [...state.groups.values()]
    .sort((a, b) => (a.groupId < b.groupId ? -1 : 1))
    .map((g) => ({
      groupId: g.groupId,
      state: g.state,
      stateTick: g.stateTick,
      protocolType: g.protocolType,
      protocolName: g.protocolName,
      generation: g.generation,
      leaderId: g.leaderId,
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        sessionTimeoutTicks: m.sessionTimeoutTicks,
        rebalanceTimeoutTicks: m.rebalanceTimeoutTicks,
        protocols: m.protocols.map((p) => ({
          name: p.name,
          metadata: Buffer.from(p.metadata).toString('hex'),
        })),
        assignment: Buffer.from(m.assignment).toString('hex'),
      })),
      offsets: [...g.offsets.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    }));
}
