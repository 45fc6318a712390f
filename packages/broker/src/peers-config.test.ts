// The cluster keys of the broker configuration: nodeId and peers, from flags, environment and
// file, and the errors that name the key and the allowed form.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@streambus/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
import { formatPeers, PEERS_MAX } from './peers-config.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-peers-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function message(sources: Parameters<typeof loadConfig>[0]): string {
  try {
    loadConfig(sources);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(ErrorCode.INVALID_CONFIG);
    return (err as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

const three = '1@127.0.0.1:7070,2@127.0.0.1:7080,3@[::1]:7090';
const threePeers = [
  { id: 1, host: '127.0.0.1', port: 7070 },
  { id: 2, host: '127.0.0.1', port: 7080 },
  { id: 3, host: '::1', port: 7090 },
];

describe('nodeId and peers', () => {
  it('default to node 1 in a cluster of one', () => {
    const c = loadConfig({});
    expect(c.nodeId).toBe(1);
    expect(c.peers).toEqual([]);
  });

  it('come from flags, environment and file, flags first', () => {
    expect(loadConfig({ flags: { 'node-id': '2', peers: three } })).toMatchObject({
      nodeId: 2,
      peers: threePeers,
    });
    expect(
      loadConfig({
        env: { STREAMBUS_NODE_ID: '3', STREAMBUS_PEERS: ` ${three.replaceAll(',', ' , ')} ` },
      }),
    ).toMatchObject({ nodeId: 3, peers: threePeers });
    const yaml = join(dir, 'c.yaml');
    writeFileSync(
      yaml,
      'nodeId: 2\npeers:\n  - 1@127.0.0.1:7070\n  - { id: 2, host: 127.0.0.1, port: 7080 }\n  - "3@[::1]:7090"\n',
    );
    expect(loadConfig({ file: yaml })).toMatchObject({ nodeId: 2, peers: threePeers });
    const json = join(dir, 'c.json');
    writeFileSync(json, JSON.stringify({ peers: three }));
    expect(loadConfig({ file: json, flags: { peers: '5@h:1' } }).peers).toEqual([
      { id: 5, host: 'h', port: 1 },
    ]);
    // An empty variable is the default: none.
    expect(loadConfig({ env: { STREAMBUS_PEERS: '' } }).peers).toEqual([]);
    expect(formatPeers(threePeers)).toBe(three);
  });

  it('refuse a node id below 1', () => {
    expect(message({ flags: { 'node-id': '0' } })).toBe(
      "nodeId: expected an integer in 1..2147483647, got '0'",
    );
    expect(message({ env: { STREAMBUS_NODE_ID: 'one' } })).toMatch(/^nodeId: expected an integer/);
  });

  it('name the key and the allowed form for a malformed list', () => {
    const form =
      'expected ID@HOST:PORT[,ID@HOST:PORT...] (such as 1@127.0.0.1:7070,2@127.0.0.1:7080)';
    expect(message({ flags: { peers: '127.0.0.1:7070' } })).toBe(
      `peers: ${form}, got '127.0.0.1:7070'`,
    );
    expect(message({ env: { STREAMBUS_PEERS: '1@h:1,,2@h:2' } })).toBe(
      `peers: entry 2 of '1@h:1,,2@h:2' is empty; ${form}`,
    );
    expect(message({ flags: { peers: '1@h:0' } })).toBe(
      "peers '1@h:0': port must be in 1..65535, got 0",
    );
    expect(message({ flags: { peers: '1@h:65536' } })).toBe(
      "peers '1@h:65536': port must be in 1..65535, got 65536",
    );
    expect(message({ flags: { peers: '0@h:1' } })).toBe(
      "peers '0@h:1': node id must be an integer in 1..2147483647, got 0",
    );
    expect(message({ flags: { peers: '1@:7070' } })).toMatch(/^peers: expected ID@HOST:PORT/);
    const yaml = join(dir, 'bad.yaml');
    writeFileSync(yaml, 'peers:\n  - { id: 1, host: h, port: 1, rack: a }\n  - 7\n');
    expect(message({ file: yaml })).toBe('peers[0]: unknown key rack (expected id, host, port)');
    writeFileSync(yaml, 'peers:\n  - 1@h:1\n  - 7\n');
    expect(message({ file: yaml })).toBe(
      'peers[1]: expected ID@HOST:PORT or { id, host, port }, got 7',
    );
    writeFileSync(yaml, 'peers: 7\n');
    expect(message({ file: yaml })).toBe(`peers: ${form}, got 7`);
  });

  it('refuse duplicate ids, duplicate addresses and too many voters', () => {
    expect(message({ flags: { peers: '1@a:1,2@b:2,1@c:3' } })).toBe(
      'peers: node id 1 is named twice (1@a:1 and 1@c:3); each voter has its own id',
    );
    expect(message({ flags: { peers: '1@a:1,2@A:1' } })).toBe(
      'peers: a:1 is named for node 1 and node 2; each voter has its own address',
    );
    const many = Array.from({ length: PEERS_MAX + 1 }, (_, i) => `${i + 1}@h:${7000 + i}`);
    expect(message({ flags: { peers: many.join(',') } })).toBe(
      `peers: at most ${PEERS_MAX} controller voters, got ${PEERS_MAX + 1}`,
    );
    expect(loadConfig({ flags: { peers: many.slice(0, PEERS_MAX).join(',') } }).peers).toHaveLength(
      PEERS_MAX,
    );
  });
});
