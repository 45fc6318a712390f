// The replica implementations the simulation can run, by name (`--replica`).

import type { SimReplicaFactory } from './sim-replica.js';
import { standInReplicaFactory } from './stand-in-replica.js';

const FACTORIES: ReadonlyMap<string, SimReplicaFactory> = new Map([
  ['stand-in', standInReplicaFactory],
]);

/** What `--replica` defaults to: the real replica once it is registered here. */
export const DEFAULT_REPLICA = 'stand-in';

export function replicaFactory(name: string): SimReplicaFactory {
  const f = FACTORIES.get(name);
  if (!f) throw new Error(`unknown replica '${name}' (known: ${[...FACTORIES.keys()].join(', ')})`);
  return f;
}
