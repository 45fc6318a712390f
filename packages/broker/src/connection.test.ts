// Connection in isolation (a real socket on 127.0.0.1, a scripted handler): the response write
// path. Responses finished in one event-loop turn leave in one gathered write, in request order
// whatever order they finished in; a reader that takes nothing stops the connection reading once
// its unsent responses reach outboundBytesMax, and everything is answered, in order, once it reads.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import {
  ApiKey,
  encodeRequest,
  encodeResponse,
  type Frame,
  FrameParser,
} from '@streambus/protocol';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig } from './config.js';
import { Connection, type RequestHandler } from './connection.js';
import { BrokerMetrics } from './metrics.js';

interface Rig {
  readonly client: Socket;
  readonly server: Server;
  readonly serverSocket: Socket;
  readonly conn: Connection;
  /** Gathered (`_writev`) and single (`_write`) writes the connection's socket made. */
  readonly writes: { writev: number; write: number };
}

const rigs: Rig[] = [];

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    r.client.destroy();
    r.conn.destroy();
    await new Promise<void>((res) => r.server.close(() => res()));
  }
});

async function rig(
  handler: RequestHandler,
  limits: Partial<ReturnType<typeof defaultConfig>['limits']> = {},
): Promise<Rig> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ port, host: '127.0.0.1', noDelay: true });
  await once(client, 'connect');
  const [serverSocket] = await accepted;
  const writes = { writev: 0, write: 0 };
  const s = serverSocket as unknown as {
    _write: (...a: unknown[]) => void;
    _writev: (...a: unknown[]) => void;
  };
  const write = s._write.bind(serverSocket);
  const writev = s._writev.bind(serverSocket);
  s._write = (...a) => {
    writes.write++;
    write(...a);
  };
  s._writev = (...a) => {
    writes.writev++;
    writev(...a);
  };
  const conn = new Connection(
    serverSocket,
    { ...defaultConfig().limits, ...limits },
    handler,
    new BrokerMetrics(() => []),
    pino({ level: 'silent' }),
    () => {},
  );
  const r = { client, server, serverSocket, conn, writes };
  rigs.push(r);
  return r;
}

function request(correlationId: number): Buffer {
  return encodeRequest(ApiKey.API_VERSIONS, correlationId, {}, { apiVersion: 0 });
}

function answer(frame: Frame, pad = 0): Buffer {
  return encodeResponse(
    { ...frame, apiKey: ApiKey.API_VERSIONS },
    {
      errorCode: 0,
      apis: [],
      brokerVersion: 'test',
      nodeId: 1,
      ...(pad > 0 ? { errorMessage: 'x'.repeat(pad) } : {}),
    },
  );
}

/** Collects response frames from the client socket until `n` arrived. */
function collect(client: Socket, n: number): Promise<Frame[]> {
  const parser = new FrameParser();
  const got: Frame[] = [];
  return new Promise((resolve, reject) => {
    client.on('data', (chunk: Buffer) => {
      try {
        got.push(...parser.push(chunk));
      } catch (err) {
        reject(err);
      }
      if (got.length >= n) resolve(got);
    });
    client.once('close', () => reject(new Error(`closed after ${got.length} of ${n} responses`)));
  });
}

describe('connection response writes', () => {
  it('sends responses finished in one turn in one gathered write, in request order', async () => {
    const N = 40;
    const parked: Array<{ frame: Frame; resolve: (b: Buffer) => void }> = [];
    let allParked: () => void = () => {};
    const ready = new Promise<void>((res) => {
      allParked = res;
    });
    const r = await rig((frame) => {
      return new Promise<Buffer>((resolve) => {
        parked.push({ frame, resolve });
        if (parked.length === N) allParked();
      });
    });
    const received = collect(r.client, N);
    r.client.write(Buffer.concat(Array.from({ length: N }, (_, i) => request(i + 1))));
    await ready;
    const before = { ...r.writes };
    // Finish them in reverse order, all in this turn.
    for (const p of [...parked].reverse()) p.resolve(answer(p.frame));
    const frames = await received;
    expect(frames.map((f) => f.correlationId)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(r.writes.writev - before.writev).toBe(1);
    expect(r.writes.write - before.write).toBe(0);
  });

  it('writes an answer before the next check phase of the event loop (no setImmediate hop)', async () => {
    let finish: (response: Buffer) => void = () => {};
    let parkedFrame: Frame | null = null;
    let parked: () => void = () => {};
    const ready = new Promise<void>((res) => {
      parked = res;
    });
    const r = await rig((frame) => {
      parkedFrame = frame;
      parked();
      return new Promise<Buffer>((resolve) => {
        finish = resolve;
      });
    });
    const received = collect(r.client, 1);
    r.client.write(request(5));
    await ready;
    const before = r.writes.write;
    finish(answer(parkedFrame!));
    // Queued now, so it runs in the first check phase after the answer: the write came first.
    await new Promise((res) => setImmediate(res));
    expect(r.writes.write - before).toBe(1);
    expect((await received)[0]!.correlationId).toBe(5);
  });

  it('writes a lone response with one plain write (no cork buffering)', async () => {
    const r = await rig((frame) => Promise.resolve(answer(frame)));
    for (let i = 1; i <= 3; i++) {
      const received = collect(r.client, 1);
      r.client.write(request(i));
      const [f] = await received;
      r.client.removeAllListeners('data');
      r.client.removeAllListeners('close');
      expect(f!.correlationId).toBe(i);
    }
    expect(r.writes).toEqual({ writev: 0, write: 3 });
  });

  it('writes a lone response in parts (a fetch: header, body) as one gathered write', async () => {
    const r = await rig((frame) => {
      const whole = answer(frame, 1000);
      return Promise.resolve([whole.subarray(0, 14), whole.subarray(14)]);
    });
    const received = collect(r.client, 1);
    r.client.write(request(7));
    const [f] = await received;
    expect(f!.correlationId).toBe(7);
    expect(f!.body.length).toBeGreaterThan(1000);
    expect(r.writes).toEqual({ writev: 1, write: 0 });
  });

  it('stops reading from a reader that takes nothing once unsent responses pass outboundBytesMax, then answers all in order', async () => {
    const RESPONSE_BYTES = 200 * 1024;
    const OUTBOUND_MAX = 1024 * 1024;
    let handled = 0;
    const r = await rig(
      (frame) => {
        handled++;
        return answer(frame, RESPONSE_BYTES);
      },
      { outboundBytesMax: OUTBOUND_MAX, inflightRequestsMax: 64 },
    );
    r.client.pause();
    const N = 400;
    r.client.write(Buffer.concat(Array.from({ length: N }, (_, i) => request(i + 1))));
    // Let the broker side run until it stops on its own bound.
    let last = -1;
    for (let i = 0; i < 50 && handled !== last; i++) {
      last = handled;
      await new Promise((res) => setTimeout(res, 40));
    }
    expect(handled).toBe(last);
    // Unread responses are bounded: the kernel's socket buffers plus outboundBytesMax (and one
    // turn's worth over it), never all N (80 MB).
    const kernelBytesMax = 16 * 1024 * 1024;
    expect(handled).toBeLessThan(N);
    expect(handled * RESPONSE_BYTES).toBeLessThan(kernelBytesMax + 2 * OUTBOUND_MAX);
    expect(r.conn.outboundBytes).toBeLessThanOrEqual(OUTBOUND_MAX + 64 * (RESPONSE_BYTES + 64));
    const received = collect(r.client, N);
    r.client.resume();
    const frames = await received;
    expect(frames.map((f) => f.correlationId)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(handled).toBe(N);
  }, 30_000);
});
