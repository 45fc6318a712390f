// The root of the `streambus` command tree and the conventions every command follows (usage
// errors as one line, output.ts). program.ts adds every command; broker-program.ts only the
// broker's, for bin.ts's fast path.
import { Command } from 'commander';

export const CLI_VERSION = '0.1.0';

export function rootProgram(): Command {
  return new Command('streambus')
    .description('StreamBus: a replicated, partitioned, append-only log broker')
    .version(CLI_VERSION)
    .showSuggestionAfterError(true);
}

/** Applies the CLI's output conventions to a command and all its subcommands. */
export function conventions(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({
    outputError: (str, write) => write(`streambus: ${str.replace(/^error: /, '').trim()}\n`),
  });
  for (const sub of cmd.commands) conventions(sub);
}
