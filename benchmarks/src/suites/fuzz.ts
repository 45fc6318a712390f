// Suite `fuzz`: one broker process (packages/broker/dist/main.js, FUZZ_LIMITS below) under a
// stream of crafted and mutated requests from attacker connections for a bounded time, next to
// one well-behaved producer (acks=all, durability always) and a pinger.
//
// Attacks (each attacker connection picks one per round, seeded; the seed is printed):
//   random     frames with random API keys, versions, flags and body bytes
//   mutated    valid requests (metadata, fetch, produce, list offsets, ...) with bytes flipped,
//              bodies cut or padded (the length kept consistent or not)
//   bomb       msgpack bombs: millions of empty maps, 100,000-deep nesting, lying lengths
//   huge       frame lengths of 4 GiB, past the limit, or shorter than a header
//   stalled    a large frame's header and part of its body, then silence
//   slow       64 pipelined fetches of up to 16 MiB, then not reading the answers
//   amplify    one fetch naming a partition 2,100 times with maxBytes 2 GiB
//   trickle    a valid request a few bytes at a time
// Checks and reports: the broker survived (process alive, answers a ping at the end), records
// lost (acknowledged to the producer but not read back at their offsets: must be 0), peak RSS
// of the broker (VmHWM, must stay under FUZZ_RSS_BOUND_MIB, derived in docs/benchmarks.md), idle
// RSS, attack frames sent, the slowest ping. Leaves out: replication, the SDK's retries (the
// producer is a raw client), attacks that need valid credentials (there are none yet: any client
// may delete topics, so attackers do not send valid destructive admin requests).
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiKey,
  type ApiKeyValue,
  batchSpans,
  decodeRecordBatch,
  decodeResponse,
  encodeRecordBatch,
  encodeRequest,
  type Frame,
  FrameParser,
  type RequestOf,
  type ResponseOf,
} from '@streambus/protocol';
import { seededRandom as rng } from '@streambus/storage';
import { openSocket } from '../frame-driver.js';
import { type ResultRow, row, type Suite } from '../harness.js';
import { procStatusKiB, spawnBroker } from './broker.js';

const MiB = 1024 * 1024;

/** The broker's limits under fuzzing (smaller than the defaults, so the bound is tight). */
export const FUZZ_LIMITS = {
  frameBytesMax: 4 * MiB,
  inflightBytesMax: 16 * MiB,
  requestDecodedBytesMax: 4 * MiB,
  brokerInboundBytesMax: 32 * MiB,
  outboundBytesMax: 8 * MiB,
  brokerOutboundBytesMax: 32 * MiB,
  fetchBytesMax: 4 * MiB,
  frameStallTimeoutMs: 2000,
} as const;

/**
 * Peak RSS a broker with FUZZ_LIMITS may reach under this load (docs/broker.md derives it):
 * idle (~75 MiB) + 1.5 x (2 x inbound 32 + 2 x outbound 32 + one 64 KiB read per connection
 * + decode 4) = ~277 MiB with 36 connections, rounded up.
 */
export const FUZZ_RSS_BOUND_MIB = 320;

const GOOD_TOPIC = 'good';
const GOOD_PARTITIONS = 2;
const SCRATCH_TOPIC = 'scratch';
const REQUEST_TIMEOUT_MS = 10_000;
const PING_INTERVAL_MS = 200;

function limitsEnv(limits: Readonly<Record<string, number>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(limits)) {
    env[`STREAMBUS_LIMITS_${k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`] = String(v);
  }
  return env;
}

type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** A raw request lane with per-request timeouts (the well-behaved side). */
class Lane {
  private readonly parser = new FrameParser({ frameBytesMax: 256 * MiB });
  private readonly pending = new Map<
    number,
    { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private nextId = 1;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      let frames: ReturnType<FrameParser['push']>;
      try {
        frames = this.parser.push(chunk);
      } catch (err) {
        this.failAll(err as Error);
        socket.destroy();
        return;
      }
      for (const f of frames) {
        const p = this.pending.get(f.correlationId);
        if (!p) continue;
        this.pending.delete(f.correlationId);
        clearTimeout(p.timer);
        p.resolve(f);
      }
    });
    socket.on('close', () => this.failAll(new Error('connection closed')));
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<Lane> {
    return new Lane(await openSocket(port));
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  async request<K extends ApiKeyValue>(apiKey: K, body: RequestOf<K>): Promise<ResponseOf<K>> {
    if (this.socket.destroyed) throw new Error('connection closed');
    const id = this.nextId++;
    const answer = new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`request ${id} timed out`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
    this.socket.write(encodeRequest(apiKey, id, body));
    return decodeResponse(apiKey, await answer);
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Stats {
  framesSent: number;
  rounds: Record<string, number>;
}

function fetchBody(partitions: number[], maxBytes: number): RequestOf<typeof ApiKey.FETCH> {
  return {
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes,
    topics: [
      {
        name: GOOD_TOPIC,
        partitions: partitions.map((partition) => ({
          partition,
          fetchOffset: 0,
          partitionMaxBytes: maxBytes,
        })),
      },
    ],
  };
}

/** Valid request frames the mutating attacks start from (nothing destructive). */
function templates(): Buffer[] {
  const batch = encodeRecordBatch([{ value: Buffer.from('attacker') }, { value: null }]);
  return [
    encodeRequest(ApiKey.API_VERSIONS, 1, { clientSoftwareName: 'fuzz' }),
    encodeRequest(ApiKey.METADATA, 2, { topics: [GOOD_TOPIC, SCRATCH_TOPIC] }),
    encodeRequest(ApiKey.FETCH, 3, fetchBody([0, 1], 16 * MiB)),
    encodeRequest(ApiKey.LIST_OFFSETS, 4, {
      topics: [{ name: GOOD_TOPIC, partitions: [{ partition: 0, timestamp: -1 }] }],
    }),
    encodeRequest(ApiKey.DESCRIBE_CONFIGS, 5, { topics: [GOOD_TOPIC] }),
    encodeRequest(ApiKey.PRODUCE, 6, {
      acks: 1,
      timeoutMs: 1000,
      topics: [{ name: SCRATCH_TOPIC, partitions: [{ partition: 0, records: batch }] }],
    }),
    encodeRequest(ApiKey.INIT_PRODUCER_ID, 7, {}),
  ];
}

function frameHeader(length: number, apiKey: number, flags = 0): Buffer {
  const h = Buffer.alloc(14);
  h.writeUInt32BE(length >>> 0, 0);
  h.writeUInt16BE(apiKey & 0xffff, 4);
  h.writeUInt32BE(0xf00d, 8);
  h.writeUInt16BE(flags & 0xffff, 12);
  return h;
}

function rawFrame(apiKey: number, version: number, flags: number, body: Buffer): Buffer {
  const h = frameHeader(10 + body.length, apiKey, flags);
  h.writeUInt16BE(version & 0xffff, 6);
  return Buffer.concat([h, body]);
}

function randomBytes(r: Rand, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

/** msgpack bombs within the frame limit. */
function bomb(r: Rand): Buffer {
  switch (int(r, 4)) {
    case 0: {
      // arrays of 60,000 empty maps, up to ~3.6 MB: ~230 M objects' worth
      const n = 1 + int(r, 60);
      const inner = Buffer.alloc(5 + 60_000, 0x80);
      inner[0] = 0xdd;
      inner.writeUInt32BE(60_000, 1);
      return Buffer.concat([Buffer.from([0xdc, n >> 8, n & 0xff]), ...Array(n).fill(inner)]);
    }
    case 1: {
      const deep = Buffer.alloc(100_001, 0x91);
      deep[100_000] = 0xc0;
      return deep;
    }
    case 2:
      return Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x80]);
    default:
      return Buffer.from([0x81, 0xa6, 0x74, 0x6f, 0x70, 0x69, 0x63, 0x73, 0xdb, 0xff, 0xff, 0xff]);
  }
}

type Attack = (s: Socket, r: Rand, stats: Stats, deadline: number) => Promise<void>;

const ATTACKS: Record<string, Attack> = {
  async random(s, r, stats) {
    const n = 1 + int(r, 20);
    for (let i = 0; i < n; i++) {
      const flags = r() < 0.1 ? int(r, 0x10000) : int(r, 8) & 0x5;
      s.write(rawFrame(int(r, 16), int(r, 3), flags, randomBytes(r, int(r, 2000))));
      stats.framesSent++;
    }
    await sleep(10);
  },
  async mutated(s, r, stats) {
    const all = templates();
    const n = 1 + int(r, 30);
    for (let i = 0; i < n; i++) {
      const t = Buffer.from(all[int(r, all.length)]!);
      let body = t.subarray(14);
      const flips = 1 + int(r, 8);
      for (let f = 0; f < flips && body.length > 0; f++) body[int(r, body.length)] = int(r, 256);
      if (r() < 0.2) body = body.subarray(0, int(r, body.length));
      if (r() < 0.1) body = Buffer.concat([body, randomBytes(r, int(r, 64))]);
      const frame = Buffer.concat([t.subarray(0, 14), body]);
      if (r() < 0.9) frame.writeUInt32BE(10 + body.length, 0); // else: the length lies
      s.write(frame);
      stats.framesSent++;
    }
    await sleep(10);
  },
  async bomb(s, r, stats) {
    const keys = [ApiKey.METADATA, ApiKey.PRODUCE, ApiKey.FETCH, ApiKey.CREATE_TOPICS];
    s.write(rawFrame(keys[int(r, keys.length)]!, 0, 0, bomb(r)));
    stats.framesSent++;
    await sleep(200);
  },
  async huge(s, r, stats) {
    const lengths = [0xffffffff, FUZZ_LIMITS.frameBytesMax + 1, int(r, 10), 64 * MiB];
    s.write(frameHeader(lengths[int(r, lengths.length)]!, ApiKey.PRODUCE));
    stats.framesSent++;
    await sleep(100);
  },
  async stalled(s, r, stats, deadline) {
    const size = 64 * 1024 + int(r, FUZZ_LIMITS.frameBytesMax - 64 * 1024);
    s.write(frameHeader(size - 4, ApiKey.PRODUCE));
    s.write(randomBytes(r, int(r, Math.min(size - 14, 256 * 1024))));
    stats.framesSent++;
    const until = Math.min(deadline, Date.now() + FUZZ_LIMITS.frameStallTimeoutMs + 1500);
    while (!s.destroyed && !s.readableEnded && Date.now() < until) await sleep(100);
  },
  async slow(s, r, stats, deadline) {
    s.pause();
    for (let i = 0; i < 64; i++) {
      s.write(encodeRequest(ApiKey.FETCH, 100 + i, fetchBody([int(r, GOOD_PARTITIONS)], 16 * MiB)));
      stats.framesSent++;
    }
    await sleep(Math.min(deadline - Date.now(), 500 + int(r, 2500)));
  },
  async amplify(s, _r, stats) {
    s.write(encodeRequest(ApiKey.FETCH, 9, fetchBody(Array(2100).fill(0), 0x7fffffff)));
    stats.framesSent++;
    await sleep(200);
  },
  async trickle(s, r, stats, deadline) {
    const all = templates();
    const frame = all[int(r, all.length)]!;
    for (let at = 0; at < frame.length && Date.now() < deadline && !s.destroyed; at += 7) {
      s.write(frame.subarray(at, at + 7));
      await sleep(5 + int(r, 20));
    }
    stats.framesSent++;
  },
};
const ATTACK_NAMES = Object.keys(ATTACKS);

async function attacker(
  port: number,
  r: Rand,
  stats: Stats,
  deadline: number,
  names: readonly string[],
): Promise<void> {
  while (Date.now() < deadline) {
    let s: Socket;
    try {
      s = await openSocket(port);
    } catch {
      await sleep(50);
      continue;
    }
    s.on('error', () => {});
    s.on('data', () => {}); // answers are read and dropped (except while paused: `slow`)
    const name = names[int(r, names.length)]!;
    stats.rounds[name] = (stats.rounds[name] ?? 0) + 1;
    try {
      await ATTACKS[name]!(s, r, stats, deadline);
    } finally {
      s.destroy();
    }
  }
}

/** Produces numbered records with acks=all until the deadline; returns partition:offset -> value. */
async function goodProducer(port: number, deadline: number): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  let lane: Lane | null = null;
  for (let n = 0; Date.now() < deadline; n++) {
    try {
      lane ??= await Lane.open(port);
      const partition = n % GOOD_PARTITIONS;
      const values = Array.from({ length: 20 }, (_, i) => `good-${n}-${i}`);
      const res = await lane.request(ApiKey.PRODUCE, {
        acks: -1,
        timeoutMs: REQUEST_TIMEOUT_MS,
        topics: [
          {
            name: GOOD_TOPIC,
            partitions: [
              {
                partition,
                records: encodeRecordBatch(values.map((v) => ({ value: Buffer.from(v) }))),
              },
            ],
          },
        ],
      });
      const p = res.topics[0]!.partitions[0]!;
      if (p.errorCode !== 0) continue;
      for (let i = 0; i < values.length; i++)
        acked.set(`${partition}:${p.baseOffset + i}`, values[i]!);
    } catch {
      lane?.close(); // an unanswered request is not acknowledged: nothing to check for it
      lane = null;
      await sleep(20);
    }
  }
  lane?.close();
  return acked;
}

/** Reads every partition of the good topic back: partition:offset -> value. */
async function readBack(lane: Lane): Promise<Map<string, string>> {
  const stored = new Map<string, string>();
  for (let partition = 0; partition < GOOD_PARTITIONS; partition++) {
    let offset = 0;
    for (;;) {
      const res = await lane.request(ApiKey.FETCH, {
        maxWaitMs: 0,
        minBytes: 0,
        maxBytes: 4 * MiB,
        topics: [
          {
            name: GOOD_TOPIC,
            partitions: [{ partition, fetchOffset: offset, partitionMaxBytes: 4 * MiB }],
          },
        ],
      });
      const p = res.topics[0]!.partitions[0]!;
      if (p.errorCode !== 0) throw new Error(`read back ${partition}@${offset}: ${p.errorCode}`);
      if (p.records.length === 0) break;
      for (const { position } of batchSpans(p.records)) {
        for (const rec of decodeRecordBatch(p.records, position).records) {
          stored.set(`${partition}:${rec.offset}`, Buffer.from(rec.value ?? []).toString());
          offset = rec.offset + 1;
        }
      }
      if (offset >= p.highWatermark) break;
    }
  }
  return stored;
}

export interface FuzzOptions {
  readonly durationMs: number;
  readonly attackers: number;
  readonly seed?: number;
  /** Attack kinds to draw from (default: all of them), to reproduce or isolate one. */
  readonly attacks?: readonly string[];
}

export interface FuzzReport {
  readonly seed: number;
  readonly survived: boolean;
  readonly recordsAcked: number;
  readonly recordsLost: number;
  readonly idleRssMiB: number;
  readonly peakRssMiB: number;
  readonly framesSent: number;
  readonly rounds: Readonly<Record<string, number>>;
  readonly pingMsMax: number;
  readonly pingFailures: number;
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? Date.now() & 0x7fffffff;
  const names = options.attacks ?? ATTACK_NAMES;
  for (const n of names) if (!ATTACKS[n]) throw new Error(`fuzz: no attack named ${n}`);
  const dir = mkdtempSync(join(tmpdir(), 'sb-fuzz-'));
  const broker = await spawnBroker(join(dir, 'data'), [], limitsEnv(FUZZ_LIMITS));
  const lanes: Lane[] = [];
  try {
    const admin = await Lane.open(broker.port);
    lanes.push(admin);
    const created = await admin.request(ApiKey.CREATE_TOPICS, {
      topics: [
        { name: GOOD_TOPIC, partitions: GOOD_PARTITIONS, replicationFactor: 1, configs: {} },
        { name: SCRATCH_TOPIC, partitions: 1, replicationFactor: 1, configs: {} },
      ],
      timeoutMs: 5000,
    });
    if (created.topics.some((t) => t.errorCode !== 0)) throw new Error('fuzz: topic creation');
    await sleep(500);
    const idleRssMiB = procStatusKiB(broker.pid, 'VmRSS') / 1024;

    const deadline = Date.now() + options.durationMs;
    const stats: Stats = { framesSent: 0, rounds: {} };
    const master = rng(seed);
    const attacks = Array.from({ length: options.attackers }, () =>
      attacker(broker.port, rng(int(master, 2 ** 31)), stats, deadline, names),
    );
    const producing = goodProducer(broker.port, deadline);
    const pinger = await Lane.open(broker.port);
    lanes.push(pinger);
    let pingMsMax = 0;
    let pingFailures = 0;
    while (Date.now() < deadline) {
      const t0 = performance.now();
      try {
        await pinger.request(ApiKey.API_VERSIONS, {});
        pingMsMax = Math.max(pingMsMax, performance.now() - t0);
      } catch {
        pingFailures++;
      }
      await sleep(PING_INTERVAL_MS);
    }
    await Promise.all(attacks);
    const acked = await producing;
    const peakRssMiB = procStatusKiB(broker.pid, 'VmHWM') / 1024;

    let survived = false;
    let recordsLost = acked.size;
    try {
      const check = await Lane.open(broker.port);
      lanes.push(check);
      survived = (await check.request(ApiKey.API_VERSIONS, {})).errorCode === 0;
      const stored = await readBack(check);
      recordsLost = 0;
      for (const [at, value] of acked) if (stored.get(at) !== value) recordsLost++;
    } catch {
      // survived stays false, or the read back failed: every acknowledged record counts as lost
    }
    return {
      seed,
      survived,
      recordsAcked: acked.size,
      recordsLost,
      idleRssMiB,
      peakRssMiB,
      framesSent: stats.framesSent,
      rounds: stats.rounds,
      pingMsMax,
      pingFailures,
    };
  } finally {
    for (const l of lanes) l.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const suite: Suite = {
  name: 'fuzz',
  description:
    'Broker under crafted and mutated requests (random frames, mutated requests, msgpack bombs, ' +
    'huge lengths, stalled frames, slow readers, fetch amplification, trickled frames) from ' +
    'attacker connections, next to an acks=all producer. Read first: records lost (must be 0) ' +
    `and peak RSS against the bound (${FUZZ_RSS_BOUND_MIB} MiB with the fuzz limits).`,
  async run({ quick }): Promise<ResultRow[]> {
    const settings = {
      durationMs: quick ? 10_000 : 60_000,
      attackers: quick ? 8 : 24,
      limits: FUZZ_LIMITS,
      rssBoundMiB: FUZZ_RSS_BOUND_MIB,
    };
    const r = await runFuzz(settings);
    const s = { ...settings, seed: r.seed, rounds: r.rounds };
    const broken =
      !r.survived || r.recordsLost > 0 || r.peakRssMiB > FUZZ_RSS_BOUND_MIB || r.recordsAcked === 0;
    if (broken) {
      console.error(`fuzz: FAILED (seed ${r.seed}): ${JSON.stringify(r)}`);
      process.exitCode = 1;
    }
    return [
      row('survived', r.survived ? 1 : 0, 'bool', s),
      row('records lost', r.recordsLost, 'records', s),
      row('records acknowledged', r.recordsAcked, 'records', s),
      row('peak RSS', r.peakRssMiB, 'MiB', s),
      row('idle RSS', r.idleRssMiB, 'MiB', s),
      row('attack frames sent', r.framesSent, 'frames', s),
      row('slowest ping', r.pingMsMax, 'ms', { ...s, pingFailures: r.pingFailures }),
    ];
  },
};
