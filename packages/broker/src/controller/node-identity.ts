// The data directory's identity file (issue 9: "A broker whose data directory belongs to another
// cluster or node id refuses to start, naming the mismatch"), read and written through the
// storage package's FileSystem seam so tests run on MemoryFileSystem. It records which cluster
// and which node id the directory's data belongs to; it does not hold any other metadata (that is
// the metadata log's job) and is not yet read by the broker's start-up (not wired yet).
//
// File `<dataDir>/node-identity.properties`, UTF-8 text, exactly these four lines in this order:
//   version=1
//   cluster.id=<cluster id: 1..64 of [A-Za-z0-9_-]>
//   node.id=<0..2^31-1, decimal, no leading zeros>
//   checksum=<crc32c of the three lines above, each with its "\n", 8 lowercase hex digits>
// followed by "\n". Written atomically (temporary file, fsync, rename, fsync of the directory), so
// after a crash it holds the old identity or the new one. Anything else is CORRUPT_DATA, naming
// the path; a valid file naming another cluster or node is NODE_IDENTITY_MISMATCH, naming both.
import { crc32c, ErrorCode, StreamBusError } from '@streambus/protocol';
import { type FileSystem, joinPath, writeFileAtomic } from '@streambus/storage';
import { readOptional } from './metadata-log.js';
import { BROKER_ID_MAX, isValidClusterId } from './metadata-records.js';

export const NODE_IDENTITY_FILE = 'node-identity.properties';
export const NODE_IDENTITY_VERSION = 1;

export interface NodeIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
}

const NODE_ID_RE = /^(0|[1-9][0-9]{0,9})$/;
const CHECKSUM_RE = /^[0-9a-f]{8}$/;
const utf8 = new TextEncoder();

function checkIdentity(identity: NodeIdentity): void {
  if (!isValidClusterId(identity.clusterId)) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `cluster id '${identity.clusterId}' must be 1..64 of [A-Za-z0-9_-]`,
    );
  }
  if (
    !Number.isSafeInteger(identity.nodeId) ||
    identity.nodeId < 0 ||
    identity.nodeId > BROKER_ID_MAX
  ) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `node id ${identity.nodeId} is out of range`,
    );
  }
}

function body(identity: NodeIdentity): string {
  return `version=${NODE_IDENTITY_VERSION}\ncluster.id=${identity.clusterId}\nnode.id=${identity.nodeId}\n`;
}

function checksumHex(text: string): string {
  return crc32c(utf8.encode(text)).toString(16).padStart(8, '0');
}

export function encodeNodeIdentity(identity: NodeIdentity): Uint8Array {
  checkIdentity(identity);
  const text = body(identity);
  return utf8.encode(`${text}checksum=${checksumHex(text)}\n`);
}

/** Parses the file's bytes; CORRUPT_DATA naming `path` and the first problem. */
export function decodeNodeIdentity(bytes: Uint8Array, path: string): NodeIdentity {
  const corrupt = (why: string) =>
    new StreamBusError(ErrorCode.CORRUPT_DATA, `node identity file ${path} is corrupt: ${why}`);
  if (bytes.length > 512) throw corrupt(`${bytes.length} bytes is too long`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw corrupt('not UTF-8');
  }
  const lines = text.split('\n');
  if (lines.length !== 5 || lines[4] !== '') throw corrupt('expected exactly four lines');
  const field = (i: number, key: string, valid: (v: string) => boolean): string => {
    const line = lines[i]!;
    const prefix = `${key}=`;
    const value = line.startsWith(prefix) ? line.slice(prefix.length) : null;
    if (value === null || !valid(value)) throw corrupt(`line ${i + 1} is not ${key}=<valid>`);
    return value;
  };
  const version = field(0, 'version', (v) => /^[0-9]{1,3}$/.test(v));
  if (Number(version) !== NODE_IDENTITY_VERSION) {
    throw corrupt(`version ${version} is not supported (expected ${NODE_IDENTITY_VERSION})`);
  }
  const clusterId = field(1, 'cluster.id', isValidClusterId);
  const nodeIdText = field(2, 'node.id', (v) => NODE_ID_RE.test(v));
  const stored = field(3, 'checksum', (v) => CHECKSUM_RE.test(v));
  const computed = checksumHex(`${lines.slice(0, 3).join('\n')}\n`);
  if (stored !== computed) throw corrupt(`checksum ${stored} does not match ${computed}`);
  const nodeId = Number(nodeIdText);
  if (nodeId > BROKER_ID_MAX) throw corrupt(`node id ${nodeId} is out of range`);
  return { clusterId, nodeId };
}

export function nodeIdentityPath(dataDir: string): string {
  return joinPath(dataDir, NODE_IDENTITY_FILE);
}

/** The directory's identity, or null when it has none yet (a fresh directory). */
export async function readNodeIdentity(
  fs: FileSystem,
  dataDir: string,
): Promise<NodeIdentity | null> {
  const path = nodeIdentityPath(dataDir);
  return readOptional(fs, path, (bytes) => decodeNodeIdentity(bytes, path));
}

export async function writeNodeIdentity(
  fs: FileSystem,
  dataDir: string,
  identity: NodeIdentity,
): Promise<void> {
  const bytes = encodeNodeIdentity(identity);
  await fs.mkdir(dataDir);
  await writeFileAtomic(fs, nodeIdentityPath(dataDir), bytes);
}

/**
 * Throws NODE_IDENTITY_MISMATCH when `found` is not `expected`; a null `expected.clusterId`
 * (a broker that does not know its cluster yet) checks the node id only.
 */
export function verifyNodeIdentity(
  found: NodeIdentity,
  expected: { readonly clusterId: string | null; readonly nodeId: number },
  dataDir: string,
): void {
  const clusterOk = expected.clusterId === null || expected.clusterId === found.clusterId;
  if (clusterOk && expected.nodeId === found.nodeId) return;
  const parts: string[] = [];
  if (!clusterOk) parts.push(`cluster ${found.clusterId}, not ${expected.clusterId}`);
  if (expected.nodeId !== found.nodeId) parts.push(`node ${found.nodeId}, not ${expected.nodeId}`);
  throw new StreamBusError(
    ErrorCode.NODE_IDENTITY_MISMATCH,
    `data directory ${dataDir} belongs to ${parts.join(' and ')}: refusing to start (use the data directory of that node, or an empty one)`,
  );
}

/**
 * Start-up check: verifies the directory's identity against `expected`, or, in a fresh
 * directory, records `expected` (which then needs a cluster id). Returns what the directory holds.
 */
export async function ensureNodeIdentity(
  fs: FileSystem,
  dataDir: string,
  expected: { readonly clusterId: string | null; readonly nodeId: number },
): Promise<NodeIdentity | null> {
  const found = await readNodeIdentity(fs, dataDir);
  if (found !== null) {
    verifyNodeIdentity(found, expected, dataDir);
    return found;
  }
  if (expected.clusterId === null) return null;
  const identity = { clusterId: expected.clusterId, nodeId: expected.nodeId };
  await writeNodeIdentity(fs, dataDir, identity);
  return identity;
}

/** What `bindNodeIdentity` needs of the controller node (ControllerNode has it). */
export interface ClusterIdSource {
  readonly state: { readonly clusterId: string | null };
  onApplied(listener: (state: { readonly clusterId: string | null }) => void): () => void;
}

/**
 * Start-up's second identity check (issue 9): once the metadata log has a cluster id (at once
 * when the log already holds one, else when the bootstrap record or a leader's snapshot is
 * applied), records it in a fresh data directory or refuses a directory of another cluster or
 * node with NODE_IDENTITY_MISMATCH, naming both. Call `ensureNodeIdentity` with a null cluster
 * id before opening anything, so a wrong node id is refused before the log is even read.
 */
export function bindNodeIdentity(
  source: ClusterIdSource,
  fs: FileSystem,
  dataDir: string,
  nodeId: number,
): Promise<NodeIdentity> {
  const check = async (clusterId: string) => {
    const identity = await ensureNodeIdentity(fs, dataDir, { clusterId, nodeId });
    return identity ?? { clusterId, nodeId };
  };
  const known = source.state.clusterId;
  if (known !== null) return check(known);
  return new Promise<NodeIdentity>((resolve, reject) => {
    const off = source.onApplied((state) => {
      if (state.clusterId === null) return;
      off();
      check(state.clusterId).then(resolve, reject);
    });
  });
}
