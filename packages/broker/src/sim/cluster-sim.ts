// The deterministic cluster simulation (issue 9, "Tests"): N broker processes, each with its
// simulated disk (SimDisk over MemoryFileSystem), transport (SimTransport on one SimNetwork) and
// group host (SimGroupHost), hosting real partition replicas (or the stand-in test double),
// driven by one simulated clock and one seed (TigerBeetle's VOPR idea, one level above the Raft
// core's own simulator in packages/raft/src/sim).
//
// A run: a fault phase (`faultPhaseMs`) in which producers write (acks=all, acks=1, idempotent
// retries), consumers read up to the high watermark, and chaos strikes: symmetric partitions,
// one-way cuts, healing, message delay/reordering/loss/duplication, crashes (unsynced writes
// lost, or a random prefix kept; a crash while an fsync is pending loses it), restarts from the
// durable state, slow disks, leadership transfers, rack power cuts (fsyncs slow on every broker,
// then the power goes right after an acks=all acknowledgement). Then everything heals, crashed brokers
// restart, and liveness is required: per partition an acks=all probe must be acknowledged, and
// every replica's high watermark must reach it, within LIVENESS_TICKS_MAX ticks. Finally every
// replica's committed log is read back and checked (partition-checker.ts).
//
// Quiescence: real replicas quiesce idle groups (docs/raft.md). Odd seeds have idle spells (no
// produce or consume for 100-500 ms) so groups go quiet during the faults; ticks with a quiesced
// leader and crashes of a broker holding one are counted (`quiesced-leader-tick`,
// `crash-quiesced-leader`). A crash is reported to the other brokers as closed links
// (sim-network.ts), which is what wakes a quiesced group whose leader died.
//
// The broken variant (`unsafeAckOnLeaderWrite`) answers acks=all producers at the leader's own
// write instead of at commit, in this harness, to show the checkers catch a lost
// acknowledgement.
//
// Leader reads: a read answered by a leader of term T must see a high watermark at or above
// every acks=all acknowledgement given (before the read) by a leader of a term <= T
// (`leader-read-below-acked`); that is what read-gating guarantees (partition-replica.ts). A
// deposed leader that does not know it yet (a lower term) may serve an older high watermark,
// which is not checked. `unsafeUngatedLeaderReads` turns the gate off to show the check bites.
//
// Pipelined persistence (partition-replica.ts): a replica writes the next Ready while the last
// one's fsync runs; crashes with entries written and not durable are counted
// (`crash-write-unsynced`; some replicas get a small unsyncedBytesMax so writes also wait).
// `unsafeDurableAtWrite` counts entries durable once written, to show the checkers catch it. It does not model clock drift, disk corruption or byzantine peers.

import { batchSizeAt, encodeRecordBatch, StreamBusError } from '@streambus/protocol';
import { asNodeId, type NodeId, type SeededRandom, seededRandom } from '@streambus/raft';
import type { GroupKey } from '../cluster/contract.js';
import { ControllerSim } from './controller-sim.js';
import {
  checkPartition,
  decodeLog,
  PartitionObservations,
  type Violation,
} from './partition-checker.js';
import { SimDisk } from './sim-disk.js';
import { SimGroupHost } from './sim-host.js';
import { SimLoop } from './sim-loop.js';
import { CALM_WEATHER, type NetworkWeather, SimNetwork, type SimTransport } from './sim-network.js';
import type { SimAcks, SimReplica, SimReplicaFactory } from './sim-replica.js';

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 2;
/** After healing: an acks=all probe acknowledged and every replica caught up, per partition. */
export const LIVENESS_TICKS_MAX = 15 * ELECTION_TICKS;
/** A produce not answered within this is given up by the producer (outcome unknown). */
export const PRODUCE_TIMEOUT_MS = 300;
const READ_BYTES_MAX = 64 * 1024;
const TRACE_BATCHES_MAX = 500;
const EPOCH_MS = 1_700_000_000_000;

export interface ClusterSimOptions {
  readonly seed: number;
  /** Simulated milliseconds of faults before healing (default 1500). */
  readonly faultPhaseMs?: number;
  readonly replica: SimReplicaFactory;
  /** Run the real controller quorum on every broker too (default true). */
  readonly controller?: boolean;
  /**
   * A TOPIC_ALREADY_EXISTS told to a retry for a topic missing at the end is a violation
   * (default true; false only counts it, as before the controller stopped answering refusals
   * from uncommitted plans).
   */
  readonly strictTopicExists?: boolean;
  /** Test-only: answer acks=all at the leader's own write (the checkers must catch it). */
  readonly unsafeAckOnLeaderWrite?: boolean;
  /** Test-only: no leader read-gating in the replicas (the read checker must catch it). */
  readonly unsafeUngatedLeaderReads?: boolean;
  /** Broken on purpose: replicas count entries durable once written (pipelined persistence). */
  readonly unsafeDurableAtWrite?: boolean;
  /**
   * Rack power cuts (`rack-power-cut`, default true): false replays the chaos of the seeds run
   * before this fault existed (the regression seeds 2255 and 3070).
   */
  readonly rackPowerCuts?: boolean;
  readonly trace?: (line: string) => void;
}

export interface ClusterSimResult {
  readonly seed: number;
  readonly replica: string;
  readonly brokers: number;
  readonly partitions: number;
  readonly steps: number;
  readonly simTimeMs: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly produced: number;
  readonly ackedAll: number;
  readonly ackedLeader: number;
  readonly consumed: number;
  readonly committedRecords: number;
  readonly topicsCreated: number;
  /** Retries told TOPIC_ALREADY_EXISTS of a topic that never came to exist. */
  readonly existsAnswersLost: number;
  readonly violations: readonly Violation[];
  /** Ticks from healing until every partition made progress and converged, or null. */
  readonly livenessTicks: number | null;
}

interface Broker {
  readonly id: NodeId;
  readonly disk: SimDisk;
  generation: number;
  alive: boolean;
  transport: SimTransport | null;
  host: SimGroupHost | null;
  readonly replicas: Map<number, SimReplica>;
  slowDisk: boolean;
  /** Its rack's power is failing: fsyncs take 60-180 ms (rack power cut). */
  brownout: boolean;
}

type ProducerMode = 'all' | 'leader' | 'idempotent';

interface Producer {
  readonly id: number;
  readonly mode: ProducerMode;
  readonly partition: number;
  inflight: boolean;
  count: number;
  /** Idempotent producers resend this batch until it is acknowledged. */
  pending: { batch: Buffer; ids: string[]; attempts: number } | null;
}

interface Consumer {
  readonly partition: number;
  nextOffset: number;
}

/**
 * A rack's power failing (see `rackBrownout`): its disks are in brownout (slow fsyncs) until the
 * power goes at the first acks=all acknowledgement after `notBeforeMs`, or the brownout passes.
 */
interface RackCut {
  readonly notBeforeMs: number;
}

/** Part of the chaos rolls that start a rack brownout (one at a time, a majority running). */
const RACK_CUT_ROLL = 0.12;
/** The brownout lasts 10-59 ms before an acknowledgement can trigger the cut... */
const RACK_BROWNOUT_MIN_MS = 10;
const RACK_BROWNOUT_SPREAD_MS = 50;
/** ...and passes (no cut) if none came this long after it began (the cluster was not serving). */
const RACK_BROWNOUT_MAX_MS = 300;
/** Fsyncs in a brownout (write-through controllers): 60-180 ms. */
const RACK_FSYNC_MIN_MS = 60;
const RACK_FSYNC_SPREAD_MS = 120;
/** The power comes back 30-79 ms after the cut (every broker of the rack boots). */
const RACK_OUTAGE_MIN_MS = 30;
const RACK_OUTAGE_SPREAD_MS = 50;

interface Probe {
  ids: string[];
  inflight: boolean;
  ackedAt: number | null;
  endOffset: number;
}

export class ClusterSimulation {
  private readonly rng: SeededRandom;
  private readonly loop = new SimLoop();
  private readonly network: SimNetwork;
  private readonly brokers: Broker[] = [];
  private readonly partitions: number;
  private readonly observations: PartitionObservations[] = [];
  private readonly producers: Producer[] = [];
  private readonly consumers: Consumer[] = [];
  private readonly faults: Record<string, number> = {};
  private readonly violations: Violation[] = [];
  private readonly faultPhaseMs: number;
  private healed = false;
  /** Idle spell (odd seeds): no produce or consume before this time. */
  private idleUntil = 0;
  private healedAtTick = 0;
  private ticks = 0;
  private livenessTicks: number | null = null;
  private done = false;
  private produced = 0;
  private ackedAll = 0;
  private ackedLeader = 0;
  private consumed = 0;
  private committedRecords = 0;
  private readonly probes: Probe[] = [];
  /** Per partition: the highest acks=all end offset acknowledged by a leader of each term. */
  private readonly ackedEndByTerm: Map<number, number>[] = [];
  private readonly fsyncFastMaxMs: number;
  private readonly fsyncSlowMaxMs: number;
  private readonly ctl: ControllerSim | null;
  /**
   * The rack power cut's own draws (its rack, timing), apart from the main stream, so a seed's
   * other chaos stays as it was until a rack's power actually goes.
   */
  private readonly rackRng: SeededRandom;
  private rackCut: RackCut | null = null;

  constructor(private readonly options: ClusterSimOptions) {
    this.rng = seededRandom(options.seed);
    this.rackRng = seededRandom((options.seed ^ 0x5ac7c0de) >>> 0);
    const r = this.rng;
    this.faultPhaseMs = options.faultPhaseMs ?? 1500;
    this.network = new SimNetwork(this.loop, r.fork());
    this.network.weather = this.drawWeather();
    this.fsyncFastMaxMs = r.int(4);
    this.fsyncSlowMaxMs = 20 + r.int(80);
    const brokerCount = r.chance(0.7) ? 3 : 5;
    this.partitions = 1 + r.int(2);
    for (let i = 1; i <= brokerCount; i++) {
      const id = asNodeId(i);
      const broker: Broker = {
        id,
        disk: new SimDisk(this.loop, r.int(2 ** 31), () => this.fsyncDelay(broker)),
        generation: 0,
        alive: false,
        transport: null,
        host: null,
        replicas: new Map(),
        slowDisk: false,
        brownout: false,
      };
      this.brokers.push(broker);
    }
    for (let p = 0; p < this.partitions; p++) {
      this.observations.push(new PartitionObservations(`partition ${p}`));
      this.ackedEndByTerm.push(new Map());
      this.probes.push({ ids: [], inflight: false, ackedAt: null, endOffset: -1 });
    }
    this.ctl =
      options.controller === false
        ? null
        : new ControllerSim(
            this.loop,
            r.fork(),
            this.brokers.map((b) => b.id),
            ELECTION_TICKS,
            HEARTBEAT_TICKS,
            this.violations,
            (l) => this.trace(l),
            options.strictTopicExists !== false,
          );
    const modes: ProducerMode[] = ['all', 'all', 'leader', 'idempotent', 'idempotent'];
    modes.forEach((mode, i) => {
      this.producers.push({
        id: i + 1,
        mode,
        partition: i % this.partitions,
        inflight: false,
        count: 0,
        pending: null,
      });
    });
    for (let p = 0; p < this.partitions; p++) {
      this.consumers.push({ partition: p, nextOffset: 0 }, { partition: p, nextOffset: 0 });
    }
    const w = this.network.weather;
    this.trace(
      `seed ${options.seed}: ${brokerCount} brokers, ${this.partitions} partitions, replica ${options.replica.name}, delay ${w.delayMinMs}-${w.delayMaxMs} ms${w.reorder ? ' reordering' : ''}, loss ${w.lossRate.toFixed(3)}, dup ${w.dupRate.toFixed(3)}, fsync <= ${this.fsyncFastMaxMs} ms (slow <= ${this.fsyncSlowMaxMs} ms)`,
    );
  }

  private drawWeather(): NetworkWeather {
    const r = this.rng;
    const delayMinMs = 1 + r.int(4);
    return {
      delayMinMs,
      delayMaxMs: delayMinMs + r.int(30),
      lossRate: r.chance(0.4) ? 0 : r.float() * 0.08,
      dupRate: r.chance(0.5) ? 0 : r.float() * 0.04,
      reorder: r.chance(0.5),
    };
  }

  private fsyncDelay(b: Broker): number {
    if (b.brownout) return RACK_FSYNC_MIN_MS + this.rng.int(RACK_FSYNC_SPREAD_MS + 1);
    return this.rng.int((b.slowDisk ? this.fsyncSlowMaxMs : this.fsyncFastMaxMs) + 1);
  }

  private trace(line: string): void {
    this.options.trace?.(`[${String(this.loop.now).padStart(6)}ms] ${line}`);
  }

  private fault(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  private bug(detail: string): void {
    if (this.violations.length < 20) this.violations.push({ kind: 'harness-bug', detail });
  }

  private key(partition: number): GroupKey {
    return { topicId: 1, partition };
  }

  // ------------------------------------------------------------ broker processes

  private start(b: Broker): void {
    b.generation++;
    b.alive = true;
    const transport = this.network.transport(b.id);
    const host = new SimGroupHost(transport, (d) => this.bug(d));
    b.transport = transport;
    b.host = host;
    b.replicas.clear();
    const generation = b.generation;
    const voters = this.brokers.map((x) => x.id);
    const fs = b.disk.fs();
    this.ctl?.start(b.id, generation, fs, transport, host);
    for (let p = 0; p < this.partitions; p++) {
      this.options.replica
        .open({
          nodeId: b.id,
          key: this.key(p),
          voters,
          fs,
          dir: `/data/topic-1/${p}`,
          transport,
          host,
          random: this.rng.fork(),
          electionTicks: ELECTION_TICKS,
          heartbeatTicks: HEARTBEAT_TICKS,
          nowMs: () => EPOCH_MS + this.loop.now,
          ...(this.options.unsafeUngatedLeaderReads ? { unsafeUngatedLeaderReads: true } : {}),
          ...(this.options.unsafeDurableAtWrite ? { unsafeDurableAtWrite: true } : {}),
        })
        .then(
          (replica) => {
            if (b.generation === generation) b.replicas.set(p, replica);
          },
          (err: unknown) => {
            // A replica of a process that crashed meanwhile may fail on its dead file system.
            if (b.generation === generation)
              this.bug(`node ${b.id} could not open partition ${p}: ${String(err)}`);
          },
        );
    }
  }

  private crash(b: Broker): void {
    if ([...b.replicas.values()].some((r) => r.role().leader && r.role().quiesced === true))
      this.fault('crash-quiesced-leader');
    const mode = this.rng.chance(0.5) ? 'keep-prefix' : 'drop-unsynced';
    if (b.disk.syncsStarted > b.disk.syncsCompleted + b.disk.syncsLostInCrash)
      this.fault('crash-during-fsync');
    // Pipelined persistence: a replica wrote entries whose fsync has not landed (lost or kept).
    if ([...b.replicas.values()].some((r) => r.writtenNotDurable?.() === true))
      this.fault('crash-write-unsynced');
    this.network.down(b.id);
    this.ctl?.crash(b.id);
    b.host?.close();
    b.host = null;
    b.transport = null;
    b.replicas.clear();
    b.alive = false;
    b.generation++;
    b.disk.crash(mode);
    this.fault('crash');
    this.trace(`crash ${b.id} (${mode})`);
  }

  // ------------------------------------------------------------ the run

  async run(): Promise<ClusterSimResult> {
    for (const b of this.brokers) this.start(b);
    this.loop.at(TICK_MS, () => this.onTick());
    this.loop.at(20, () => this.onChaos());
    this.loop.at(5, () => this.onProduce());
    this.loop.at(15, () => this.onConsume());
    if (this.ctl) this.loop.at(40, () => this.onAdmin());
    this.loop.at(this.faultPhaseMs, () => this.heal());
    await this.loop.run(
      () => this.done || this.violations.length > 0,
      (err) =>
        this.violations.push({
          kind: 'exception',
          detail: err instanceof Error ? (err.stack ?? err.message) : String(err),
        }),
    );
    if (this.violations.length === 0 && this.livenessTicks !== null) {
      // A throw here (a replica refusing the read-back, a harness bug) is this seed's failure,
      // reported with its seed and replay command like any violation, not an escape that ends
      // a batch of seeds without naming one.
      try {
        await this.finalCheck();
        if (this.ctl) this.violations.push(...this.ctl.finalCheck());
      } catch (err) {
        this.violations.push({
          kind: 'exception',
          detail: `final check: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        });
      }
    }
    const c = this.network.counters;
    for (const [kind, n] of [
      ['message-lost', c.lost],
      ['message-duplicated', c.duplicated],
      ['message-blocked', c.blocked],
    ] as const) {
      if (n > 0) this.faults[kind] = n;
    }
    return {
      seed: this.options.seed,
      replica: this.options.replica.name,
      brokers: this.brokers.length,
      partitions: this.partitions,
      steps: this.loop.steps,
      simTimeMs: this.loop.now,
      faults: this.faults,
      produced: this.produced,
      ackedAll: this.ackedAll,
      ackedLeader: this.ackedLeader,
      consumed: this.consumed,
      committedRecords: this.committedRecords,
      topicsCreated: this.ctl?.topicsAcked ?? 0,
      existsAnswersLost: this.ctl?.counters.existsAnswerLost ?? 0,
      violations: this.violations,
      livenessTicks: this.livenessTicks,
    };
  }

  private onTick(): void {
    this.ticks++;
    for (const b of this.brokers) {
      for (const r of b.replicas.values()) {
        const role = r.role();
        if (role.leader && role.quiesced === true) this.fault('quiesced-leader-tick');
      }
      b.host?.tick();
    }
    this.ctl?.tick();
    for (const obs of this.observations) {
      for (const v of obs.violations.splice(0)) this.violations.push(v);
    }
    if (this.healed) this.checkLiveness();
    if (!this.done) this.loop.at(TICK_MS, () => this.onTick());
  }

  // ------------------------------------------------------------ workload

  private leaderOf(partition: number): { broker: Broker; replica: SimReplica } | null {
    let best: { broker: Broker; replica: SimReplica; term: number } | null = null;
    for (const b of this.brokers) {
      const replica = b.replicas.get(partition);
      if (!b.alive || !replica) continue;
      const role = replica.role();
      if (role.leader && (!best || role.term > best.term))
        best = { broker: b, replica, term: role.term };
    }
    return best;
  }

  private pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.rng.int(items.length)];
  }

  private target(partition: number): { broker: Broker; replica: SimReplica } | null {
    if (this.rng.chance(0.85)) {
      const l = this.leaderOf(partition);
      if (l) return l;
    }
    const b = this.pick(this.brokers.filter((x) => x.alive && x.replicas.has(partition)));
    return b ? { broker: b, replica: b.replicas.get(partition)! } : null;
  }

  private makeBatch(p: Producer): { batch: Buffer; ids: string[] } {
    const n = 1 + this.rng.int(3);
    const ids: string[] = [];
    const seq = p.count;
    for (let i = 0; i < n; i++) ids.push(`p${p.id}-${p.count++}`);
    const batch = encodeRecordBatch(
      ids.map((id) => ({ value: Buffer.from(id) })),
      {
        timestamp: EPOCH_MS + this.loop.now,
        ...(p.mode === 'idempotent'
          ? { producerId: 1000 + p.id, producerEpoch: 0, baseSequence: seq }
          : {}),
      },
    );
    return { batch, ids };
  }

  private onProduce(): void {
    if (this.healed) return;
    this.loop.at(2 + this.rng.int(15), () => this.onProduce());
    if ((this.options.seed & 1) === 1 && this.rng.chance(0.02)) {
      this.idleUntil = this.loop.now + 100 + this.rng.int(400);
      this.fault('idle-spell');
    }
    if (this.loop.now < this.idleUntil) return;
    const p = this.pick(this.producers.filter((x) => !x.inflight));
    if (!p) return;
    const t = this.target(p.partition);
    if (!t) return;
    if (p.mode === 'idempotent') {
      p.pending ??= { ...this.makeBatch(p), attempts: 0 };
      p.pending.attempts++;
      if (p.pending.attempts > 1) this.fault('idempotent-retry');
    }
    const { batch, ids } = p.pending ?? this.makeBatch(p);
    const acks: SimAcks = p.mode === 'leader' ? 'leader' : 'all';
    p.inflight = true;
    this.produced++;
    this.send(t.broker, t.replica, p.partition, batch, ids, acks, (ok) => {
      p.inflight = false;
      if (ok && p.mode === 'idempotent') p.pending = null;
    });
  }

  /** One produce request with a producer-side timeout; `done(acked)` is called exactly once. */
  private send(
    b: Broker,
    replica: SimReplica,
    partition: number,
    batch: Buffer,
    ids: string[],
    acks: SimAcks,
    done: (acked: boolean, baseOffset: number) => void,
  ): void {
    const generation = b.generation;
    let finished = false;
    const finish = (acked: boolean, baseOffset = -1) => {
      if (finished) return;
      finished = true;
      done(acked, baseOffset);
    };
    const obs = this.observations[partition]!;
    const ack = (baseOffset: number) => {
      if (finished || b.generation !== generation) return;
      if (acks === 'all') {
        this.ackedAll++;
        obs.observeAck({ baseOffset, ids, atMs: this.loop.now });
        const term = replica.role().term;
        const byTerm = this.ackedEndByTerm[partition]!;
        byTerm.set(term, Math.max(byTerm.get(term) ?? 0, baseOffset + ids.length));
        this.onAckedAll();
      } else this.ackedLeader++;
      finish(true, baseOffset);
    };
    this.loop.at(PRODUCE_TIMEOUT_MS, () => finish(false));
    // The broken variant: an acks=all producer is answered at the leader's own write (the
    // acks=1 point), and the harness still counts it as an acks=all acknowledgement.
    const asked: SimAcks = this.options.unsafeAckOnLeaderWrite === true ? 'leader' : acks;
    let promise: Promise<number>;
    try {
      // A request's bytes are its own (a broker reads each from its socket): the replica stamps
      // offsets into them in place, so a retry must not hand it the first attempt's buffer.
      promise = replica.produce(Buffer.from(batch), asked);
    } catch (err) {
      this.bug(`produce threw instead of rejecting: ${String(err)}`);
      finish(false);
      return;
    }
    promise.then(ack, (err: unknown) => {
      if (!(err instanceof StreamBusError)) {
        this.bug(`produce rejected with an untyped error: ${String(err)}`);
      }
      finish(false);
    });
  }

  private onConsume(): void {
    if (!this.healed) this.loop.at(5 + this.rng.int(30), () => this.onConsume());
    if (this.loop.now < this.idleUntil) return;
    const c = this.pick(this.consumers);
    if (!c) return;
    const b = this.pick(this.brokers.filter((x) => x.alive && x.replicas.has(c.partition)));
    if (!b) return;
    const replica = b.replicas.get(c.partition)!;
    const generation = b.generation;
    const hw = replica.highWatermark();
    const from = c.nextOffset;
    const role = replica.role();
    let ackedBelow = 0;
    if (role.leader) {
      for (const [term, end] of this.ackedEndByTerm[c.partition]!) {
        if (term <= role.term) ackedBelow = Math.max(ackedBelow, end);
      }
    }
    replica.read(from, READ_BYTES_MAX).then(
      (bytes) => {
        if (b.generation !== generation) return;
        const obs = this.observations[c.partition]!;
        if (role.leader && hw < ackedBelow) {
          obs.violations.push({
            kind: 'leader-read-below-acked',
            detail: `partition ${c.partition}: node ${b.id}, leader of term ${role.term}, served a read at high watermark ${hw} below offset ${ackedBelow} acknowledged (acks=all) by a leader of a term <= ${role.term}`,
          });
          return;
        }
        const v: Violation[] = [];
        const batches = decodeLog(bytes, v, `read from node ${b.id}`);
        for (const x of v) obs.violations.push(x);
        for (const batch of batches) {
          if (batch.lastOffset >= Math.max(hw, replica.highWatermark())) {
            obs.violations.push({
              kind: 'consumed-record-lost',
              detail: `partition ${c.partition}: node ${b.id} served offset ${batch.lastOffset} at or past its high watermark ${hw}`,
            });
            return;
          }
          batch.ids.forEach((id, i) => {
            const offset = batch.baseOffset + i;
            if (offset < from) return;
            obs.observeConsumed(offset, id, b.id);
            this.consumed++;
          });
          c.nextOffset = Math.max(c.nextOffset, batch.lastOffset + 1);
        }
        const last = batches[batches.length - 1];
        if (last && this.options.trace) {
          this.trace(
            `read partition ${c.partition} from node ${b.id}: offsets ${from}..${last.lastOffset} (hw ${hw}, ${replica.describe()})`,
          );
        }
      },
      (err: unknown) => {
        if (!(err instanceof StreamBusError) && b.generation === generation) {
          this.bug(`read rejected with an untyped error: ${String(err)}`);
        }
      },
    );
  }

  private onAdmin(): void {
    if (this.healed) return;
    this.loop.at(30 + this.rng.int(70), () => this.onAdmin());
    this.ctl?.createTopic();
  }

  // ------------------------------------------------------------ faults

  private onChaos(): void {
    if (this.healed) return;
    this.loop.at(20 + this.rng.int(80), () => this.onChaos());
    const ids = this.brokers.map((b) => b.id as number);
    const roll = this.rng.float();
    if (roll < 0.1) {
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      this.network.partition(side, ids);
      this.fault('partition');
      this.trace(`partition {${[...side].join(',')}} | rest`);
    } else if (roll < 0.17) {
      const a = this.pick(ids)!;
      const b = this.pick(ids.filter((x) => x !== a))!;
      this.network.cut(a, b);
      this.fault('one-way-cut');
      this.trace(`cut ${a} -> ${b}`);
    } else if (roll < 0.29) {
      this.network.healLinks();
      this.fault('links-healed');
      this.trace('links healed');
    } else if (roll < 0.41) {
      const b = this.pick(this.brokers.filter((x) => x.alive));
      if (b) this.crash(b);
    } else if (roll < 0.56) {
      const b = this.pick(this.brokers.filter((x) => !x.alive));
      if (b) {
        this.start(b);
        this.fault('restart');
        this.trace(`restart ${b.id}`);
      }
    } else if (roll < 0.64) {
      const partition = this.rng.int(this.partitions);
      const l = this.leaderOf(partition);
      const to = this.pick(ids.filter((x) => x !== l?.broker.id));
      if (l && to !== undefined) {
        l.replica.transferLeadership(asNodeId(to));
        this.fault('leader-transfer');
        this.trace(`transfer partition ${partition}: ${l.broker.id} -> ${to}`);
      }
    } else if (roll < 0.71) {
      this.network.weather = this.drawWeather();
      this.fault('weather-change');
    } else if (roll < 0.8) {
      const b = this.pick(this.brokers)!;
      b.slowDisk = !b.slowDisk;
      this.fault(b.slowDisk ? 'slow-disk' : 'disk-recovered');
      this.trace(`disk of ${b.id} ${b.slowDisk ? 'slow' : 'fast'}`);
    } else if (roll < 0.83) {
      // A power cut of every live broker at once: only what a quorum fsynced may survive it.
      const live = this.brokers.filter((x) => x.alive);
      if (live.length > 1) {
        for (const b of live) this.crash(b);
        this.fault('crash-all');
      }
    } else if (roll < 0.83 + RACK_CUT_ROLL && this.options.rackPowerCuts !== false) {
      this.rackBrownout();
    }
  }

  /**
   * A rack's power failing (the brokers share one rack, as a small cluster often does): its UPS
   * is failing, the storage controllers drop to write-through first (their cache battery is
   * gone: fsyncs take 60-180 ms), then the power goes, right after an acks=all acknowledgement,
   * and comes back 30-79 ms later; with no acknowledgement within 300 ms the brownout passes
   * (a cut of a cluster that is not serving anyway only costs the run availability). The instant a producer was told its
   * records are on a majority is the instant a lost fsync matters. Why this fault: a crash loses
   * an acknowledged record only if a majority loses it between its write and its fsync; with
   * fast disks (0-3 ms) that window is shorter than a network round trip, and the independent
   * crashes and `crash-all` (at a random instant, often with most brokers already down) almost
   * never hit it (`unsafeDurableAtWrite` was caught by 12 seeds in 1,000 without this fault).
   * Its draws come from `rackRng`; the cut itself crashes as any crash does.
   */
  private rackBrownout(): void {
    const majority = Math.floor(this.brokers.length / 2) + 1;
    if (this.rackCut !== null || this.brokers.filter((b) => b.alive).length < majority) return;
    const r = this.rackRng;
    const cut: RackCut = {
      notBeforeMs: this.loop.now + RACK_BROWNOUT_MIN_MS + r.int(RACK_BROWNOUT_SPREAD_MS),
    };
    for (const b of this.brokers) b.brownout = true;
    this.rackCut = cut;
    this.fault('rack-brownout');
    this.trace('rack brownout: power failing, fsyncs slow');
    this.loop.at(RACK_BROWNOUT_MAX_MS, () => {
      if (this.rackCut !== cut) return;
      this.endBrownout();
      if (!this.healed) this.fault('rack-brownout-passed');
    });
  }

  /** An acks=all acknowledgement was given: a rack in brownout loses its power (0-2 ms later). */
  private onAckedAll(): void {
    const cut = this.rackCut;
    if (cut === null || this.loop.now < cut.notBeforeMs) return;
    this.loop.at(this.rackRng.int(3), () => {
      if (this.rackCut === cut) this.rackPowerCut();
    });
  }

  private endBrownout(): void {
    this.rackCut = null;
    for (const b of this.brokers) b.brownout = false;
  }

  private rackPowerCut(): void {
    this.endBrownout();
    const live = this.brokers.filter((b) => b.alive);
    if (this.healed || live.length === 0) return;
    this.trace(`rack power cut after an acknowledgement (live ${live.map((b) => b.id).join(',')})`);
    for (const b of live) this.crash(b);
    this.fault('rack-power-cut');
    const outageMs = RACK_OUTAGE_MIN_MS + this.rackRng.int(RACK_OUTAGE_SPREAD_MS);
    for (const b of live) {
      const generation = b.generation;
      this.loop.at(outageMs, () => {
        // Not if healing restarted it already (or chaos did, and it may have crashed again).
        if (this.healed || b.alive || b.generation !== generation) return;
        this.start(b);
        this.fault('rack-power-restored');
        this.trace(`restart ${b.id} (rack power back)`);
      });
    }
  }

  private heal(): void {
    this.healed = true;
    this.endBrownout();
    this.healedAtTick = this.ticks;
    this.network.healLinks();
    this.network.weather = CALM_WEATHER;
    for (const b of this.brokers) {
      b.slowDisk = false;
      if (!b.alive) this.start(b);
    }
    this.trace('heal: links repaired, calm network, fast disks, every broker running');
  }

  /** After healing: an acks=all probe per partition, then every replica caught up to it. */
  private checkLiveness(): void {
    const elapsed = this.ticks - this.healedAtTick;
    let allDone = true;
    for (let p = 0; p < this.partitions; p++) {
      const probe = this.probes[p]!;
      if (probe.ackedAt === null) {
        allDone = false;
        if (!probe.inflight) this.sendProbe(p, probe);
        continue;
      }
      for (const b of this.brokers) {
        const hw = b.replicas.get(p)?.highWatermark() ?? -1;
        if (hw < probe.endOffset) allDone = false;
      }
    }
    if (this.ctl && !this.ctl.converged()) allDone = false;
    if (allDone) {
      this.livenessTicks = elapsed;
      this.done = true;
      this.trace(
        `liveness: every partition progressed and converged ${elapsed} ticks after healing`,
      );
      return;
    }
    if (elapsed > LIVENESS_TICKS_MAX) {
      for (let p = 0; p < this.partitions; p++) {
        for (const b of this.brokers) {
          this.trace(
            `stuck partition ${p} node ${b.id}: ${b.replicas.get(p)?.describe() ?? 'not open'}`,
          );
        }
      }
      const stuck = this.probes
        .map((pr, p) =>
          pr.ackedAt === null
            ? `partition ${p}: probe not acknowledged`
            : `partition ${p}: replicas behind offset ${pr.endOffset}: ${this.brokers.map((b) => `${b.id}@${b.replicas.get(p)?.highWatermark() ?? 'closed'}`).join(' ')}`,
        )
        .join('; ');
      this.violations.push({
        kind: 'liveness',
        detail: `no progress within ${LIVENESS_TICKS_MAX} ticks after healing: ${stuck}${this.ctl ? `; ${this.ctl.describeStuck()}` : ''}`,
      });
      this.done = true;
    }
  }

  private sendProbe(partition: number, probe: Probe): void {
    const l = this.leaderOf(partition);
    if (!l) return;
    const id = `probe-${partition}-${this.ticks}`;
    const batch = encodeRecordBatch([{ value: Buffer.from(id) }], {
      timestamp: EPOCH_MS + this.loop.now,
    });
    probe.inflight = true;
    this.send(l.broker, l.replica, partition, batch, [id], 'all', (ok, baseOffset) => {
      probe.inflight = false;
      if (!ok) return;
      probe.ackedAt = this.ticks;
      probe.endOffset = baseOffset + 1;
    });
  }

  // ------------------------------------------------------------ final check

  private async finalCheck(): Promise<void> {
    for (let p = 0; p < this.partitions; p++) {
      const logs = new Map<number, Buffer>();
      for (const b of this.brokers) {
        const replica = b.replicas.get(p);
        if (!replica) continue;
        const bytes = await this.readAll(replica);
        logs.set(b.id, bytes);
        this.trace(
          `final partition ${p} node ${b.id}: ${bytes.length} bytes read back (${replica.describe()})`,
        );
      }
      const found = checkPartition(this.observations[p]!, logs, {
        idempotent: this.options.replica.idempotent,
      });
      this.violations.push(...found);
      if (found.length > 0) this.traceLogs(p, logs);
      const longest = [...logs.values()].reduce(
        (a, x) => (x.length > a.length ? x : a),
        Buffer.alloc(0),
      );
      for (const batch of decodeLog(longest, [], '')) this.committedRecords += batch.ids.length;
    }
  }

  /** For a failing partition: every replica's final log, batch by batch (bounded). */
  private traceLogs(partition: number, logs: ReadonlyMap<number, Buffer>): void {
    if (!this.options.trace) return;
    for (const [node, bytes] of logs) {
      const batches = decodeLog(bytes, [], '');
      for (const x of batches.slice(0, TRACE_BATCHES_MAX)) {
        const what = x.isControl ? 'control' : x.ids.join(',');
        this.trace(
          `  partition ${partition} node ${node} batch ${x.baseOffset}..${x.lastOffset}: ${what}`,
        );
      }
    }
  }

  private async readAll(replica: SimReplica): Promise<Buffer> {
    const hw = replica.highWatermark();
    const parts: Buffer[] = [];
    let offset = 0;
    for (let guard = 0; offset < hw && guard < 100_000; guard++) {
      const bytes = await replica.read(offset, READ_BYTES_MAX);
      if (bytes.length === 0) break;
      const batches = decodeLog(bytes, [], '');
      const last = batches[batches.length - 1];
      if (!last) break;
      // A read returns whole batches from the one holding `offset`; keep only what is new.
      let pos = 0;
      for (const batch of batches) {
        const size = batchSizeAt(bytes, pos);
        if (batch.baseOffset >= offset) parts.push(bytes.subarray(pos, pos + size));
        pos += size;
      }
      offset = last.lastOffset + 1;
    }
    return Buffer.concat(parts);
  }
}

export function runClusterSeed(options: ClusterSimOptions): Promise<ClusterSimResult> {
  return new ClusterSimulation(options).run();
}
