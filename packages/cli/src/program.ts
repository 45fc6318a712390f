// The `streambus` command tree (commander). Each command lives in commands/*.ts; this file wires
// them together and makes usage errors follow the CLI's error convention (output.ts).
import { Command } from 'commander';
import { brokerCommand, devCommand } from './commands/broker.js';
import { clusterCommand } from './commands/cluster.js';
import { configCommand } from './commands/config.js';
import { consumeCommand } from './commands/consume.js';
import { groupCommand } from './commands/group.js';
import { partitionCommand } from './commands/partition.js';
import { produceCommand } from './commands/produce.js';
import { topicCommand } from './commands/topic.js';

export const CLI_VERSION = '0.1.0';

/** Applies the CLI's output conventions to a command and all its subcommands. */
function conventions(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({
    outputError: (str, write) => write(`streambus: ${str.replace(/^error: /, '').trim()}\n`),
  });
  for (const sub of cmd.commands) conventions(sub);
}

/** Builds the `streambus` command tree. */
export function buildProgram(): Command {
  const program = new Command('streambus')
    .description('StreamBus: a replicated, partitioned, append-only log broker')
    .version(CLI_VERSION)
    .showSuggestionAfterError(true);
  program.addCommand(brokerCommand());
  program.addCommand(devCommand());
  program.addCommand(topicCommand());
  program.addCommand(clusterCommand());
  program.addCommand(partitionCommand());
  program.addCommand(configCommand());
  program.addCommand(produceCommand());
  program.addCommand(consumeCommand());
  program.addCommand(groupCommand());
  conventions(program);
  return program;
}
