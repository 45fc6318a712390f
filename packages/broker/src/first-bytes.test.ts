import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FirstBytesRouter } from './first-bytes.js';

const PEER = Buffer.from([0xf5, 0x53]);

describe('FirstBytesRouter', () => {
  let server: Server | null = null;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    sockets.length = 0;
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = null;
  });

  async function listen(router: FirstBytesRouter): Promise<number> {
    server = createServer((s) => router.accept(s));
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    const a = server.address();
    if (a === null || typeof a === 'string') throw new Error('no address');
    return a.port;
  }

  function dial(port: number): Socket {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    return s;
  }

  it('hands a peer its first bytes and a client every byte it sent, in order', async () => {
    const peerBytes: Buffer[] = [];
    const clientBytes: Buffer[] = [];
    let peerSeen!: () => void;
    let clientSeen!: () => void;
    const peerDone = new Promise<void>((r) => (peerSeen = r));
    const clientDone = new Promise<void>((r) => (clientSeen = r));
    const router = new FirstBytesRouter({
      isPeer: (b) => b[0] === 0xf5,
      onPeer: (s, first) => {
        peerBytes.push(first);
        sockets.push(s);
        peerSeen();
      },
      onClient: (s) => {
        sockets.push(s);
        // Held a while (as a starting broker holds early sockets): nothing may be lost.
        setTimeout(() => {
          s.on('data', (c: Buffer) => {
            clientBytes.push(c);
            if (Buffer.concat(clientBytes).length >= 6) clientSeen();
          });
          s.resume();
        }, 50);
      },
      timeoutMs: 5_000,
    });
    const port = await listen(router);
    dial(port).write(PEER);
    const c = dial(port);
    c.write(Buffer.from([0, 0, 0]));
    setTimeout(() => c.write(Buffer.from([1, 2, 3])), 20);
    await Promise.all([peerDone, clientDone]);
    expect(Buffer.concat(peerBytes)).toEqual(PEER);
    expect(Buffer.concat(clientBytes)).toEqual(Buffer.from([0, 0, 0, 1, 2, 3]));
    expect(router.size).toBe(0);
  });

  it('closes a socket that sends nothing within the timeout', async () => {
    const router = new FirstBytesRouter({
      isPeer: () => false,
      onPeer: () => {},
      onClient: () => {},
      timeoutMs: 50,
    });
    const port = await listen(router);
    const s = dial(port);
    await new Promise<void>((r) => s.on('close', () => r()));
    expect(router.size).toBe(0);
  });
});
