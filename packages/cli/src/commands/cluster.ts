// `streambus cluster describe`: the brokers of the cluster (id, address, live or not, controller
// role, replica and leader counts) as the controller's metadata has them.
import type { BrokerDescription } from '@streambus/client';
import { Command } from 'commander';
import { table } from '../output.js';
import { type ClientFlags, withClient, withClientOptions } from './common.js';

/** "controller" (the quorum's leader), "voter" (a standby controller), or "-" (broker only). */
function controllerRole(b: BrokerDescription): string {
  if (b.isController) return 'controller';
  return b.isVoter ? 'voter' : '-';
}

function state(b: BrokerDescription): string {
  if (b.fenced) return b.live ? 'fenced' : 'down (fenced)';
  return b.live ? 'live' : 'down';
}

export function clusterCommand(): Command {
  const cluster = new Command('cluster').description('describe the cluster');
  withClientOptions(
    cluster
      .command('describe')
      .description('brokers: id, address, live, controller role, replica and leader counts'),
  ).action(async (opts: ClientFlags) => {
    await withClient(opts, async (client, out) => {
      const d = await client.admin().describeCluster();
      out.json({
        clusterId: d.clusterId,
        controllerId: d.controllerId,
        brokers: d.brokers.map((b) => ({
          id: b.nodeId,
          address: `${b.host}:${b.port}`,
          live: b.live,
          fenced: b.fenced,
          controller: controllerRole(b),
          replicas: b.replicaCount,
          leaders: b.leaderCount,
        })),
      });
      if (out.isJson) return;
      out.human(
        `cluster ${d.clusterId}: ${d.brokers.length} broker${d.brokers.length === 1 ? '' : 's'}, controller ${d.controllerId < 0 ? 'none (election in progress)' : d.controllerId}`,
      );
      const rows = d.brokers.map((b) => [
        String(b.nodeId),
        `${b.host}:${b.port}`,
        state(b),
        controllerRole(b),
        String(b.replicaCount),
        String(b.leaderCount),
      ]);
      for (const line of table(
        ['id', 'address', 'state', 'controller', 'replicas', 'leaders'],
        rows,
      )) {
        out.human(line);
      }
    });
  });
  return cluster;
}
