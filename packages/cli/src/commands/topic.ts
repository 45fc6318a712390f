// `streambus topic create|list|describe|delete|add-partitions`.
import { Command } from 'commander';
import { table, UsageError } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

function collectConfig(value: string, previous: Record<string, string>): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new UsageError(`--config: expected KEY=VALUE, got '${value}'`);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

export function topicCommand(): Command {
  const topic = new Command('topic').description(
    'create, list, describe and delete topics, and add partitions',
  );

  withClientOptions(
    topic
      .command('create <name>')
      .description('create a topic')
      .option(
        '--partitions <n>',
        'partition count (default: the broker default)',
        parseIntArg('--partitions', 1, 100_000),
      )
      .option(
        '--replication-factor <n>',
        'replicas per partition (default: min(3, live brokers))',
        parseIntArg('--replication-factor', 1, 32_767),
      )
      .option('--config <key=value>', 'a topic config (repeatable)', collectConfig, {}),
  ).action(
    async (
      name: string,
      opts: ClientFlags & {
        partitions?: number;
        replicationFactor?: number;
        config: Record<string, string>;
      },
    ) => {
      await withClient(opts, async (client, out) => {
        const admin = client.admin();
        await admin.createTopic({
          name,
          ...(opts.partitions === undefined ? {} : { partitions: opts.partitions }),
          ...(opts.replicationFactor === undefined
            ? {}
            : { replicationFactor: opts.replicationFactor }),
          configs: opts.config,
        });
        const d = await admin.describeTopic(name);
        const replicas = d.partitions[0]?.replicas.length ?? 0;
        out.human(
          `created topic ${name} with ${d.partitions.length} partition${d.partitions.length === 1 ? '' : 's'}${replicas > 1 ? `, ${replicas} replicas each` : ''}`,
        );
        out.json({
          created: name,
          partitions: d.partitions.length,
          replicationFactor: replicas,
          configs: opts.config,
        });
      });
    },
  );

  withClientOptions(topic.command('list').description('list topics')).action(
    async (opts: ClientFlags) => {
      await withClient(opts, async (client, out) => {
        const names = await client.admin().listTopics();
        for (const name of names) {
          out.human(name);
          out.json({ name });
        }
      });
    },
  );

  withClientOptions(
    topic.command('describe <name>').description('partitions, offsets and configs of a topic'),
  ).action(async (name: string, opts: ClientFlags) => {
    await withClient(opts, async (client, out) => {
      const d = await client.admin().describeTopic(name);
      out.json({
        name: d.name,
        partitions: d.partitions.map((p) => ({
          partition: p.partition,
          leader: p.leaderId,
          leaderEpoch: p.leaderEpoch,
          replicas: p.replicas,
          isr: p.isr,
          earliestOffset: p.earliestOffset,
          latestOffset: p.latestOffset,
          offline: p.offlineReason,
        })),
        configs: Object.fromEntries(d.configs.map((c) => [c.name, c.value])),
      });
      if (out.isJson) return;
      out.human(
        `topic ${d.name}: ${d.partitions.length} partition${d.partitions.length === 1 ? '' : 's'}`,
      );
      const rows = d.partitions.map((p) => [
        String(p.partition),
        p.leaderId < 0 ? 'none' : String(p.leaderId),
        String(p.leaderEpoch),
        p.replicas.join(','),
        p.isr.join(','),
        String(p.earliestOffset),
        `${p.latestOffset}${p.offlineReason === null ? '' : `  OFFLINE ${p.offlineReason}`}`,
      ]);
      for (const line of table(
        ['partition', 'leader', 'epoch', 'replicas', 'isr', 'earliest', 'latest'],
        rows,
      )) {
        out.human(line);
      }
      if (d.configs.length > 0) {
        out.human('configs:');
        for (const c of d.configs)
          out.human(`  ${c.name}=${c.value ?? ''}${c.isDefault ? ' (default)' : ''}`);
      }
    });
  });

  withClientOptions(
    topic.command('delete <name>').description('delete a topic and its data'),
  ).action(async (name: string, opts: ClientFlags) => {
    await withClient(opts, async (client, out) => {
      await client.admin().deleteTopic(name);
      out.human(`deleted topic ${name}`);
      out.json({ deleted: name });
    });
  });
  withClientOptions(
    topic
      .command('add-partitions <name>')
      .description('grow a topic to --count partitions (the count only grows)')
      .requiredOption(
        '--count <n>',
        'the partition count wanted',
        parseIntArg('--count', 1, 100_000),
      )
      .option(
        '--replica-assignment <lists>',
        "brokers of each new partition, preferred leader first: '1:2,2:3' (default: the controller places them)",
        parseReplicaAssignment,
      )
      .option('--dry-run', 'check the request without changing anything'),
  ).action(
    async (
      name: string,
      opts: ClientFlags & { count: number; replicaAssignment?: number[][]; dryRun?: boolean },
    ) => {
      await withClient(opts, async (client, out) => {
        const admin = client.admin();
        await admin.createPartitions({
          topic: name,
          count: opts.count,
          ...(opts.replicaAssignment === undefined ? {} : { assignments: opts.replicaAssignment }),
          validateOnly: opts.dryRun === true,
        });
        const dry = opts.dryRun === true;
        out.human(
          dry
            ? `topic ${name} can grow to ${opts.count} partitions (dry run: nothing changed)`
            : `topic ${name} now has ${opts.count} partitions`,
        );
        out.json({ topic: name, partitions: opts.count, dryRun: dry });
      });
    },
  );
  return topic;
}

/** `--replica-assignment 1:2,2:3`: one colon-separated broker list per new partition. */
function parseReplicaAssignment(value: string): number[][] {
  return value.split(',').map((part) =>
    part.split(':').map((id) => {
      const n = Number(id);
      if (id.trim() === '' || !Number.isInteger(n) || n < 0) {
        throw new UsageError(
          `--replica-assignment: expected broker ids like '1:2,2:3', got '${value}'`,
        );
      }
      return n;
    }),
  );
}
