// `streambus partition reassign TOPIC PARTITION --replicas 1,2,4 [--wait]`: moves a partition's
// replicas (the ReassignPartition API; the controller records the target, the partition's leader
// moves its Raft group: learner, catch-up, voter, then the leaving replicas removed).
// `streambus partition reassign TOPIC PARTITION --cancel [--wait]`: the replicas being added
// leave and the partition goes back to its replicas before the move (CancelReassignment).
// `streambus partition describe TOPIC PARTITION`: per replica its role, log end and commit lag,
// and any reassignment in progress (DescribeReplica to every replica's broker).
import type { PartitionReplicasDescription } from '@streambus/client';
import type { Command } from 'commander';
import { table, UsageError } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

/** `--replicas 1,2,4`: distinct broker ids, preferred leader first. */
export function parseReplicaList(value: string): number[] {
  const ids = value.split(',').map((s) => parseIntArg('--replicas', 0, 2 ** 31 - 1)(s.trim()));
  if (ids.length === 0 || new Set(ids).size !== ids.length) {
    throw new UsageError(`--replicas: expected distinct broker ids like 1,2,4, got '${value}'`);
  }
  return ids;
}

/** The human lines of a partition description. */
export function describeReplicasLines(d: PartitionReplicasDescription): string[] {
  const lines = [
    `${d.topic}/${d.partition}: leader ${d.leaderId}, high watermark ${d.highWatermark}` +
      (d.reassignmentTarget === null ? '' : `, reassigning to [${d.reassignmentTarget.join(',')}]`),
  ];
  const rows = d.replicas.map((r) => [
    String(r.nodeId),
    r.role,
    String(r.logEndOffset),
    String(r.commitLag),
  ]);
  lines.push(...table(['replica', 'role', 'log end', 'commit lag'], rows));
  return lines;
}

export function addReassignCommands(partition: Command): void {
  withClientOptions(
    partition
      .command('reassign <topic> <partition>')
      .description(
        'move the replicas of a partition to --replicas (preferred leader first) while it stays writable, or --cancel a move',
      )
      .option('--replicas <ids>', 'the target broker ids, e.g. 1,2,4', parseReplicaList)
      .option('--cancel', 'cancel the move in progress: back to the replicas before it')
      .option('--wait', 'return once the move is complete')
      .option(
        '--timeout-ms <ms>',
        'with --wait: give up after this long',
        parseIntArg('--timeout-ms', 0, 3_600_000),
        120_000,
      ),
  ).action(
    async (
      topic: string,
      partitionArg: string,
      opts: ClientFlags & {
        replicas?: number[];
        cancel?: boolean;
        wait?: boolean;
        timeoutMs: number;
      },
    ) => {
      const index = parseIntArg('<partition>', 0, 99_999)(partitionArg);
      if ((opts.replicas === undefined) === (opts.cancel !== true)) {
        throw new UsageError('partition reassign: give either --replicas or --cancel');
      }
      await withClient(opts, async (client, out) => {
        const admin = client.admin();
        let replicas: number[];
        if (opts.replicas !== undefined) {
          replicas = opts.replicas;
          await admin.reassignPartition(topic, index, replicas);
          out.human(`reassignment of ${topic}/${index} to [${replicas.join(',')}] started`);
        } else {
          replicas = (await admin.cancelReassignment(topic, index)).replicas;
          out.human(`reassignment of ${topic}/${index} cancelled: back to [${replicas.join(',')}]`);
        }
        let d: PartitionReplicasDescription | null = null;
        if (opts.wait === true) {
          const deadline = Date.now() + opts.timeoutMs;
          for (;;) {
            d = await admin.describePartition(topic, index);
            if (d.reassignmentTarget === null) break;
            if (Date.now() > deadline) {
              throw new UsageError(
                `partition reassign: ${topic}/${index} still moving after ${opts.timeoutMs} ms`,
              );
            }
            await new Promise((r) => setTimeout(r, 200));
          }
          for (const line of describeReplicasLines(d)) out.human(line);
        }
        out.json({
          topic,
          partition: index,
          replicas,
          ...(opts.cancel === true ? { cancelled: true } : {}),
          done: d?.reassignmentTarget === null,
          description: d,
        });
      });
    },
  );
  withClientOptions(
    partition
      .command('describe <topic> <partition>')
      .description('per replica: role, log end, commit lag; and any reassignment in progress'),
  ).action(async (topic: string, partitionArg: string, opts: ClientFlags) => {
    const index = parseIntArg('<partition>', 0, 99_999)(partitionArg);
    await withClient(opts, async (client, out) => {
      const d = await client.admin().describePartition(topic, index);
      out.json(d);
      if (!out.isJson) for (const line of describeReplicasLines(d)) out.human(line);
    });
  });
}
