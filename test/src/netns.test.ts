// The network-namespace helper on its own: nodes reach each other and the host reaches them; a
// one-way block stops exactly that direction's connections; healing restores them; close kills
// what ran inside and leaves no namespace or host veth. Skipped, with the reason, where network
// namespaces are not available (not root, no iproute2).
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { hostLinkExists, NetnsNetwork, netnsSupport, testNamespaces } from './netns.js';

const support = netnsSupport();
if (!support.ok) console.warn(`netns tests skipped: ${support.reason}`);

const PORT = 7399;
const SERVER = `require('node:net').createServer((s) => s.end('hi')).listen(${PORT}, process.argv[1], () => console.log('up'))`;
const PROBE = `const s = require('node:net').connect(${PORT}, process.argv[1]);
s.setTimeout(700, () => { console.log('timeout'); process.exit(0); });
s.on('data', (d) => { console.log(String(d)); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });`;

let network: NetnsNetwork | null = null;
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  network?.close();
});

function run(command: [string, string[]]): ChildProcess {
  const c = spawn(command[0], command[1], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  return c;
}

/** Output of a probe connecting from node `from` (or the host) to node `to`'s server. */
function probe(n: NetnsNetwork, from: number | 'host', to: number): Promise<string> {
  const args = ['-e', PROBE, n.node(to).address];
  const c = run(
    from === 'host' ? [process.execPath, args] : n.command(from, process.execPath, args),
  );
  return new Promise((resolve) => {
    let out = '';
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    c.once('exit', () => resolve(out.trim()));
  });
}

async function startServer(n: NetnsNetwork, id: number): Promise<ChildProcess> {
  const c = run(n.command(id, process.execPath, ['-e', SERVER, n.node(id).address]));
  await new Promise<void>((resolve, reject) => {
    c.stdout!.once('data', () => resolve());
    c.once('exit', (code) => reject(new Error(`server in node ${id} exited with ${code}`)));
  });
  return c;
}

describe.skipIf(!support.ok)('NetnsNetwork', () => {
  it('connects nodes, blocks one way, heals, and removes everything on close', async () => {
    const n = NetnsNetwork.create(3);
    network = n;
    expect(testNamespaces()).toEqual(expect.arrayContaining(n.namespaces()));
    expect(hostLinkExists(n.hostInterface)).toBe(true);
    const server1 = await startServer(n, 1);
    const server2 = await startServer(n, 2);

    expect(await probe(n, 'host', 1)).toBe('hi');
    expect(await probe(n, 2, 1)).toBe('hi');
    expect(await probe(n, 3, 1)).toBe('hi');

    // 2 -> 1 blocked: 2 cannot connect to 1; 3 and the host still can.
    n.block(2, 1);
    expect(n.blocks()).toEqual(['2->1']);
    expect(await probe(n, 2, 1)).not.toBe('hi');
    expect(await probe(n, 3, 1)).toBe('hi');
    expect(await probe(n, 'host', 1)).toBe('hi');
    // A connection from 1 to 2 needs 2's answers back, which are dropped too: TCP cannot
    // work over a one-way link, and the block is exactly one route in node 2.
    expect(await probe(n, 1, 2)).not.toBe('hi');

    n.isolate(3);
    expect(await probe(n, 3, 1)).not.toBe('hi');
    expect(await probe(n, 'host', 1)).toBe('hi');

    n.heal();
    expect(n.blocks()).toEqual([]);
    expect(await probe(n, 2, 1)).toBe('hi');
    expect(await probe(n, 3, 2)).toBe('hi');

    const exited = [server1, server2].map(
      (c) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r()))),
    );
    n.close();
    network = null;
    // The servers still running inside were killed; nothing of the network is left.
    await Promise.all(exited);
    for (const ns of n.namespaces()) expect(testNamespaces()).not.toContain(ns);
    expect(hostLinkExists(n.hostInterface)).toBe(false);
  }, 30_000);
});
