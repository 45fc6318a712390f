// The replica implementations the simulation can run, by name (`--replica`).

import { realReplicaFactory } from './real-replica.js';
import type { SimReplicaFactory } from './sim-replica.js';
import { standInReplicaFactory } from './stand-in-replica.js';

const FACTORIES: ReadonlyMap<string, SimReplicaFactory> = new Map([
  ['real', realReplicaFactory],
  ['stand-in', standInReplicaFactory],
]);

/** What `--replica` defaults to. */
export const DEFAULT_REPLICA = 'real';

export function replicaFactory(name: string): SimReplicaFactory {
  const f = FACTORIES.get(name);
  if (!f) throw new Error(`unknown replica '${name}' (known: ${[...FACTORIES.keys()].join(', ')})`);
  return f;
}
