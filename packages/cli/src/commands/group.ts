// `streambus group list|describe|reset-offsets|delete`: consumer groups through the SDK's admin
// (admin-groups.ts). reset-offsets needs exactly one of --to-earliest, --to-latest,
// --to-offset N and --to-timestamp MS (a usage error otherwise, exit 2); it refuses a group with
// members (exit 1: stop its consumers first) unless --dry-run, which only prints the new offsets.
import type { GroupDescription, ResetTarget } from '@streambus/client';
import { Command } from 'commander';
import { table, UsageError } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

interface ResetFlags extends ClientFlags {
  topic: string;
  partition?: number;
  toEarliest?: boolean;
  toLatest?: boolean;
  toOffset?: number;
  toTimestamp?: number;
  dryRun?: boolean;
}

/** The reset target the flags name; UsageError unless exactly one is given. */
export function resetTarget(opts: ResetFlags): ResetTarget {
  const given: ResetTarget[] = [];
  if (opts.toEarliest) given.push('earliest');
  if (opts.toLatest) given.push('latest');
  if (opts.toOffset !== undefined) given.push({ offset: opts.toOffset });
  if (opts.toTimestamp !== undefined) given.push({ timestamp: opts.toTimestamp });
  if (given.length !== 1) {
    throw new UsageError(
      'reset-offsets: use exactly one of --to-earliest, --to-latest, --to-offset and --to-timestamp',
    );
  }
  return given[0]!;
}

function describeLines(d: GroupDescription): string[] {
  const lines = [
    `group ${d.groupId}: ${d.state}${d.protocol === '' ? '' : `, protocol ${d.protocol}`}, generation ${d.generation}, ${d.members.length} member${d.members.length === 1 ? '' : 's'}`,
  ];
  for (const m of d.members) {
    const tps = m.assignment.map((tp) => `${tp.topic}/${tp.partition}`).join(' ');
    lines.push(
      `  ${m.memberId}${m.memberId === d.leaderId ? ' (leader)' : ''}${m.groupInstanceId === null ? '' : ` instance ${m.groupInstanceId}`}: ${tps === '' ? 'no partitions' : tps}`,
    );
  }
  if (d.offsets.length > 0) {
    const rows = d.offsets.map((o) => [
      o.topic,
      String(o.partition),
      o.committedOffset < 0 ? '-' : String(o.committedOffset),
      o.logEnd < 0 ? '-' : String(o.logEnd),
      o.lag === null ? '-' : String(o.lag),
      o.memberId ?? '-',
    ]);
    lines.push(...table(['topic', 'partition', 'committed', 'log-end', 'lag', 'member'], rows));
  }
  return lines;
}

export function groupCommand(): Command {
  const group = new Command('group').description(
    'list, describe, reset the offsets of and delete consumer groups',
  );

  withClientOptions(group.command('list').description('list the consumer groups')).action(
    async (opts: ClientFlags) => {
      await withClient(opts, async (client, out) => {
        const groups = await client.admin().listGroups();
        for (const g of groups) {
          out.human(`${g.groupId}  ${g.state}`);
          out.json(g);
        }
      });
    },
  );

  withClientOptions(
    group
      .command('describe <group>')
      .description('members, assignments, committed offsets and lag of a group'),
  ).action(async (groupId: string, opts: ClientFlags) => {
    await withClient(opts, async (client, out) => {
      const d = await client.admin().describeGroup(groupId);
      out.json(d);
      for (const line of describeLines(d)) out.human(line);
    });
  });

  withClientOptions(
    group
      .command('reset-offsets <group>')
      .description("set a group's committed offsets of a topic (the group must have no members)")
      .requiredOption('--topic <topic>', 'the topic whose offsets are reset')
      .option('--partition <p>', 'only this partition', parseIntArg('--partition', 0, 99_999))
      .option('--to-earliest', 'to the earliest offset kept')
      .option('--to-latest', 'to the log end (skip everything so far)')
      .option(
        '--to-offset <n>',
        'to this offset (clamped to the log)',
        parseIntArg('--to-offset', 0),
      )
      .option(
        '--to-timestamp <ms>',
        'to the first record at or after this time (ms since the epoch)',
        parseIntArg('--to-timestamp', 0),
      )
      .option('--dry-run', 'print the new offsets without committing them'),
  ).action(async (groupId: string, opts: ResetFlags) => {
    const to = resetTarget(opts);
    await withClient(opts, async (client, out) => {
      const result = await client.admin().resetOffsets(groupId, {
        topic: opts.topic,
        to,
        ...(opts.partition === undefined ? {} : { partitions: [opts.partition] }),
        ...(opts.dryRun ? { dryRun: true } : {}),
      });
      out.json({ group: groupId, dryRun: opts.dryRun === true, offsets: result });
      out.human(
        `${opts.dryRun ? 'would reset' : 'reset'} ${result.length} partition${result.length === 1 ? '' : 's'} of ${opts.topic} for group ${groupId}`,
      );
      for (const line of table(
        ['partition', 'previous', 'new'],
        result.map((r) => [
          String(r.partition),
          r.previousOffset < 0 ? '-' : String(r.previousOffset),
          String(r.newOffset),
        ]),
      )) {
        out.human(line);
      }
    });
  });

  withClientOptions(
    group.command('delete <group>').description('delete a group without members, and its offsets'),
  ).action(async (groupId: string, opts: ClientFlags) => {
    await withClient(opts, async (client, out) => {
      await client.admin().deleteGroup(groupId);
      out.human(`deleted group ${groupId}`);
      out.json({ deleted: groupId });
    });
  });
  return group;
}
