// `streambus topic create|list|describe|delete`.
import { Command } from 'commander';
import { UsageError } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

function collectConfig(value: string, previous: Record<string, string>): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new UsageError(`--config: expected KEY=VALUE, got '${value}'`);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

export function topicCommand(): Command {
  const topic = new Command('topic').description('create, list, describe and delete topics');

  withClientOptions(
    topic
      .command('create <name>')
      .description('create a topic')
      .option(
        '--partitions <n>',
        'partition count (default: the broker default)',
        parseIntArg('--partitions', 1, 100_000),
      )
      .option('--config <key=value>', 'a topic config (repeatable)', collectConfig, {}),
  ).action(
    async (
      name: string,
      opts: ClientFlags & { partitions?: number; config: Record<string, string> },
    ) => {
      await withClient(opts, async (client, out) => {
        const admin = client.admin();
        await admin.createTopic({
          name,
          ...(opts.partitions === undefined ? {} : { partitions: opts.partitions }),
          configs: opts.config,
        });
        const d = await admin.describeTopic(name);
        out.human(
          `created topic ${name} with ${d.partitions.length} partition${d.partitions.length === 1 ? '' : 's'}`,
        );
        out.json({ created: name, partitions: d.partitions.length, configs: opts.config });
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
      out.human('partition  leader  replicas  earliest  latest');
      for (const p of d.partitions) {
        out.human(
          `${String(p.partition).padEnd(9)}  ${String(p.leaderId).padEnd(6)}  ${p.replicas.join(',').padEnd(8)}  ${String(p.earliestOffset).padEnd(8)}  ${p.latestOffset}${p.offlineReason === null ? '' : `  OFFLINE ${p.offlineReason}`}`,
        );
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
  return topic;
}
