// Diagnostic driver (issue 12): the cluster bench's rolling-restart rows alone, against a fresh
// 3-broker cluster, with a per-partition trace of the stalls. Not a bench row: its figures
// explain the row's p99 during the restart, they are not results.
//
//   node benchmarks/dist/rolling-restart.js [--steady-ms 2000] [--runs 1] [--slow-ms 30]
//                                           [--durability always|none] [--node-flag F]
//
// --node-flag F (repeatable): a node flag for every broker (e.g. a V8 tiering flag).
//
// --durability (default `always`, as the bench row): the topic's durability. `none` takes the
// fsyncs (and so the disk's stalls) out of every ack, leaving the hand-over's own mechanics.
//
// Prints per run the p50/p99 before, during and after, the failed sends, each restart's steps
// (ms from the start of `during`), and every stall: a run of sends to one partition slower than
// --slow-ms (consecutive slow sends less than 50 ms apart), when its first send started, how
// many sends it delayed and the slowest one. The sum of the stalls' slowest sends is the total.
// Load-independent counts (the client's requests, patched in on its connection class): requests
// by API, and the produce partitions refused, by error code and whether a leader hint came.
import { parseArgs } from 'node:util';
import { BrokerConnection } from '../../packages/client/dist/connection.js';
import { quantile } from './harness.js';
import { withClusterEnv } from './suites/cluster.js';
import { phaseLatencies, type RollingRestartRun, rollingRestartRun } from './suites/cluster-ops.js';

const { values } = parseArgs({
  options: {
    'steady-ms': { type: 'string', default: '2000' },
    runs: { type: 'string', default: '1' },
    'slow-ms': { type: 'string', default: '30' },
    durability: { type: 'string', default: 'always' },
    'node-flag': { type: 'string', multiple: true },
  },
});
const durability = values.durability;
if (durability !== 'always' && durability !== 'none')
  throw new Error(`--durability must be always or none, not ${durability}`);
const steadyMs = Number(values['steady-ms']);
const slowMs = Number(values['slow-ms']);
const GAP_MS = 50;

interface Stall {
  readonly partition: number;
  readonly startMs: number;
  readonly sends: number;
  readonly maxMs: number;
}

/** Runs of slow sends per partition (see the header). */
export function stallsOf(run: RollingRestartRun, thresholdMs: number): Stall[] {
  const byPartition = new Map<number, RollingRestartRun['samples']>();
  for (const s of run.samples) {
    const list = byPartition.get(s.partition) ?? [];
    list.push(s);
    byPartition.set(s.partition, list);
  }
  const out: Stall[] = [];
  for (const [partition, list] of byPartition) {
    list.sort((a, b) => a.at - b.at);
    let cur: { start: number; last: number; sends: number; maxMs: number } | null = null;
    const flush = (): void => {
      if (cur === null) return;
      out.push({
        partition,
        startMs: cur.start - run.bounds.during,
        sends: cur.sends,
        maxMs: cur.maxMs,
      });
      cur = null;
    };
    for (const s of list) {
      if (s.ms <= thresholdMs) continue;
      if (cur !== null && s.at - cur.last > GAP_MS) flush();
      if (cur === null) cur = { start: s.at, last: s.at, sends: 0, maxMs: 0 };
      cur.last = s.at;
      cur.sends++;
      cur.maxMs = Math.max(cur.maxMs, s.ms);
    }
    flush();
  }
  return out.sort((a, b) => a.startMs - b.startMs);
}

const counts = new Map<string, number>();
const count = (k: string): void => void counts.set(k, (counts.get(k) ?? 0) + 1);
type Answer = {
  topics?: Array<{
    partitions?: Array<{ errorCode: number; errorMessage?: string; currentLeader?: unknown }>;
  }>;
};
const countAnswer = (res: unknown): void => {
  for (const t of (res as Answer)?.topics ?? [])
    for (const p of t.partitions ?? [])
      if (p.errorCode !== 0) {
        count(`refused ${p.errorCode}${p.currentLeader ? ' +hint' : ''}`);
        // Which path refused, without the numbers.
        if (!p.currentLeader)
          count(`  unhinted: ${(p.errorMessage ?? '').replace(/[0-9]+/g, 'N').slice(0, 70)}`);
      }
};
const proto = BrokerConnection.prototype as unknown as Record<
  string,
  (this: unknown, ...args: unknown[]) => Promise<unknown>
>;
/** Produce requests that failed as a whole (connection closed, timed out): no partition known. */
const rejections: Array<{ sent: number; at: number; port: number; code: number | undefined }> = [];
/** When each Metadata request was sent. */
const metadataAt: number[] = [];
/** Per partition, each produce answer: when, from which broker port, ok or refused. */
const answers = new Map<number, Array<{ sent: number; at: number; port: number; ok: boolean }>>();
for (const name of ['request', 'requestEncoded']) {
  const original = proto[name]!;
  proto[name] = function (this: unknown, ...args: unknown[]) {
    count(`api ${args[0]}`);
    if (args[0] === 1) metadataAt.push(performance.now());
    const port = (this as { port: number }).port;
    const sent = performance.now();
    return original.apply(this, args).then(
      (res) => {
        countAnswer(res);
        if (args[0] === 6) {
          for (const t of (res as Answer)?.topics ?? [])
            for (const p of (t.partitions ?? []) as Array<{
              partition: number;
              errorCode: number;
            }>) {
              const list = answers.get(p.partition) ?? [];
              list.push({ sent, at: performance.now(), port, ok: p.errorCode === 0 });
              answers.set(p.partition, list);
            }
        }
        return res;
      },
      (err: { code?: number }) => {
        count(`api ${args[0]} rejected ${err?.code}`);
        if (args[0] === 6) rejections.push({ sent, at: performance.now(), port, code: err?.code });
        throw err;
      },
    );
  };
}

/**
 * Hand-overs seen by the client: per partition, each change of the broker whose produce answers
 * succeed; the gap is from the last success on the old broker to the first on the new one.
 */
function handOvers(from: number): string[] {
  const out: Array<{ at: number; text: string }> = [];
  for (const [partition, list] of answers) {
    let last: { at: number; port: number } | null = null;
    let refused = 0;
    // The refusals since the last success: port, sent and answered (ms after that success).
    let refusals: string[] = [];
    for (const a of list) {
      if (!a.ok) {
        refused++;
        if (last !== null && refusals.length < 8) {
          refusals.push(
            `${a.port} sent ${(a.sent - last.at).toFixed(0)} answered ${(a.at - last.at).toFixed(0)}`,
          );
        }
        continue;
      }
      if (last !== null && a.port !== last.port) {
        const t0 = last.at;
        const lost = rejections
          .filter((r) => r.at > t0 && r.sent < a.sent)
          .map(
            (r) =>
              `${r.port} sent ${(r.sent - t0).toFixed(0)} failed ${(r.at - t0).toFixed(0)} code ${r.code}`,
          );
        if (lost.length > 0) refusals.push(`requests failed whole: ${lost.slice(0, 4).join(', ')}`);
        out.push({
          at: last.at,
          text: `p${partition} ${last.port}->${a.port} at ${(last.at - from).toFixed(0)} gap ${(a.at - last.at).toFixed(0)} ms refused ${refused} metadata ${metadataAt.filter((t) => t > last!.at && t < a.sent).length} (first ok there sent ${(a.sent - last.at).toFixed(0)} ms into the gap)${refusals.length > 0 ? `; refusals: ${refusals.join(', ')}` : ''}`,
        });
      }
      refused = 0;
      refusals = [];
      last = { at: a.at, port: a.port };
    }
  }
  return out.sort((a, b) => a.at - b.at).map((x) => x.text);
}

await withClusterEnv(
  3,
  {},
  async (cluster, client) => {
    for (let i = 0; i < Number(values.runs); i++) {
      const run = await rollingRestartRun(
        cluster,
        client,
        steadyMs,
        `ops-rolling-${i}`,
        durability,
      );
      const f = (p: 'before' | 'during' | 'after'): string => {
        const l = phaseLatencies(run, p);
        return `${p} n ${l.length} p50 ${quantile(l, 0.5).toFixed(1)} p99 ${quantile(l, 0.99).toFixed(1)}`;
      };
      console.log(
        `run ${i} (durability ${durability}): ${f('before')} | ${f('during')} | ${f('after')} | failed ${run.failed}`,
      );
      const rel = (t: number): string => (t - run.bounds.during).toFixed(0);
      for (const s of run.steps) {
        console.log(
          `  broker ${s.id}: SIGTERM ${rel(s.term)} exited ${rel(s.exited)} started ${rel(s.started)} ready ${rel(s.ready)}`,
        );
      }
      console.log(`  after starts at ${rel(run.bounds.after)}`);
      // Where in each restart the slow sends are: SIGTERM to exit (hand-over, shutdown), exit to
      // started (two brokers serve while the new process loads), started to ready (catch-up).
      const within = (a: number, b: number): string => {
        const l = run.samples.filter((x) => x.at >= a && x.at < b).map((x) => x.ms);
        return l.length === 0
          ? 'n 0'
          : `n ${l.length} p50 ${quantile(l, 0.5).toFixed(1)} p99 ${quantile(l, 0.99).toFixed(1)}`;
      };
      for (const s of run.steps) {
        console.log(
          `  broker ${s.id} stopping ${within(s.term, s.exited)} | down ${within(s.exited, s.started)} | catching up ${within(s.started, s.ready)}`,
        );
      }
      const stalls = stallsOf(run, slowMs);
      let total = 0;
      for (const s of stalls) {
        total += s.maxMs;
        console.log(
          `  stall p${s.partition} at ${s.startMs.toFixed(0)} sends ${s.sends} max ${s.maxMs.toFixed(1)} ms`,
        );
      }
      console.log(`  stalls ${stalls.length}, sum of their slowest sends ${total.toFixed(0)} ms`);
      console.log(
        `  counts ${[...counts]
          .sort()
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')}`,
      );
      for (const line of handOvers(run.bounds.during)) console.log(`  hand-over ${line}`);
      counts.clear();
      answers.clear();
      metadataAt.length = 0;
      rejections.length = 0;
      // The next run starts from a balanced cluster (the restarts' take-backs done).
      await client
        .admin()
        .rebalanceLeaders()
        .catch(() => undefined);
    }
  },
  values['node-flag'] ?? [],
);
