// The directed link proxy on its own: bytes flow both ways, a cut direction stops its bytes (and
// only its), healing delivers what was held in order, reset breaks connections, and close leaves
// no socket or listener behind.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkProxy, LinkProxyMesh } from './link-proxy.js';

/** A server that answers every chunk with `ack:<chunk>` and records what it received. */
async function echoServer(): Promise<{ server: net.Server; port: number; received: () => string }> {
  let received = '';
  const server = net.createServer((s) => {
    s.on('data', (d: Buffer) => {
      received += d.toString();
      s.write(`ack:${d.toString()}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, received: () => received };
}

function connect(port: number): Promise<{ socket: net.Socket; got: () => string }> {
  return new Promise((resolve, reject) => {
    let got = '';
    const socket = net.connect(port, '127.0.0.1', () => resolve({ socket, got: () => got }));
    socket.on('data', (d: Buffer) => {
      got += d.toString();
    });
    socket.once('error', reject);
  });
}

async function until(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const echo = await echoServer();
  cleanups.push(() => new Promise<void>((r) => echo.server.close(() => r())));
  const proxy = new LinkProxy({ target: { host: '127.0.0.1', port: echo.port } });
  await proxy.start();
  cleanups.push(() => proxy.close());
  const conn = await connect(proxy.port);
  cleanups.push(() => {
    conn.socket.destroy();
  });
  return { echo, proxy, conn };
}

describe('LinkProxy', () => {
  it('forwards both ways and counts the bytes', async () => {
    const { echo, proxy, conn } = await setup();
    conn.socket.write('hello');
    await until(() => conn.got() === 'ack:hello');
    expect(echo.received()).toBe('hello');
    expect(proxy.bytes).toEqual({ forward: 5, backward: 9 });
    expect(proxy.connections).toBe(1);
  });

  it('a forward cut stops the bytes to the target; healing delivers them in order', async () => {
    const { echo, proxy, conn } = await setup();
    proxy.cut('forward');
    conn.socket.write('one,');
    conn.socket.write('two');
    await sleep(200);
    expect(echo.received()).toBe('');
    proxy.heal('forward');
    await until(() => echo.received() === 'one,two');
    await until(() => conn.got().replace(/ack:/g, '') === 'one,two');
  });

  it('a backward cut stops only the answers', async () => {
    const { echo, proxy, conn } = await setup();
    proxy.cut('backward');
    conn.socket.write('ping');
    await until(() => echo.received() === 'ping');
    await sleep(200);
    expect(conn.got()).toBe('');
    proxy.heal();
    await until(() => conn.got() === 'ack:ping');
  });

  it('a connection made while cut carries nothing until healed', async () => {
    const { echo, proxy } = await setup();
    proxy.cut();
    const late = await connect(proxy.port);
    cleanups.push(() => {
      late.socket.destroy();
    });
    late.socket.write('late');
    await sleep(200);
    expect(echo.received()).toBe('');
    proxy.heal();
    await until(() => late.got() === 'ack:late');
  });

  it('reset breaks open connections; close leaves nothing listening', async () => {
    const { proxy, conn } = await setup();
    const closed = new Promise<void>((r) => conn.socket.once('close', () => r()));
    conn.socket.on('error', () => undefined);
    proxy.reset();
    await closed;
    expect(proxy.connections).toBe(0);
    const port = proxy.port;
    await proxy.close();
    await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('LinkProxyMesh', () => {
  it('has one proxy per directed pair, and a one-way cut stops only that way', async () => {
    const servers = [await echoServer(), await echoServer()];
    cleanups.push(async () => {
      for (const s of servers) await new Promise<void>((r) => s.server.close(() => r()));
    });
    const mesh = await LinkProxyMesh.start(
      new Map([
        [1, { host: '127.0.0.1', port: servers[0]!.port }],
        [2, { host: '127.0.0.1', port: servers[1]!.port }],
      ]),
    );
    cleanups.push(() => mesh.close());
    expect(mesh.all()).toHaveLength(2);
    // Node 1 dials 2 through proxy(1, 2); node 2 dials 1 through proxy(2, 1).
    const oneToTwo = await connect(mesh.proxy(1, 2).port);
    const twoToOne = await connect(mesh.proxy(2, 1).port);
    cleanups.push(() => {
      oneToTwo.socket.destroy();
      twoToOne.socket.destroy();
    });
    mesh.cutOneWay(1, 2);
    oneToTwo.socket.write('a');
    twoToOne.socket.write('b');
    // 2 -> 1 still flows: node 1's server got 'b'; but its answer (1 -> 2) is held.
    await until(() => servers[0]!.received() === 'b');
    await sleep(200);
    expect(servers[1]!.received()).toBe('');
    expect(twoToOne.got()).toBe('');
    mesh.healAll();
    await until(() => servers[1]!.received() === 'a' && twoToOne.got() === 'ack:b');
    await until(() => oneToTwo.got() === 'ack:a');
  });
});
