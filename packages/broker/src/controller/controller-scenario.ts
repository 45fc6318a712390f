// The scripted scenario driver for the controller (the data-driven style of etcd-raft's
// interaction tests, as packages/raft/src/sim/scenario.ts does for Raft): a small command
// language that drives the planner and the state machine step by step, with canonical, diffable
// output. Used by controller-scenario.test.ts on packages/broker/testdata/controller/*.txt.
//
// File format: lines starting with `> ` are commands; the lines after a command, up to the next
// command, comment or blank line, are its expected output. `#` lines and blank lines are kept as
// they are. Every planned record is printed (`propose ...`) and applied at once, as if the
// metadata log committed it; a `PLANNER BUG` line would show a planned record that did not
// apply (the planner asserts that never happens).
//
// Commands:
//   bootstrap CLUSTER | register ID HOST:PORT INCARNATION | heartbeat ID TICK [epoch=E]
//   fence-expired TICK SESSION_TICKS | create-topic NAME PARTITIONS [rf=R] [key=value...]
//   delete-topic NAME | alter-config NAME key=value|key=... | isr NAME/PARTITION ID,ID...
//   elected NAME/PARTITION ID TERM [isr=ID,ID...]   the partition's Raft group elected ID in TERM
//   preferred-leaders (prints the leader moves, proposes nothing) | shutdown ID | allocate-pids BROKER COUNT
//   replay N        re-applies the last N proposed records (committed twice: each a no-op)
//   snapshot        encodes, decodes and re-encodes the state; continues from the decoded one
//   state | describe NAME | brokers
import { StreamBusError } from '@streambus/protocol';
import { rerunScenario } from '../testing/scenario-file.js';
import {
  planAllocateProducerIds,
  planAlterTopicConfig,
  planBootstrap,
  planControlledShutdown,
  planCreateTopic,
  planDeleteTopic,
  planFenceExpired,
  planHeartbeat,
  planIsrChange,
  planRegisterBroker,
  preferredLeaderMoves,
} from './controller-planner.js';
import { formatRecord, type MetadataRecord } from './metadata-records.js';
import {
  applyRecord,
  brokersInOrder,
  decodeSnapshot,
  EMPTY_METADATA_STATE,
  encodeSnapshot,
  formatState,
  leaderCounts,
  type MetadataState,
  replicaCounts,
  topicByName,
} from './metadata-state.js';

export class ControllerScenario {
  private state: MetadataState = EMPTY_METADATA_STATE;
  private readonly proposed: MetadataRecord[] = [];
  private out: string[] = [];

  run(line: string): string[] {
    this.out = [];
    const [cmd, ...args] = line.trim().split(/\s+/);
    try {
      const records = this.dispatch(cmd ?? '', args);
      if (records !== null) this.propose(records);
    } catch (err) {
      if (!(err instanceof StreamBusError)) throw err;
      this.out.push(`error ${err.errorName} (${err.code}): ${err.message}`);
    }
    return this.out;
  }

  private propose(records: readonly MetadataRecord[]): void {
    if (records.length === 0) this.out.push('(nothing to propose)');
    for (const r of records) {
      this.out.push(`propose ${formatRecord(r)}`);
      const noop = this.commit(r);
      if (noop !== null) this.out.push(`PLANNER BUG: planned record is a no-op: ${noop}`);
      this.proposed.push(r);
    }
  }

  /** Applies `r` as the committed log would; the no-op reason, if any. */
  private commit(r: MetadataRecord): string | null {
    const result = applyRecord(this.state, r);
    this.state = result.state;
    return result.noop;
  }

  private topic(name: string | undefined) {
    const t = topicByName(this.state, name ?? '');
    if (t === undefined) throw new Error(`scenario: no topic ${name}`);
    return t;
  }

  /** The records a planning command proposes, or null for a command that only inspects. */
  private dispatch(cmd: string, args: string[]): readonly MetadataRecord[] | null {
    const s = this.state;
    switch (cmd) {
      case 'bootstrap':
        return planBootstrap(s, args[0] ?? '');
      case 'register': {
        const [host, port] = (args[1] ?? '').split(':');
        return planRegisterBroker(s, {
          brokerId: Number(args[0]),
          host: host ?? '',
          port: Number(port),
          incarnation: args[2] ?? '',
        });
      }
      case 'heartbeat': {
        const id = Number(args[0]);
        const epochArg = args.find((a) => a.startsWith('epoch='));
        const brokerEpoch = epochArg
          ? Number(epochArg.slice(6))
          : (s.brokers.get(id)?.brokerEpoch ?? 0);
        return planHeartbeat(s, { brokerId: id, brokerEpoch }, Number(args[1]));
      }
      case 'fence-expired':
        return planFenceExpired(s, Number(args[0]), Number(args[1]));
      case 'create-topic': {
        let rf = -1;
        const configs: Record<string, string> = {};
        for (const a of args.slice(2)) {
          const [k, v] = splitPair(a);
          if (k === 'rf') rf = Number(v);
          else configs[k] = v ?? '';
        }
        return planCreateTopic(s, {
          name: args[0] ?? '',
          partitions: Number(args[1]),
          replicationFactor: rf,
          configs,
        });
      }
      case 'delete-topic':
        return planDeleteTopic(s, args[0] ?? '');
      case 'alter-config': {
        const changes: Record<string, string | null> = {};
        for (const a of args.slice(1)) {
          const [k, v] = splitPair(a);
          changes[k] = v === '' ? null : (v ?? null);
        }
        return planAlterTopicConfig(s, args[0] ?? '', changes);
      }
      case 'isr': {
        const [name, p] = (args[0] ?? '').split('/');
        const t = this.topic(name);
        const part = t.partitions[Number(p)];
        if (part === undefined) throw new Error(`scenario: no partition ${args[0]}`);
        const isr = (args[1] ?? '').split(',').filter(Boolean).map(Number);
        return planIsrChange(s, {
          topicId: t.id,
          partition: Number(p),
          leader: part.leader,
          leaderEpoch: part.leaderEpoch,
          isr,
        });
      }
      case 'elected': {
        const [name, p] = (args[0] ?? '').split('/');
        const t = this.topic(name);
        const part = t.partitions[Number(p)];
        if (part === undefined) throw new Error(`scenario: no partition ${args[0]}`);
        const isrArg = args.find((a) => a.startsWith('isr='));
        return planIsrChange(s, {
          topicId: t.id,
          partition: Number(p),
          leader: Number(args[1]),
          leaderEpoch: Number(args[2]),
          isr: isrArg ? isrArg.slice(4).split(',').filter(Boolean).map(Number) : part.isr,
        });
      }
      case 'preferred-leaders': {
        const moves = preferredLeaderMoves(s);
        if (moves.length === 0) this.out.push('(no moves)');
        for (const m of moves) this.out.push(`move ${m.topic}/${m.partition} ${m.from} -> ${m.to}`);
        return null;
      }
      case 'shutdown': {
        const id = Number(args[0]);
        return planControlledShutdown(s, {
          brokerId: id,
          brokerEpoch: s.brokers.get(id)?.brokerEpoch ?? 0,
        });
      }
      case 'allocate-pids':
        return planAllocateProducerIds(s, Number(args[0]), Number(args[1]));
      case 'replay': {
        const records = this.proposed.slice(-Number(args[0]));
        for (const r of records) {
          this.out.push(`commit ${formatRecord(r)}`);
          const noop = this.commit(r);
          this.out.push(noop === null ? '  -> applied' : `  -> no-op: ${noop}`);
        }
        return null;
      }
      case 'snapshot': {
        const bytes = encodeSnapshot(s);
        const restored = decodeSnapshot(bytes);
        const again = encodeSnapshot(restored);
        const same = Buffer.from(again).equals(Buffer.from(bytes));
        this.out.push(
          `snapshot ${bytes.length} bytes, round trip ${same ? 'identical' : 'DIFFERS'}`,
        );
        this.state = restored;
        return null;
      }
      case 'state':
        this.out.push(...formatState(s));
        return null;
      case 'describe': {
        const t = this.topic(args[0]);
        t.partitions.forEach((p, i) => {
          this.out.push(
            `${t.name}/${i} leader=${p.leader} leaderEpoch=${p.leaderEpoch} replicas=[${p.replicas.join(',')}] isr=[${p.isr.join(',')}]`,
          );
        });
        return null;
      }
      case 'brokers': {
        const leaders = leaderCounts(s);
        const replicas = replicaCounts(s);
        for (const b of brokersInOrder(s)) {
          this.out.push(
            `${b.id} ${b.host}:${b.port} ${b.fenced ? 'fenced' : 'live'} replicas=${replicas.get(b.id)} leaders=${leaders.get(b.id)}`,
          );
        }
        return null;
      }
      default:
        throw new Error(`scenario: unknown command '${cmd}'`);
    }
  }
}

function splitPair(arg: string): [string, string | undefined] {
  const i = arg.indexOf('=');
  return i < 0 ? [arg, undefined] : [arg.slice(0, i), arg.slice(i + 1)];
}

/** Re-runs every command of a scenario file and returns the file with fresh outputs. */
export function runControllerScenario(source: string): string {
  const env = new ControllerScenario();
  return rerunScenario(source, (command) => env.run(command));
}
