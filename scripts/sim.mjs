#!/usr/bin/env node
// `pnpm sim ...` / `npm run sim -- ...`: `cluster` runs the cluster simulation of the real
// replica and controller code (packages/broker/src/sim, see docs/simulation.md); anything else
// goes to the Raft core's simulator (packages/raft/src/sim, see docs/raft.md), unchanged.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cluster = process.argv[2] === 'cluster';
const entry = cluster
  ? join(root, 'packages/broker/dist/sim/bin.js')
  : join(root, 'packages/raft/dist/sim/main.js');
await import(pathToFileURL(entry).href);
