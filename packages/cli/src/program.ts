// The `streambus` command tree (commander). Each command lives in commands/*.ts; this file wires
// them together (program-base.ts: the root and the CLI's error convention, output.ts).
import type { Command } from 'commander';
import { brokerCommand, devCommand } from './commands/broker.js';
import { clusterCommand } from './commands/cluster.js';
import { configCommand } from './commands/config.js';
import { consumeCommand } from './commands/consume.js';
import { groupCommand } from './commands/group.js';
import { partitionCommand } from './commands/partition.js';
import { produceCommand } from './commands/produce.js';
import { topicCommand } from './commands/topic.js';
import { conventions, rootProgram } from './program-base.js';

export { CLI_VERSION } from './program-base.js';

/** Builds the `streambus` command tree. */
export function buildProgram(): Command {
  const program = rootProgram();
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
