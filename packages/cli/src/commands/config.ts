// `streambus config set KEY VALUE [--broker ID]`, `config unset KEY [--broker ID]`,
// `config describe --broker ID`: the dynamic broker settings (logLevel, leaderBalance.intervalMs,
// retentionCheckIntervalMs, reassignmentBytesPerSecond), changed at runtime through the
// controller's log (AlterBrokerConfig, DescribeBrokerConfig). Without --broker a change applies
// to every broker (a broker's own value wins over it).
import { Command } from 'commander';
import { table } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

const brokerOption = (c: Command, what: string): Command =>
  c.option('--broker <id>', what, parseIntArg('--broker', 0, 2 ** 31 - 1));

export function configCommand(): Command {
  const config = new Command('config').description(
    'change dynamic broker settings at runtime (recorded by the controller)',
  );
  const change = async (
    opts: ClientFlags & { broker?: number },
    key: string,
    value: string | null,
  ): Promise<void> => {
    const brokerId = opts.broker ?? -1;
    await withClient(opts, async (client, out) => {
      await client.admin().alterBrokerConfig(brokerId, { [key]: value });
      out.json({ brokerId, key, value });
      const where = brokerId === -1 ? 'every broker' : `broker ${brokerId}`;
      out.human(value === null ? `${key} unset on ${where}` : `${key}=${value} on ${where}`);
    });
  };
  withClientOptions(
    brokerOption(
      config.command('set <key> <value>').description('set a dynamic broker setting'),
      'only this broker (default: every broker)',
    ),
  ).action((key: string, value: string, opts: ClientFlags & { broker?: number }) =>
    change(opts, key, value),
  );
  withClientOptions(
    brokerOption(
      config
        .command('unset <key>')
        .description('remove a dynamic value: back to the cluster-wide or the static one'),
      'only this broker (default: the cluster-wide value)',
    ),
  ).action((key: string, opts: ClientFlags & { broker?: number }) => change(opts, key, null));
  withClientOptions(
    config
      .command('describe')
      .description('the dynamic settings in force on a broker and where each comes from')
      .requiredOption('--broker <id>', 'the broker', parseIntArg('--broker', 0, 2 ** 31 - 1)),
  ).action(async (opts: ClientFlags & { broker: number }) => {
    await withClient(opts, async (client, out) => {
      const entries = await client.admin().describeBrokerConfig(opts.broker);
      out.json({ brokerId: opts.broker, entries });
      if (out.isJson) return;
      for (const line of table(
        ['key', 'value', 'source'],
        entries.map((e) => [e.key, e.value, e.source]),
      )) {
        out.human(line);
      }
    });
  });
  return config;
}
