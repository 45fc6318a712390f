// @streambus/cli: the `streambus` command. `bin.ts` is the executable; this entry exposes the
// program builder so tests can drive it in-process.

export {
  type DevClusterOptions,
  freePorts,
  runDevCluster,
} from './commands/dev-cluster.js';
export { describeError, Output, UsageError } from './output.js';
export { buildProgram, CLI_VERSION } from './program.js';
