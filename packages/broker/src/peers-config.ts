// The `peers` configuration key: the initial controller voters, each a node id and the native
// listener address other brokers reach it on. Text form (flag, environment, file):
// `ID@HOST:PORT,ID@HOST:PORT,...` (IPv6 as `1@[::1]:7070`); a file may also give a list of
// such strings or of `{ id, host, port }`. Empty (the default): a cluster of one on this broker.
// Parsed and checked here only (ids in 1..2^31-1 and unique, ports in 1..65535, addresses
// unique, at most PEERS_MAX voters); what the broker does with them is the controller's.
// Pure: errors go through `fail`, which config.ts makes a ConfigError naming the key.

export interface Peer {
  readonly id: number;
  readonly host: string;
  readonly port: number;
}

/** Controller voters at most: each commit waits for a majority of them. */
export const PEERS_MAX = 9;
const NODE_ID_MAX = 2 ** 31 - 1;
const FORM = 'ID@HOST:PORT[,ID@HOST:PORT...] (such as 1@127.0.0.1:7070,2@127.0.0.1:7080)';

type Fail = (key: string, message: string) => never;

function show(raw: unknown): string {
  return typeof raw === 'string' ? `'${raw}'` : (JSON.stringify(raw) ?? String(raw));
}

export function formatPeer(p: Peer): string {
  return `${p.id}@${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`;
}

/** The text form of a peer list, as `--peers` takes it. */
export function formatPeers(peers: readonly Peer[]): string {
  return peers.map(formatPeer).join(',');
}

function checkedPeer(key: string, id: unknown, host: unknown, port: unknown, fail: Fail): Peer {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1 || id > NODE_ID_MAX) {
    fail(key, `node id must be an integer in 1..${NODE_ID_MAX}, got ${show(id)}`);
  }
  if (typeof host !== 'string' || host.length === 0 || /[\s,@]/.test(host)) {
    fail(key, `expected a host name or address, got ${show(host)}`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    fail(key, `port must be in 1..65535, got ${show(port)}`);
  }
  return { id, host, port };
}

function parseEntry(key: string, text: string, fail: Fail): Peer {
  const m = /^(\d{1,16})@(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (m === null) fail(key, `expected ${FORM}, got ${show(text)}`);
  return checkedPeer(`${key} ${show(text.trim())}`, Number(m[1]), m[2] ?? m[3], Number(m[4]), fail);
}

export function parsePeers(key: string, raw: unknown, fail: Fail): Peer[] {
  const peers: Peer[] = [];
  if (raw === null || (typeof raw === 'string' && raw.trim() === '')) return peers;
  if (typeof raw === 'string') {
    const entries = raw.split(',');
    for (const [i, e] of entries.entries()) {
      if (e.trim() === '') fail(key, `entry ${i + 1} of ${show(raw)} is empty; expected ${FORM}`);
      peers.push(parseEntry(key, e, fail));
    }
  } else if (Array.isArray(raw)) {
    for (const [i, item] of raw.entries()) {
      const k = `${key}[${i}]`;
      if (typeof item === 'string') {
        peers.push(parseEntry(k, item, fail));
      } else if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
        const o = item as Record<string, unknown>;
        const extra = Object.keys(o).filter((x) => x !== 'id' && x !== 'host' && x !== 'port');
        if (extra.length > 0) fail(k, `unknown key ${extra[0]} (expected id, host, port)`);
        peers.push(checkedPeer(k, o.id, o.host, o.port, fail));
      } else {
        fail(k, `expected ID@HOST:PORT or { id, host, port }, got ${show(item)}`);
      }
    }
  } else {
    fail(key, `expected ${FORM}, got ${show(raw)}`);
  }
  if (peers.length > PEERS_MAX) {
    fail(key, `at most ${PEERS_MAX} controller voters, got ${peers.length}`);
  }
  const byId = new Map<number, Peer>();
  const byAddress = new Map<string, Peer>();
  for (const p of peers) {
    const sameId = byId.get(p.id);
    if (sameId !== undefined) {
      fail(
        key,
        `node id ${p.id} is named twice (${formatPeer(sameId)} and ${formatPeer(p)}); each voter has its own id`,
      );
    }
    const address = `${p.host.toLowerCase()}:${p.port}`;
    const sameAddress = byAddress.get(address);
    if (sameAddress !== undefined) {
      fail(
        key,
        `${sameAddress.host}:${p.port} is named for node ${sameAddress.id} and node ${p.id}; each voter has its own address`,
      );
    }
    byId.set(p.id, p);
    byAddress.set(address, p);
  }
  return peers;
}
