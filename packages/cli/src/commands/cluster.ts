// `streambus cluster describe`: the brokers of the cluster (id, address, live or not, controller
// role, replica and leader counts) as the controller's metadata has them.
// `streambus cluster rebalance-leaders`: preferred-leader balancing now (the RebalanceLeaders API).
// `streambus cluster decommission ID`: its replicas move off, then it leaves (DecommissionBroker).
// `streambus cluster voters list | add ID | remove ID`: the controller quorum (AlterControllerVoters).
import type { BrokerDescription } from '@streambus/client';
import { Command } from 'commander';
import { table } from '../output.js';
import { type ClientFlags, parseIntArg, withClient, withClientOptions } from './common.js';

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
  const cluster = new Command('cluster').description('describe the cluster, balance its leaders');
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
  withClientOptions(
    cluster
      .command('rebalance-leaders')
      .description(
        'hand each partition back to its preferred leader (the first replica) where it is live and in sync',
      )
      .option(
        '--timeout-ms <ms>',
        'wait this long for the moves to show',
        parseIntArg('--timeout-ms', 0, 600_000),
        10_000,
      ),
  ).action(async (opts: ClientFlags & { timeoutMs: number }) => {
    const timeoutMs = opts.timeoutMs;
    await withClient(opts, async (client, out) => {
      const r = await client.admin().rebalanceLeaders({ timeoutMs });
      out.json(r);
      if (out.isJson) return;
      out.human(
        `${r.transfersStarted} leadership transfer${r.transfersStarted === 1 ? '' : 's'} started; ` +
          (r.remainingCount === 0
            ? 'every partition is led by its preferred replica where it can be'
            : `${r.remainingCount} partition${r.remainingCount === 1 ? '' : 's'} not yet led by the preferred replica`),
      );
      const rows = r.remaining.map((m) => [
        `${m.topic}/${m.partition}`,
        String(m.leaderId),
        String(m.preferredId),
      ]);
      if (rows.length > 0)
        for (const line of table(['partition', 'leader', 'preferred'], rows)) out.human(line);
    });
  });
  withClientOptions(
    cluster
      .command('decommission <id>')
      .description(
        'move every replica off broker ID, then take it out of the registry and the controller quorum (stop its process after)',
      )
      .option(
        '--timeout-ms <ms>',
        'wait this long for its replicas to move',
        parseIntArg('--timeout-ms', 0, 3_600_000),
        120_000,
      ),
  ).action(async (idArg: string, opts: ClientFlags & { timeoutMs: number }) => {
    const id = parseIntArg('<id>', 0, 2 ** 31 - 1)(idArg);
    await withClient(opts, async (client, out) => {
      const r = await client.admin().decommissionBroker(id, { timeoutMs: opts.timeoutMs });
      out.json({ brokerId: id, ...r });
      out.human(
        `broker ${id} decommissioned: ${r.partitionsMoved} partition${r.partitionsMoved === 1 ? '' : 's'} moved off it; it left the registry (stop its process now)`,
      );
    });
  });
  addVotersCommands(cluster);
  return cluster;
}

/** `cluster voters [add ID | remove ID]` (AlterControllerVoters, controller-voters.ts). */
function addVotersCommands(cluster: Command): void {
  const voters = cluster
    .command('voters')
    .description('the controller quorum: list its voters, or add or remove one voter at a time');
  const print = (
    out: { json(v: unknown): void; human(line: string): void; isJson: boolean },
    conf: { voters: number[]; learners: number[] },
    what: string,
  ) => {
    out.json(conf);
    if (out.isJson) return;
    out.human(
      `${what}controller voters [${conf.voters.join(',')}], learners [${conf.learners.join(',')}]`,
    );
  };
  withClientOptions(voters.command('list').description('the voters and learners now')).action(
    async (opts: ClientFlags) => {
      await withClient(opts, async (client, out) => {
        print(out, await client.admin().controllerVoters(), '');
      });
    },
  );
  for (const op of ['add', 'remove'] as const) {
    withClientOptions(
      voters
        .command(`${op} <id>`)
        .description(
          op === 'add'
            ? 'make registered broker ID a controller voter (once it caught up with the metadata log)'
            : 'take broker ID out of the controller voters (refused when no majority of live voters would stay)',
        )
        .option(
          '--timeout-ms <ms>',
          'wait this long for the quorum to change',
          parseIntArg('--timeout-ms', 0, 3_600_000),
          60_000,
        ),
    ).action(async (idArg: string, opts: ClientFlags & { timeoutMs: number }) => {
      const id = parseIntArg('<id>', 1, 2 ** 31 - 1)(idArg);
      await withClient(opts, async (client, out) => {
        const conf = await client
          .admin()
          .alterControllerVoters(op, id, { timeoutMs: opts.timeoutMs });
        print(out, conf, `broker ${id} ${op === 'add' ? 'added' : 'removed'}: `);
      });
    });
  }
}
