// `streambus broker ...` and `streambus dev ...` alone (bin.ts): the commands that run brokers,
// without the client commands and the client package they load (about 40 ms of CPU at every
// broker start through the CLI: the cluster harness, `streambus dev`, `npm start`).
import type { Command } from 'commander';
import { brokerCommand, devCommand } from './commands/broker.js';
import { conventions, rootProgram } from './program-base.js';

export function buildBrokerProgram(): Command {
  const program = rootProgram();
  program.addCommand(brokerCommand());
  program.addCommand(devCommand());
  conventions(program);
  return program;
}
