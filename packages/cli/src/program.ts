import { Command } from 'commander';

export const CLI_VERSION = '0.1.0';

/** Builds the `streambus` command tree. Commands are added by their own modules. */
export function buildProgram(): Command {
  const program = new Command('streambus')
    .description('StreamBus: a replicated, partitioned, append-only log broker')
    .version(CLI_VERSION);
  return program;
}
