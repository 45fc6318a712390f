import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import { MemoryFileSystem } from '@streambus/storage';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeNodeIdentity,
  encodeNodeIdentity,
  ensureNodeIdentity,
  NODE_IDENTITY_FILE,
  nodeIdentityPath,
  readNodeIdentity,
  writeNodeIdentity,
} from './node-identity.js';
import { expectCanonicalOrCorrupt } from './testing-arbitraries.js';

const dir = '/data';

async function rejection(p: Promise<unknown>): Promise<Error & { code?: number }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: number };
  }
  throw new Error('expected a rejection');
}

describe('node identity file', () => {
  it('has a documented, human-readable format (golden)', () => {
    const text = new TextDecoder().decode(encodeNodeIdentity({ clusterId: 'c-1', nodeId: 7 }));
    expect(text).toMatch(/^version=1\ncluster\.id=c-1\nnode\.id=7\nchecksum=[0-9a-f]{8}\n$/);
    expect(decodeNodeIdentity(new TextEncoder().encode(text), 'f')).toEqual({
      clusterId: 'c-1',
      nodeId: 7,
    });
  });

  it('is written durably: it survives a crash right after the write', async () => {
    const fs = new MemoryFileSystem({ seed: 3 });
    await writeNodeIdentity(fs, dir, { clusterId: 'abc', nodeId: 2 });
    const after = fs.crash('drop-unsynced');
    expect(await readNodeIdentity(after, dir)).toEqual({ clusterId: 'abc', nodeId: 2 });
  });

  it('records the identity in a fresh directory, then accepts the same identity', async () => {
    const fs = new MemoryFileSystem();
    expect(await readNodeIdentity(fs, dir)).toBeNull();
    expect(await ensureNodeIdentity(fs, dir, { clusterId: null, nodeId: 1 })).toBeNull();
    expect(await readNodeIdentity(fs, dir)).toBeNull();
    expect(await ensureNodeIdentity(fs, dir, { clusterId: 'abc', nodeId: 1 })).toEqual({
      clusterId: 'abc',
      nodeId: 1,
    });
    expect(await ensureNodeIdentity(fs, dir, { clusterId: 'abc', nodeId: 1 })).toEqual({
      clusterId: 'abc',
      nodeId: 1,
    });
    // A broker that does not know its cluster yet learns it from the directory.
    expect(await ensureNodeIdentity(fs, dir, { clusterId: null, nodeId: 1 })).toEqual({
      clusterId: 'abc',
      nodeId: 1,
    });
  });

  it('refuses a directory of another cluster or node, naming both ids', async () => {
    const fs = new MemoryFileSystem();
    await writeNodeIdentity(fs, dir, { clusterId: 'abc', nodeId: 1 });
    const cluster = await rejection(ensureNodeIdentity(fs, dir, { clusterId: 'xyz', nodeId: 1 }));
    expect(isStreamBusError(cluster, ErrorCode.NODE_IDENTITY_MISMATCH)).toBe(true);
    expect(cluster.message).toMatch(/\/data belongs to cluster abc, not xyz: refusing to start/);
    const node = await rejection(ensureNodeIdentity(fs, dir, { clusterId: null, nodeId: 4 }));
    expect(isStreamBusError(node, ErrorCode.NODE_IDENTITY_MISMATCH)).toBe(true);
    expect(node.message).toMatch(/belongs to node 1, not 4/);
    const both = await rejection(ensureNodeIdentity(fs, dir, { clusterId: 'xyz', nodeId: 4 }));
    expect(both.message).toMatch(/cluster abc, not xyz and node 1, not 4/);
    // Refusing changed nothing.
    expect(await readNodeIdentity(fs, dir)).toEqual({ clusterId: 'abc', nodeId: 1 });
  });

  it('reports a damaged file as CORRUPT_DATA naming the path, never as a mismatch', async () => {
    const fs = new MemoryFileSystem();
    await writeNodeIdentity(fs, dir, { clusterId: 'abc', nodeId: 1 });
    // "node.id=1" -> "node.id=3": still well formed, so only the checksum can tell.
    const bytes = await fs.readFile(nodeIdentityPath(dir));
    fs.flipBit(nodeIdentityPath(dir), bytes.indexOf('node.id=1') + 8, 1);
    const err = await rejection(ensureNodeIdentity(fs, dir, { clusterId: 'abc', nodeId: 3 }));
    expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
    expect(err.message).toContain(`/data/${NODE_IDENTITY_FILE} is corrupt: checksum`);
  });

  it('refuses to write an identity it could not read back', () => {
    expect(() => encodeNodeIdentity({ clusterId: 'a b', nodeId: 1 })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
    expect(() => encodeNodeIdentity({ clusterId: 'a', nodeId: -1 })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
  });

  it('decoder fuzz: any bytes give the identity back or CORRUPT_DATA', () => {
    const valid = encodeNodeIdentity({ clusterId: 'abc', nodeId: 12 });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
            const b = valid.slice();
            b[at % b.length]! ^= x;
            return b;
          }),
          fc.nat().map((n) => valid.subarray(0, n % valid.length)),
        ),
        (bytes) => {
          expectCanonicalOrCorrupt(bytes, (b) => decodeNodeIdentity(b, 'f'), encodeNodeIdentity);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
