// The scripted scenario driver for the group state machine, in the style of
// packages/raft/src/sim/scenario.ts and controller/controller-scenario.ts: a small command
// language, canonical output, `REWRITE=1` to regenerate (group-scenario.test.ts runs
// packages/broker/testdata/groups/*.txt).
//
// File format: lines starting with `> ` are commands; the lines after a command, up to the next
// command, comment or blank line, are its expected output. `#` and blank lines are kept.
//
// The driver plays the clients: each client name remembers its member id, generation, protocol,
// subscription and owned partitions, the way a consumer does. A client whose preferred protocol
// is eager (range, roundrobin) gives up everything it owns before it joins; a cooperative one
// keeps its partitions and lists them as owned. After every sync the driver checks that no
// partition is owned by two clients of a group at once and prints `OWNERSHIP BUG` if it is.
//
// Commands (ticks are absolute; `at T` moves time forward before the command):
//   config key=value...                 limits (before the first group), seed=S
//   topics t1=4 t2=2 | topics none      partition counts the coordinator knows
//   join G C [new] [member=ID] [instance=I] [topics=a,b] [protocols=p,q] [session=S]
//            [rebalance=R] [require-id] [metadata-bytes=N]
//   sync G C [gen=N] [assign] [assignment-bytes=N]
//                                       assign: C is the leader and runs its protocol's assignor;
//                                       assignment-bytes: it sends N zero bytes to every member
//   (a group id "" is the empty string)
//   heartbeat G C [gen=N] [member=ID]  | leave G C [member=ID] [instance=I]
//   commit G [C] [gen=N] t/p=offset[:metadata]...  (no C: a simple commit from outside)
//   fetch G [t/p...] | describe G | list | delete G | delete-offsets G t/p...
//   tick T                              runs the tick event at every tick up to T
//   replay                              rebuilds from every record written so far and compares
//   records on|off                      print records as they are written (on by default)
import {
  ASSIGNORS,
  type AssignorMember,
  compareTopicPartitions,
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  revokedPartitions,
  StreamBusError,
} from '@streambus/protocol';
import { rerunScenario } from '../testing/scenario-file.js';
import { groupErrorName } from './group-errors.js';
import { initialCoordinatorState, step } from './group-state.js';
import { decodeGroupRecord, durableView, encodeGroupRecord, replay } from './records.js';
import {
  type CoordinatorState,
  DEFAULT_GROUP_LIMITS,
  type GroupEvent,
  type GroupLimits,
  type GroupRecord,
  type GroupResponse,
  type JoinMemberInfo,
  type TopicPartition,
} from './types.js';

const EAGER = new Set(['range', 'roundrobin']);

interface Client {
  name: string;
  groupId: string;
  memberId: string | null;
  instanceId: string | null;
  generation: number;
  protocols: string[];
  topics: string[];
  owned: TopicPartition[];
  session: number;
  rebalance: number;
  /** The member list of the last join answered to this client as leader. */
  leaderMembers: readonly JoinMemberInfo[];
  protocolName: string;
}

const SCENARIO_LIMITS: GroupLimits = {
  ...DEFAULT_GROUP_LIMITS,
  sessionTimeoutTicksMin: 1,
  initialRebalanceDelayTicks: 0,
  offsetsRetentionTicks: 100,
};

export class GroupScenario {
  private state: CoordinatorState = initialCoordinatorState('s', SCENARIO_LIMITS);
  private now = 0;
  private nextRequest = 1;
  private readonly clients = new Map<string, Client>();
  /** Request id -> the client that sent it. */
  private readonly requests = new Map<number, string>();
  private readonly clientOf = new Map<number, Client>();
  private readonly written: GroupRecord[] = [];
  private printRecords = true;
  private out: string[] = [];

  /** The coordinator state now (for property tests). */
  get current(): CoordinatorState {
    return this.state;
  }

  /** Every record written so far, decoded back from its bytes. */
  get records(): readonly GroupRecord[] {
    return this.written;
  }

  get tick(): number {
    return this.now;
  }

  run(line: string): string[] {
    this.out = [];
    const words = line.trim().split(/\s+/);
    if (words[0] === 'at') {
      this.advance(Number(words[1]));
      words.splice(0, 2);
    }
    const [cmd, ...args] = words;
    try {
      this.dispatch(cmd ?? '', args);
    } catch (err) {
      if (!(err instanceof StreamBusError)) throw err;
      this.out.push(`error ${err.errorName} (${err.code}): ${err.message}`);
    }
    return this.out;
  }

  /** `acting`: the request is the client's own (not sent with a `gen=`/`member=` override). */
  private apply(event: GroupEvent, client?: string, acting = true): void {
    if ('requestId' in event && client !== undefined) {
      this.requests.set(event.requestId, client);
      const c = this.clients.get(client);
      if (c !== undefined && acting) this.clientOf.set(event.requestId, c);
    }
    const result = step(this.state, event, this.now);
    this.state = result.state;
    for (const r of result.records) {
      // Every record goes through the codec, as it would through the partition.
      const { key, value } = encodeGroupRecord(r);
      const back = decodeGroupRecord(key, value);
      this.written.push(back);
      if (this.printRecords) this.out.push(`  record ${formatRecord(back)}`);
    }
    for (const r of result.responses) this.out.push(this.onResponse(r));
  }

  private advance(to: number): void {
    if (!(to >= this.now)) throw new Error(`scenario: time goes backwards to ${to}`);
    while (this.now < to) {
      this.now++;
      this.apply({ type: 'tick' });
    }
  }

  private request(): number {
    return this.nextRequest++;
  }

  private client(name: string | undefined): Client {
    const c = this.clients.get(name ?? '');
    if (c === undefined) throw new Error(`scenario: unknown client ${name}`);
    return c;
  }

  private dispatch(cmd: string, args: string[]): void {
    const opts = options(args);
    const [groupId = '', name] = opts.positional;
    switch (cmd) {
      case 'config': {
        const limits: Record<string, number> = { ...this.state.limits };
        let seed = this.state.memberIdSeed;
        for (const [k, v] of opts.named) {
          if (k === 'seed') seed = v;
          else if (k in limits) limits[k] = Number(v);
          else throw new Error(`scenario: unknown limit ${k}`);
        }
        this.state = initialCoordinatorState(seed, limits as unknown as GroupLimits);
        return;
      }
      case 'topics': {
        const counts =
          groupId === 'none'
            ? null
            : new Map([...opts.named].map(([t, n]) => [t, Number(n)] as [string, number]));
        this.apply({ type: 'topics', partitionCounts: counts });
        return;
      }
      case 'join':
        this.join(groupId, name ?? '', opts);
        return;
      case 'sync': {
        const c = this.client(name);
        let assignments: { memberId: string; assignment: Uint8Array }[] = [];
        if (opts.flags.has('assign')) assignments = this.runAssignor(c);
        const raw = opts.named.get('assignment-bytes');
        if (raw !== undefined) {
          assignments = c.leaderMembers.map((m) => ({
            memberId: m.memberId,
            assignment: new Uint8Array(Number(raw)),
          }));
        }
        const id = this.request();
        this.apply(
          {
            type: 'sync',
            requestId: id,
            groupId,
            generation: num(opts.named.get('gen'), c.generation),
            memberId: opts.named.get('member') ?? c.memberId ?? '',
            groupInstanceId: c.instanceId,
            assignments,
          },
          name,
          !opts.override,
        );
        return;
      }
      case 'heartbeat': {
        const c = this.client(name);
        this.apply(
          {
            type: 'heartbeat',
            requestId: this.request(),
            groupId,
            generation: num(opts.named.get('gen'), c.generation),
            memberId: opts.named.get('member') ?? c.memberId ?? '',
            groupInstanceId: c.instanceId,
          },
          name,
          !opts.override,
        );
        return;
      }
      case 'leave': {
        const c = name === undefined ? undefined : this.clients.get(name);
        this.apply(
          {
            type: 'leave',
            requestId: this.request(),
            groupId,
            memberId: opts.named.get('member') ?? c?.memberId ?? '',
            groupInstanceId: opts.named.get('instance') ?? c?.instanceId ?? null,
          },
          name,
          !opts.override,
        );
        return;
      }
      case 'commit': {
        const c = name === undefined || name.includes('=') ? undefined : this.clients.get(name);
        const offsets = [...opts.named]
          .filter(([k]) => k.includes('/'))
          .map(([k, v]) => {
            const tp = parseTp(k);
            const colon = v.indexOf(':');
            return {
              ...tp,
              offset: Number(colon < 0 ? v : v.slice(0, colon)),
              metadata: colon < 0 ? '' : v.slice(colon + 1),
            };
          });
        const bigMeta = opts.named.get('metadata-bytes');
        this.apply(
          {
            type: 'commit',
            requestId: this.request(),
            groupId,
            generation: num(opts.named.get('gen'), c?.generation ?? -1),
            memberId: opts.named.get('member') ?? c?.memberId ?? '',
            groupInstanceId: c?.instanceId ?? null,
            offsets: offsets.map((o) =>
              bigMeta === undefined ? o : { ...o, metadata: 'm'.repeat(Number(bigMeta)) },
            ),
          },
          name,
          !opts.override,
        );
        return;
      }
      case 'fetch': {
        const tps = opts.positional.slice(1).map(parseTp);
        this.apply({
          type: 'fetch',
          requestId: this.request(),
          groupId,
          partitions: tps.length === 0 ? null : tps,
        });
        return;
      }
      case 'describe':
        this.apply({ type: 'describe', requestId: this.request(), groupId });
        return;
      case 'list':
        this.apply({ type: 'list', requestId: this.request() });
        return;
      case 'delete':
        this.apply({ type: 'delete-group', requestId: this.request(), groupId });
        return;
      case 'delete-offsets':
        this.apply({
          type: 'delete-offsets',
          requestId: this.request(),
          groupId,
          partitions: opts.positional.slice(1).map(parseTp),
        });
        return;
      case 'tick':
        this.advance(Number(groupId));
        return;
      case 'records':
        this.printRecords = groupId === 'on';
        return;
      case 'replay': {
        const rebuilt = replay(
          initialCoordinatorState('r', this.state.limits),
          this.written,
          this.now,
        );
        const same =
          JSON.stringify(durableView(rebuilt)) === JSON.stringify(durableView(this.state));
        this.out.push(
          `replay ${this.written.length} records: ${same ? 'identical' : 'DIFFERS from the live state'}`,
        );
        return;
      }
      default:
        throw new Error(`scenario: unknown command '${cmd}'`);
    }
  }

  private join(groupId: string, name: string, opts: Options): void {
    let c = this.clients.get(name);
    if (c === undefined) {
      c = {
        name,
        groupId,
        memberId: null,
        instanceId: null,
        generation: -1,
        protocols: ['cooperative-sticky'],
        topics: [],
        owned: [],
        session: 10,
        rebalance: 20,
        leaderMembers: [],
        protocolName: '',
      };
      this.clients.set(name, c);
    }
    if (opts.flags.has('new')) {
      // A restart: a new process with the same client name and instance id, owning nothing.
      c.memberId = null;
      c.generation = -1;
      c.owned = [];
    }
    const get = (k: string) => opts.named.get(k);
    if (get('instance') !== undefined) c.instanceId = get('instance') ?? null;
    if (get('topics') !== undefined) c.topics = (get('topics') ?? '').split(',').filter(Boolean);
    if (get('protocols') !== undefined) c.protocols = (get('protocols') ?? '').split(',');
    c.session = num(get('session'), c.session);
    c.rebalance = num(get('rebalance'), c.rebalance);
    if (EAGER.has(c.protocols[0] ?? '') && c.owned.length > 0) {
      this.out.push(`  ${name} revokes everything before joining: [${formatTps(c.owned)}]`);
      c.owned = [];
    }
    const subscription = encodeSubscription({
      topics: c.topics,
      ownedPartitions: c.owned,
      userData: new Uint8Array(num(get('metadata-bytes'), 0)),
    });
    this.apply(
      {
        type: 'join',
        requestId: this.request(),
        groupId,
        memberId: get('member') ?? c.memberId,
        groupInstanceId: c.instanceId,
        clientId: name,
        protocolType: 'consumer',
        protocols: c.protocols.map((p) => ({ name: p, metadata: subscription })),
        sessionTimeoutTicks: c.session,
        rebalanceTimeoutTicks: c.rebalance,
        requireKnownMemberId: opts.flags.has('require-id'),
      },
      name,
    );
  }

  private runAssignor(c: Client): { memberId: string; assignment: Uint8Array }[] {
    // A client that is not the leader of its last join has nothing to assign with.
    if (c.leaderMembers.length === 0) return [];
    const assignor = ASSIGNORS.get(c.protocolName);
    if (assignor === undefined) throw new Error(`scenario: no assignor ${c.protocolName}`);
    const members: AssignorMember[] = c.leaderMembers.map((m) => {
      const sub = decodeSubscription(m.metadata);
      return { memberId: m.memberId, topics: sub.topics, ownedPartitions: sub.ownedPartitions };
    });
    const counts = this.state.topics ?? new Map<string, number>();
    const result = assignor.assign(members, counts);
    return [...result].map(([memberId, partitions]) => ({
      memberId,
      assignment: encodeAssignment({ partitions, userData: new Uint8Array(0) }),
    }));
  }

  private onResponse(r: GroupResponse): string {
    const line = this.formatResponse(r);
    const c = this.clientOf.get(r.requestId);
    this.clientOf.delete(r.requestId);
    if (c === undefined) return line;
    // A consumer told it is no longer in the generation gives up its partitions (a zombie keeps
    // them only until it hears so); one that left has given them up already.
    const error = 'error' in r ? r.error : 0;
    const out = error === 22 || error === 25 || error === 82 || (r.kind === 'leave' && error === 0);
    if (out && c.owned.length > 0) {
      c.owned = [];
      return `${line}\n  ${c.name} gives up its partitions`;
    }
    return line;
  }

  private formatResponse(r: GroupResponse): string {
    const name = this.requests.get(r.requestId);
    this.requests.delete(r.requestId);
    const who = `${r.kind}#${r.requestId}${name === undefined ? '' : ` ${name}`}`;
    const c = name === undefined ? undefined : this.clients.get(name);
    switch (r.kind) {
      case 'join': {
        if (c !== undefined && (r.error === 0 || r.error === 79) && r.memberId !== '') {
          c.memberId = r.memberId;
        }
        if (c !== undefined && r.error === 0) {
          c.generation = r.generation;
          c.protocolName = r.protocolName;
          c.leaderMembers = r.members;
        }
        const base = `${who}: ${groupErrorName(r.error)} member=${r.memberId || '-'}`;
        if (r.error !== 0) return base;
        const members =
          r.members.length === 0 ? '' : ` members=[${r.members.map((m) => m.memberId).join(' ')}]`;
        const skip = r.skipAssignment ? ' skip-assignment' : '';
        return `${base} gen=${r.generation} protocol=${r.protocolName} leader=${r.leaderId}${members}${skip}`;
      }
      case 'sync': {
        if (r.error !== 0 || c === undefined) return `${who}: ${groupErrorName(r.error)}`;
        const assigned = decodeAssignment(r.assignment).partitions;
        const revoked = revokedPartitions(c.owned, assigned);
        c.owned = [...assigned].sort(compareTopicPartitions);
        const rev = revoked.length === 0 ? '' : ` revoked=[${formatTps(revoked)}]`;
        return `${who}: NONE assigned=[${formatTps(assigned)}]${rev}${this.checkOwnership(c.groupId, c.generation)}`;
      }
      case 'commit':
        return `${who}: ${groupErrorName(r.error)} ${r.partitions
          .map((p) => `${p.topic}/${p.partition}:${groupErrorName(p.error)}`)
          .join(' ')}`;
      case 'fetch':
        return `${who}: ${r.partitions
          .map(
            (p) => `${p.topic}/${p.partition}=${p.offset}${p.metadata ? ` "${p.metadata}"` : ''}`,
          )
          .join(' ')}`.trimEnd();
      case 'describe': {
        const g = r.group;
        const lines = [
          `${who}: ${groupErrorName(r.error)} state=${g.state} gen=${g.generation} protocol=${g.protocolType}/${g.protocolName} leader=${g.leaderId || '-'}`,
        ];
        for (const m of g.members) {
          const a = decodeAssignment(m.assignment).partitions;
          lines.push(
            `  ${m.memberId} instance=${m.groupInstanceId ?? '-'} client=${m.clientId} assigned=[${formatTps(a)}]`,
          );
        }
        return lines.join('\n');
      }
      case 'list':
        return `${who}: ${r.groups.map((g) => `${g.groupId}(${g.state})`).join(' ')}`.trimEnd();
      default:
        return `${who}: ${groupErrorName(r.error)}`;
    }
  }

  /** No partition may be owned by two clients of the same group and generation. */
  private checkOwnership(groupId: string, generation: number): string {
    const owner = new Map<string, string>();
    const bugs: string[] = [];
    for (const [name, c] of this.clients) {
      if (c.groupId !== groupId || c.generation !== generation) continue;
      for (const tp of c.owned) {
        const key = `${tp.topic}/${tp.partition}`;
        const other = owner.get(key);
        if (other !== undefined) bugs.push(`${key} by ${other} and ${name}`);
        owner.set(key, name);
      }
    }
    return bugs.length === 0 ? '' : `\nOWNERSHIP BUG: ${bugs.join(', ')}`;
  }
}

interface Options {
  /** A `gen=` or `member=` override: the request is a zombie's, not the client's own. */
  override: boolean;
  positional: string[];
  named: Map<string, string>;
  flags: Set<string>;
}

const FLAGS = new Set(['new', 'assign', 'require-id']);

function options(args: readonly string[]): Options {
  const o: Options = { override: false, positional: [], named: new Map(), flags: new Set() };
  for (const a of args) {
    const i = a.indexOf('=');
    if (a.startsWith('gen=') || a.startsWith('member=')) o.override = true;
    if (i > 0) o.named.set(a.slice(0, i), a.slice(i + 1));
    else if (FLAGS.has(a)) o.flags.add(a);
    else o.positional.push(a === '""' ? '' : a);
  }
  return o;
}

function num(v: string | undefined, fallback: number): number {
  return v === undefined ? fallback : Number(v);
}

function parseTp(s: string): TopicPartition {
  const i = s.lastIndexOf('/');
  return { topic: s.slice(0, i), partition: Number(s.slice(i + 1)) };
}

function formatTps(tps: readonly TopicPartition[]): string {
  return tps.map((tp) => `${tp.topic}/${tp.partition}`).join(' ');
}

export function formatRecord(r: GroupRecord): string {
  switch (r.type) {
    case 'group': {
      const members = r.members
        .map((m) => `${m.memberId}:[${formatTps(decodeAssignment(m.assignment).partitions)}]`)
        .join(' ');
      return `group ${r.groupId} gen=${r.generation} protocol=${r.protocolName ?? '-'} leader=${r.leaderId ?? '-'} members={${members}}`;
    }
    case 'group-tombstone':
      return `group ${r.groupId} tombstone`;
    case 'offset':
      return `offset ${r.groupId} ${r.topic}/${r.partition}=${r.offset} at ${r.commitTick}`;
    case 'offset-tombstone':
      return `offset ${r.groupId} ${r.topic}/${r.partition} tombstone`;
  }
}

/** Re-runs every command of a scenario file and returns the file with fresh outputs. */
export function runGroupScenario(source: string): string {
  const env = new GroupScenario();
  return rerunScenario(source, (command) => env.run(command));
}
