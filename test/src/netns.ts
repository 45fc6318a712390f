// Linux network namespaces for multi-process partition tests (issue 9), used when the test runs
// as root and `ip netns` works; otherwise the tests fall back to link-proxy.ts.
//
// Topology, all created by the test and removed by `close()`:
//   <ns>-br   a namespace holding one bridge `br0`
//   <ns>-nI   one namespace per node I, with veth `<tag>aI` (address 10.237.X.I/24) whose peer
//             `<tag>bI` is a port of br0
//   host      veth `<tag>h` (10.237.X.254/24) whose peer `<tag>bh` is a port of br0, so the test
//             process itself reaches every node (clients are never partitioned)
// X is a /24 no host route or address uses. Partitions are blackhole routes inside a node's
// namespace (`ip route add blackhole 10.237.X.J/32`): every packet from I to J is dropped, the
// other way is untouched, which is a one-way partition; both ways is two of them. Only iproute2
// is needed (no nftables); `netnsSupport()` says why not when it is missing.
//
// Cleanup: `close()` kills every process still in the namespaces (`ip netns pids`), deletes the
// namespaces and the host veth, and checks they are gone. Namespace names carry the creating
// process id; a later run removes leftovers whose creator is dead, and a process 'exit' hook
// removes this process's own.
import { execFileSync, spawnSync } from 'node:child_process';

const PREFIX = 'sbtest';
const LINK_UP_WAIT_MS = 5_000;

export interface NetnsNode {
  readonly id: number;
  readonly ns: string;
  readonly address: string;
}

function ip(args: readonly string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryIp(args: readonly string[]): boolean {
  return spawnSync('ip', args, { stdio: 'ignore' }).status === 0;
}

function inNs(ns: string, args: readonly string[]): string {
  return ip(['netns', 'exec', ns, 'ip', ...args]);
}

/** Namespaces named by this module: `sbtest-<pid>-<seq>-<role>`. */
function ownNamespaces(): Array<{ name: string; pid: number }> {
  let out = '';
  try {
    out = ip(['netns', 'list']);
  } catch {
    return [];
  }
  const found: Array<{ name: string; pid: number }> = [];
  for (const line of out.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-(\\d+)-\\d+-`).exec(name);
    if (m) found.push({ name, pid: Number(m[1]) });
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills every process in `ns` and deletes it (best effort; returns whether it is gone). */
function removeNamespace(ns: string): boolean {
  try {
    for (const pid of ip(['netns', 'pids', ns]).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  } catch {
    // The namespace is gone already.
  }
  tryIp(['netns', 'delete', ns]);
  return !ownNamespaces().some((n) => n.name === ns);
}

/** Removes namespaces left by earlier test processes that died without cleaning up. */
function sweepLeftovers(): void {
  for (const n of ownNamespaces()) if (!alive(n.pid)) removeNamespace(n.name);
}

let cachedSupport: { ok: true } | { ok: false; reason: string } | null = null;

/**
 * Whether this machine can run the netns topology: root, iproute2 (`ip`), network namespaces and
 * bridges. The reason names what is missing (a Debian package where one would help).
 */
export function netnsSupport(): { ok: true } | { ok: false; reason: string } {
  if (cachedSupport) return cachedSupport;
  const check = (): { ok: true } | { ok: false; reason: string } => {
    if (process.platform !== 'linux') return { ok: false, reason: 'not Linux' };
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      return { ok: false, reason: 'not root (network namespaces need CAP_SYS_ADMIN)' };
    }
    if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).status !== 0) {
      return { ok: false, reason: "the 'ip' command is missing (Debian package iproute2)" };
    }
    const probe = `${PREFIX}-${process.pid}-0-probe`;
    try {
      ip(['netns', 'add', probe]);
      inNs(probe, ['link', 'add', 'br0', 'type', 'bridge']);
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: `ip netns or bridges do not work here: ${String(err)}` };
    } finally {
      removeNamespace(probe);
    }
  };
  cachedSupport = check();
  return cachedSupport;
}

const live = new Set<NetnsNetwork>();
let exitHook = false;
let seq = 0;

function pickSubnet(): number {
  const used = `${ip(['-4', 'addr'])}\n${ip(['-4', 'route'])}`;
  for (let tries = 0; tries < 256; tries++) {
    const x = Math.floor(Math.random() * 250) + 1;
    if (!used.includes(`10.237.${x}.`)) return x;
  }
  throw new Error('no free 10.237.X.0/24 subnet for the test network');
}

export class NetnsNetwork {
  readonly nodes: NetnsNode[] = [];
  /** The host's own address on the test network (where the test process connects from). */
  readonly hostAddress: string;
  private readonly bridgeNs: string;
  private readonly hostVeth: string;
  private readonly blocked = new Set<string>();
  private closed = false;

  private constructor(
    private readonly base: string,
    private readonly tag: string,
    private readonly subnet: number,
  ) {
    this.bridgeNs = `${base}-br`;
    this.hostVeth = `${tag}h`;
    this.hostAddress = `10.237.${subnet}.254`;
  }

  /** Creates the bridge, `count` node namespaces (ids 1..count) and the host's link. */
  static create(count: number): NetnsNetwork {
    const support = netnsSupport();
    if (!support.ok) throw new Error(`network namespaces unavailable: ${support.reason}`);
    if (!(count >= 1 && count <= 200)) throw new RangeError(`node count ${count} not in 1..200`);
    sweepLeftovers();
    seq++;
    // Interface names are at most 15 bytes: a short tag unique to this process and network.
    const tag = `sb${(process.pid % 46656).toString(36)}${seq.toString(36)}`;
    const net = new NetnsNetwork(`${PREFIX}-${process.pid}-${seq}`, tag, pickSubnet());
    live.add(net);
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const n of live) n.close();
      });
    }
    try {
      net.build(count);
    } catch (err) {
      net.close();
      throw err;
    }
    return net;
  }

  private build(count: number): void {
    const br = this.bridgeNs;
    ip(['netns', 'add', br]);
    inNs(br, ['link', 'set', 'lo', 'up']);
    inNs(br, ['link', 'add', 'br0', 'type', 'bridge']);
    inNs(br, ['link', 'set', 'br0', 'up']);
    for (let id = 1; id <= count; id++) {
      const ns = `${this.base}-n${id}`;
      const a = `${this.tag}a${id}`;
      const b = `${this.tag}b${id}`;
      const address = `10.237.${this.subnet}.${id}`;
      ip(['netns', 'add', ns]);
      this.nodes.push({ id, ns, address });
      ip(['link', 'add', a, 'netns', ns, 'type', 'veth', 'peer', 'name', b, 'netns', br]);
      inNs(ns, ['link', 'set', 'lo', 'up']);
      inNs(ns, ['addr', 'add', `${address}/24`, 'dev', a]);
      inNs(ns, ['link', 'set', a, 'up']);
      inNs(br, ['link', 'set', b, 'master', 'br0', 'up']);
    }
    ip([
      'link',
      'add',
      this.hostVeth,
      'type',
      'veth',
      'peer',
      'name',
      `${this.tag}bh`,
      'netns',
      br,
    ]);
    ip(['addr', 'add', `${this.hostAddress}/24`, 'dev', this.hostVeth]);
    ip(['link', 'set', this.hostVeth, 'up']);
    inNs(br, ['link', 'set', `${this.tag}bh`, 'master', 'br0', 'up']);
    this.waitLinksUp(count);
  }

  /**
   * Waits (up to LINK_UP_WAIT_MS) until every link of the topology reports operstate UP. The
   * kernel brings a veth's carrier, and so a bridge port's forwarding state, up asynchronously
   * (its link-watch events can lag by up to a second): a connection made before that loses its
   * first ARP request, which is resent only a second later. Seen once as a first probe timing
   * out under the full suite's load.
   */
  private waitLinksUp(count: number): void {
    const want: Array<[string | null, string]> = [
      [null, this.hostVeth],
      [this.bridgeNs, 'br0'],
      [this.bridgeNs, `${this.tag}bh`],
    ];
    for (let id = 1; id <= count; id++) {
      want.push([this.node(id).ns, `${this.tag}a${id}`], [this.bridgeNs, `${this.tag}b${id}`]);
    }
    const deadline = Date.now() + LINK_UP_WAIT_MS;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      const down = want.filter(([ns, dev]) => {
        const args = ['-o', 'link', 'show', 'dev', dev];
        return !/\bstate UP\b/.test(ns === null ? ip(args) : inNs(ns, args));
      });
      if (down.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `test network links not up after ${LINK_UP_WAIT_MS} ms: ${down.map(([, d]) => d).join(', ')}`,
        );
      }
      Atomics.wait(pause, 0, 0, 20);
    }
  }

  node(id: number): NetnsNode {
    const n = this.nodes[id - 1];
    if (!n) throw new Error(`no node ${id} in the test network`);
    return n;
  }

  /** `[command, args]` that run `command args` inside node `id`'s namespace (spawn them). */
  command(id: number, command: string, args: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.node(id).ns, command, ...args]];
  }

  /** Drops every packet from `from` to `to` (one way). Idempotent. */
  block(from: number, to: number): void {
    const key = `${from}->${to}`;
    if (this.blocked.has(key)) return;
    inNs(this.node(from).ns, ['route', 'add', 'blackhole', `${this.node(to).address}/32`]);
    this.blocked.add(key);
  }

  unblock(from: number, to: number): void {
    const key = `${from}->${to}`;
    if (!this.blocked.has(key)) return;
    inNs(this.node(from).ns, ['route', 'del', 'blackhole', `${this.node(to).address}/32`]);
    this.blocked.delete(key);
  }

  /** Cuts `id` from every other node, both ways (the host still reaches it). */
  isolate(id: number): void {
    for (const n of this.nodes) {
      if (n.id === id) continue;
      this.block(id, n.id);
      this.block(n.id, id);
    }
  }

  /** Removes every partition. */
  heal(): void {
    for (const key of [...this.blocked]) {
      const [from, to] = key.split('->').map(Number) as [number, number];
      this.unblock(from, to);
    }
  }

  /** The one-way cuts in force, as "from->to". */
  blocks(): string[] {
    return [...this.blocked].sort();
  }

  /** Namespace names this network created (for tests of the cleanup). */
  namespaces(): string[] {
    return [this.bridgeNs, ...this.nodes.map((n) => n.ns)];
  }

  get hostInterface(): string {
    return this.hostVeth;
  }

  /**
   * Kills what still runs inside, deletes every namespace and the host veth; throws if any is
   * left (after trying them all). Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    const left: string[] = [];
    for (const ns of [...this.nodes.map((n) => n.ns), this.bridgeNs]) {
      if (!removeNamespace(ns)) left.push(ns);
    }
    // Deleting the bridge namespace destroys the host veth's peer, and so the pair, but the
    // kernel does it asynchronously: delete it here so the name is gone when close returns.
    if (hostLinkExists(this.hostVeth)) tryIp(['link', 'delete', this.hostVeth]);
    if (hostLinkExists(this.hostVeth)) left.push(`link ${this.hostVeth}`);
    if (left.length > 0) throw new Error(`test network not fully removed: ${left.join(', ')}`);
  }
}

export function hostLinkExists(name: string): boolean {
  return tryIp(['link', 'show', 'dev', name]);
}

/** Namespace names created by this module that exist now (any process). */
export function testNamespaces(): string[] {
  return ownNamespaces().map((n) => n.name);
}
