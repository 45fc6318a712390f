// `streambus partition repair TOPIC PARTITION (--truncate | --skip) [--dry-run]`: repairs a
// damaged (offline) partition on a running broker through the RepairPartition API and states the
// offsets lost. Exit 0 when the partition serves again (or after a dry run), 1 when it is still
// offline, 2 for usage errors.
import { ErrorCode, type RepairResult, StreamBusError } from '@streambus/client';
import { Command } from 'commander';
import { UsageError } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';
import { addReassignCommands } from './partition-reassign.js';

function range(r: { fromOffset: number; toOffset: number | null }): string {
  return r.toOffset === null
    ? `${r.fromOffset}..(end, unreadable)`
    : `${r.fromOffset}..${r.toOffset}`;
}

/** The human lines of a repair report. */
export function describeRepair(topic: string, partition: number, r: RepairResult): string[] {
  const lines: string[] = [];
  const what = r.dryRun ? `dry run of ${r.mode} repair` : `${r.mode} repair`;
  if (r.damageCount === 0) {
    lines.push(`${what} of ${topic}/${partition}: no damage found`);
  } else {
    lines.push(`${what} of ${topic}/${partition}: ${r.damageCount} damaged range(s)`);
    for (const d of r.damages) {
      lines.push(
        `  damage at offsets ${range(d)}: ${d.bytes} B at position ${d.position} of ${d.segment}`,
      );
    }
    const count = r.offsetsLost === null ? 'an unknown number of' : String(r.offsetsLost);
    lines.push(
      `${r.dryRun ? 'would lose' : 'lost'} ${count} offsets: ${r.lost.map(range).join(', ')} (${r.bytesRemoved} B)`,
    );
  }
  lines.push(`log end offset ${r.logEndOffsetBefore} -> ${r.logEndOffsetAfter}`);
  lines.push(
    r.online ? 'partition online' : `partition offline: ${r.offlineReason ?? 'unknown reason'}`,
  );
  return lines;
}

export function partitionCommand(): Command {
  const partition = new Command('partition').description(
    'repair damaged partitions, reassign and describe their replicas',
  );
  addReassignCommands(partition);
  withClientOptions(
    partition
      .command('repair <topic> <partition>')
      .description(
        'repair a damaged partition: --truncate cuts the log at the first damage; --skip replaces each damaged range by an empty gap so later offsets keep their values',
      )
      .option('--truncate', 'cut the log at the first damaged batch (every later offset is lost)')
      .option('--skip', 'skip the damaged batch ranges only (consumers move past the gap)')
      .option('--dry-run', 'report what would be lost; change nothing'),
  ).action(
    async (
      topic: string,
      partitionArg: string,
      opts: ClientFlags & { truncate?: boolean; skip?: boolean; dryRun?: boolean },
    ) => {
      const index = parseIntArg('<partition>', 0, 99_999)(partitionArg);
      if (opts.truncate === opts.skip) {
        throw new UsageError('partition repair: give exactly one of --truncate or --skip');
      }
      const mode = opts.truncate ? 'truncate' : 'skip';
      await withClient(opts, async (client, out) => {
        const r = await client
          .admin()
          .repairPartition(topic, index, { mode, dryRun: opts.dryRun === true });
        for (const line of describeRepair(topic, index, r)) out.human(line);
        out.json({ topic, partition: index, ...r });
        if (!r.online && !r.dryRun) {
          throw new StreamBusError(
            ErrorCode.KAFKA_STORAGE_ERROR,
            `partition ${topic}/${index} is still offline: ${r.offlineReason ?? 'unknown reason'}`,
          );
        }
      });
    },
  );
  return partition;
}
