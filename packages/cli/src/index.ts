// @streambus/cli: the `streambus` command. `bin.ts` is the executable; this entry exposes the
// program builder so tests can drive it in-process.
export { buildProgram } from './program.js';
