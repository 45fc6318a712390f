#!/usr/bin/env node
// The `streambus` executable: runs the command tree and turns any failure into one line on
// stderr and an exit code (2 usage, 1 otherwise; see output.ts).
import { CommanderError } from 'commander';
import { describeError } from './output.js';
import { buildProgram } from './program.js';

const program = buildProgram();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander already printed the message (help and --version exit 0).
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const { message, exitCode } = describeError(err);
    process.stderr.write(`streambus: ${message}\n`);
    process.exitCode = exitCode;
  }
}
