// Broker-suite rows for the broker's CPU per produce request (issue 9: "the broker costs ~1 ms of
// CPU per produce request"): prebuilt PRODUCE frames (acks=1, durability none, one partition),
// one request in flight, and the broker process's user + system CPU time (/proc/<pid>/stat) over
// the run divided by the requests. CPU time, unlike throughput, barely moves when other jobs
// share the machine (it still includes cache and scheduler effects), so it is the row to compare
// before and after a change to the request path. Two shapes: 1 record per request (the fixed cost
// of a request: framing, dispatch, Raft, log write, response) and 1,000 records of 100 B.

import { readFileSync } from 'node:fs';
import type { StreamBusClient } from '@streambus/client';
import { driveFrames, openSocket } from './frame-driver.js';
import { median, type ResultRow, row } from './harness.js';
// Type only: the suite passes its own functions in (no import cycle at run time).
import type { makeBatches, produceFrames } from './suites/broker.js';

export interface BrokerCpuContext {
  readonly port: number;
  readonly pid: number;
  readonly client: StreamBusClient;
  readonly quick: boolean;
  readonly runs: number;
  readonly makeBatches: typeof makeBatches;
  readonly produceFrames: typeof produceFrames;
  /** Overrides for tests: requests per run, per shape. */
  readonly requestsPerRun?: { readonly one: number; readonly thousand: number };
}

/** Linux reports process times in clock ticks of 1/100 s (USER_HZ). */
const MS_PER_TICK = 10;

/**
 * User + system CPU time of process `pid` in ms (10 ms resolution), or -1 where /proc is
 * missing. Fields 14 and 15 of /proc/<pid>/stat, counted after the command name's ')'.
 */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  } catch {
    return -1;
  }
}

export async function brokerCpuRows(ctx: BrokerCpuContext): Promise<ResultRow[]> {
  if (procCpuMs(ctx.pid) < 0) return [];
  const topic = 'broker-cpu';
  await ctx.client
    .admin()
    .createTopic({ name: topic, partitions: 1, configs: { durability: 'none' } });
  const per = ctx.requestsPerRun ?? {
    one: ctx.quick ? 10_000 : 30_000,
    thousand: ctx.quick ? 1_500 : 5_000,
  };
  const shapes = [
    { name: '1 record', records: 1, requests: per.one },
    { name: '1,000 records', records: 1000, requests: per.thousand },
  ];
  const rows: ResultRow[] = [];
  const socket = await openSocket(ctx.port);
  try {
    for (const shape of shapes) {
      const frames = ctx.produceFrames(topic, ctx.makeBatches(50, shape.records, 100), 1, 1);
      await driveFrames(socket, frames, Math.ceil(shape.requests / 5), 1); // warm-up
      const values: number[] = [];
      for (let r = 0; r < ctx.runs; r++) {
        const before = procCpuMs(ctx.pid);
        await driveFrames(socket, frames, shape.requests, 1);
        values.push(((procCpuMs(ctx.pid) - before) * 1000) / shape.requests);
      }
      rows.push(
        row(`broker cpu per produce request, ${shape.name}`, median(values), 'us', {
          durability: 'none',
          acks: 1,
          recordValueBytes: 100,
          recordsPerRequest: shape.records,
          requests: shape.requests,
          partitions: 1,
          runs: ctx.runs,
          inflight: 1,
          measure: 'broker process user + system CPU (/proc/<pid>/stat, 10 ms ticks) / requests',
          values: values.map((v) => Math.round(v)),
          reference: 'none',
        }),
      );
    }
  } finally {
    socket.destroy();
  }
  return rows;
}
