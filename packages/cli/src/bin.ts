#!/usr/bin/env node
// The `streambus` program: runs the command tree and turns any failure into one line on stderr
// and an exit code (ExitCode in output.ts: 2 usage or configuration, 1 failure, 0 ok).
import { CommanderError } from 'commander';
import { describeError, ExitCode } from './output.js';

// A closed pipe (`streambus consume t | head`) ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

// `broker` and `dev` run brokers: their tree alone, so a broker start does not load the client
// commands (broker-program.ts). Anything else, a typo included, gets the whole tree.
const first = process.argv[2];
const program =
  first === 'broker' || first === 'dev'
    ? (await import('./broker-program.js')).buildBrokerProgram()
    : (await import('./program.js')).buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander already printed the message (help and --version exit 0).
    process.exitCode = err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  } else {
    const { message, exitCode } = describeError(err);
    process.stderr.write(`streambus: ${message}\n`);
    process.exitCode = exitCode;
  }
}
