// `node benchmarks/dist/cluster-idle.js [--groups N] [--seconds S] [--tick-ms T]
// [--heartbeat-ticks H] [--cpu-prof-child]`: the idle cost
// of the inter-broker transport and the group host. Three broker processes on 127.0.0.1, each
// with PeerLinks and a RaftGroupHost hosting N Raft groups (RF 3: every group on all three),
// elect leaders, then sit idle; each reports its CPU time and RSS over the idle window.
//
// What it measures: ticking, heartbeats (coalesced into one frame per peer per tick), their
// encoding, decoding and stepping. What it leaves out: the segment log and fsync (the groups use
// the Raft core's MemoryStorage), the controller, client traffic. Read first: `cpuPercent`, one
// broker's share of one core while idle (issue 9's target: under 5% for 1,000 replicas). The
// figures are noisy on a shared machine; profile one broker with `--cpu-prof-child`.
import { fork } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { cluster } from '@streambus/broker';
import { type NodeId, StateRole } from '@streambus/raft';

interface Args {
  groups: number;
  seconds: number;
  tickMs: number;
  heartbeatTicks: number;
  profile: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    groups: 1000,
    seconds: 10,
    tickMs: 100,
    heartbeatTicks: 1,
    profile: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = Number(argv[i + 1]);
    if (a === '--groups') args.groups = v;
    else if (a === '--seconds') args.seconds = v;
    else if (a === '--tick-ms') args.tickMs = v;
    else if (a === '--heartbeat-ticks') args.heartbeatTicks = v;
    else if (a === '--cpu-prof-child') {
      args.profile = true;
      continue;
    } else continue;
    i++;
  }
  return args;
}

type ToChild = { kind: 'start'; ports: number[] } | { kind: 'measure' } | { kind: 'stop' };
type FromChild =
  | { kind: 'port'; port: number }
  | { kind: 'leaders'; count: number }
  | { kind: 'result'; cpuPercent: number; rssMiB: number; stats: unknown };

async function child(self: NodeId, args: Args): Promise<void> {
  const send = (m: FromChild) => process.send?.(m);
  let links: cluster.PeerLinks | null = null;
  const server = createServer((socket) => {
    socket.once('data', (first: Buffer) => {
      if (links && cluster.isPeerPreamble(first)) links.adopt(socket, first);
      else socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  send({ kind: 'port', port: address.port });
  const next = (kind: ToChild['kind']) =>
    new Promise<ToChild>((resolve) => {
      const on = (m: ToChild) => {
        if (m.kind !== kind) return;
        process.off('message', on);
        resolve(m);
      };
      process.on('message', on);
    });
  const start = await next('start');
  if (start.kind !== 'start') throw new Error('unreachable');
  const peers = new Map<NodeId, cluster.PeerAddress>(
    start.ports.map((port, i) => [(i + 1) as NodeId, { host: '127.0.0.1', port }]),
  );
  links = new cluster.PeerLinks({ self, peers, clusterId: 'bench' });
  const host = new cluster.RaftGroupHost({ transport: links, tickIntervalMs: args.tickMs });
  const voters = [1, 2, 3] as NodeId[];
  const groups: cluster.MemoryRaftGroup[] = [];
  for (let p = 0; p < args.groups; p++) {
    const g = new cluster.MemoryRaftGroup({ topicId: 1, partition: p }, self, voters, links, {
      heartbeatTicks: args.heartbeatTicks,
    });
    groups.push(g);
    host.add(g);
  }
  // Settle: wait until every group has a leader known here.
  const settleDeadline = Date.now() + 30_000;
  while (groups.some((g) => g.node.currentLead === 0) && Date.now() < settleDeadline) {
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  const measure = next('measure');
  send({
    kind: 'leaders',
    count: groups.filter((g) => g.node.currentRole === StateRole.Leader).length,
  });
  // All three measure the same window, and none stops before all have measured.
  await measure;
  const stop = next('stop');
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const before = links.stats();
  await new Promise((r) => setTimeout(r, args.seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const after = links.stats();
  send({
    kind: 'result',
    cpuPercent: (100 * (cpu.user + cpu.system)) / wallUs,
    rssMiB: process.memoryUsage().rss / (1024 * 1024),
    stats: {
      framesSentPerSecond: (after.framesSent - before.framesSent) / args.seconds,
      messagesSentPerSecond: (after.messagesSent - before.messagesSent) / args.seconds,
      messagesDroppedIdle: after.messagesDropped - before.messagesDropped,
      messagesDroppedNoLinkIdle: after.messagesDroppedNoLink - before.messagesDroppedNoLink,
      reconnectsIdle: after.reconnects - before.reconnects,
      linksUp: after.linksUp,
      host: host.stats(),
    },
  });
  await stop;
  await host.close();
  await links.close();
  server.close();
}

async function parent(args: Args): Promise<void> {
  const script = fileURLToPath(import.meta.url);
  const children = [1, 2, 3].map((id) =>
    fork(script, ['--child', String(id), ...process.argv.slice(2)], {
      execArgv: args.profile && id === 1 ? ['--cpu-prof', '--cpu-prof-dir=cluster-idle-prof'] : [],
    }),
  );
  const waitAll = (kind: FromChild['kind']) =>
    Promise.all(
      children.map(
        (c) =>
          new Promise<FromChild>((resolve, reject) => {
            const onMessage = (m: FromChild) => {
              if (m.kind !== kind) return;
              c.off('message', onMessage);
              resolve(m);
            };
            c.on('message', onMessage);
            c.once('exit', (code) => reject(new Error(`child exited with ${code} before ${kind}`)));
          }),
      ),
    );
  try {
    const ports = (await waitAll('port')).map((m) => (m.kind === 'port' ? m.port : 0));
    for (const c of children) c.send({ kind: 'start', ports } satisfies ToChild);
    const leaders = await waitAll('leaders');
    const resultsPromise = waitAll('result');
    for (const c of children) c.send({ kind: 'measure' } satisfies ToChild);
    const results = await resultsPromise;
    for (const c of children) c.send({ kind: 'stop' } satisfies ToChild);
    console.log(
      JSON.stringify(
        {
          note: 'noisy, shared machine (2 cores, several agents); idle window only',
          groups: args.groups,
          tickMs: args.tickMs,
          heartbeatTicks: args.heartbeatTicks,
          seconds: args.seconds,
          leadersPerBroker: leaders.map((m) => (m.kind === 'leaders' ? m.count : 0)),
          brokers: results,
        },
        null,
        2,
      ),
    );
  } finally {
    // Let the children exit by themselves (a profile is written at exit), then make sure.
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            const t = setTimeout(() => {
              c.kill('SIGKILL');
              resolve();
            }, 5_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}

const argv = process.argv.slice(2);
const childAt = argv.indexOf('--child');
if (childAt >= 0) {
  const rest = [...argv.slice(0, childAt), ...argv.slice(childAt + 2)];
  child(Number(argv[childAt + 1]) as NodeId, parseArgs(rest)).then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  parent(parseArgs(argv)).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
