// A TCP proxy for ONE directed broker link (issue 9 multi-process tests, when network namespaces
// are not available): broker `from` dials this proxy instead of broker `to`, and the test cuts
// and heals the link, each direction on its own.
//
// A cut direction stops forwarding: the proxy stops reading from that side, so the bytes stay in
// the sender's socket buffers (then its own bounded queue), exactly as when a network drops every
// packet of a TCP connection one way and the sender keeps retransmitting. Nothing is dropped
// mid-stream (that would corrupt the framing, which no real network does to TCP); `reset()` breaks
// the connections instead, like a link that went down. Healing resumes the held bytes in order.
// Connections accepted while cut are connected upstream at once but carry nothing the cut way.
//
// Bounded: at most `connectionsMax` connections (more are refused by closing them) and, per
// direction, at most one read chunk held while cut (reading stops).
import net from 'node:net';

export type LinkDirection = 'forward' | 'backward';

export interface LinkProxyOptions {
  /** Where the proxy forwards to (the real listener of broker `to`). */
  readonly target: { readonly host: string; readonly port: number };
  /** The address the proxy listens on; port 0 = a free one. */
  readonly listen?: { readonly host: string; readonly port: number };
  readonly connectionsMax?: number;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Chunks read while their direction was cut (at most one each: reading stops at once). */
  readonly held: Record<LinkDirection, Buffer[]>;
}

export class LinkProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<Pair>();
  private readonly cuts: Record<LinkDirection, boolean> = { forward: false, backward: false };
  private readonly connectionsMax: number;
  /** Bytes forwarded so far, per direction (forward = from the dialer to the target). */
  readonly bytes: Record<LinkDirection, number> = { forward: 0, backward: 0 };
  /** Connections accepted so far. */
  accepted = 0;
  port = 0;

  constructor(private readonly options: LinkProxyOptions) {
    this.connectionsMax = options.connectionsMax ?? 64;
  }

  get host(): string {
    return this.options.listen?.host ?? '127.0.0.1';
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Open connections through the proxy. */
  get connections(): number {
    return this.pairs.size;
  }

  isCut(direction: LinkDirection): boolean {
    return this.cuts[direction];
  }

  async start(): Promise<void> {
    if (this.server) throw new Error('link proxy already started');
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listen?.port ?? 0, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Stops forwarding `directions` (default both) until `heal`. */
  cut(...directions: LinkDirection[]): void {
    for (const d of directions.length > 0 ? directions : (['forward', 'backward'] as const)) {
      this.cuts[d] = true;
      for (const p of this.pairs) this.source(p, d).pause();
    }
  }

  /** Resumes `directions` (default both), first delivering what was held. */
  heal(...directions: LinkDirection[]): void {
    for (const d of directions.length > 0 ? directions : (['forward', 'backward'] as const)) {
      this.cuts[d] = false;
      for (const p of this.pairs) {
        for (const chunk of p.held[d].splice(0)) this.forward(p, d, chunk);
        this.source(p, d).resume();
      }
    }
  }

  /** Breaks every open connection (both ends see a reset); the listener stays. */
  reset(): void {
    for (const p of [...this.pairs]) this.drop(p);
  }

  async close(): Promise<void> {
    this.reset();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private source(p: Pair, d: LinkDirection): net.Socket {
    return d === 'forward' ? p.client : p.upstream;
  }

  private accept(client: net.Socket): void {
    if (this.pairs.size >= this.connectionsMax) {
      client.destroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect(this.options.target.port, this.options.target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const p: Pair = { client, upstream, held: { forward: [], backward: [] } };
    this.pairs.add(p);
    const drop = (): void => this.drop(p);
    for (const s of [client, upstream]) {
      s.on('error', drop);
      s.on('close', drop);
    }
    client.on('data', (chunk: Buffer) => this.onData(p, 'forward', chunk));
    upstream.on('data', (chunk: Buffer) => this.onData(p, 'backward', chunk));
    if (this.cuts.forward) client.pause();
    if (this.cuts.backward) upstream.pause();
  }

  private onData(p: Pair, d: LinkDirection, chunk: Buffer): void {
    if (this.cuts[d]) {
      p.held[d].push(chunk);
      this.source(p, d).pause();
      return;
    }
    this.forward(p, d, chunk);
  }

  private forward(p: Pair, d: LinkDirection, chunk: Buffer): void {
    const src = this.source(p, d);
    const dst = d === 'forward' ? p.upstream : p.client;
    this.bytes[d] += chunk.length;
    if (!dst.write(chunk)) {
      src.pause();
      dst.once('drain', () => {
        if (!this.cuts[d]) src.resume();
      });
    }
  }

  private drop(p: Pair): void {
    if (!this.pairs.delete(p)) return;
    p.client.destroy();
    p.upstream.destroy();
  }
}

/**
 * The proxies of a cluster: one per directed pair (from, to) of brokers, each forwarding to the
 * real listener of `to`. Broker `from` is given `proxy(from, to).address` for peer `to`.
 */
export class LinkProxyMesh {
  private readonly proxies = new Map<string, LinkProxy>();

  private static key(from: number, to: number): string {
    return `${from}->${to}`;
  }

  /** Starts a proxy for every ordered pair of `targets` (node id -> real listener). */
  static async start(
    targets: ReadonlyMap<number, { host: string; port: number }>,
  ): Promise<LinkProxyMesh> {
    const mesh = new LinkProxyMesh();
    try {
      for (const [from] of targets) {
        for (const [to, target] of targets) {
          if (from === to) continue;
          const p = new LinkProxy({ target });
          await p.start();
          mesh.proxies.set(LinkProxyMesh.key(from, to), p);
        }
      }
    } catch (err) {
      await mesh.close();
      throw err;
    }
    return mesh;
  }

  proxy(from: number, to: number): LinkProxy {
    const p = this.proxies.get(LinkProxyMesh.key(from, to));
    if (!p) throw new Error(`no link proxy ${from}->${to}`);
    return p;
  }

  /**
   * Stops traffic from `from` to `to` on both links between them (from's connections carry it
   * forward, to's connections backward); the other way keeps flowing.
   */
  cutOneWay(from: number, to: number): void {
    this.proxy(from, to).cut('forward');
    this.proxy(to, from).cut('backward');
  }

  /** Stops traffic between `a` and `b` both ways. */
  cutBoth(a: number, b: number): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }

  /** Heals every link both ways; held bytes are delivered in order. */
  healAll(): void {
    for (const p of this.proxies.values()) p.heal();
  }

  all(): LinkProxy[] {
    return [...this.proxies.values()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    this.proxies.clear();
  }
}
