// One native listener for clients and peer brokers: a socket's first bytes decide who it is.
// A socket whose first chunk starts with the peer preamble (cluster/peer-frame.ts: its first
// byte can never start a client frame) goes to the peer links with the bytes already read;
// anything else is put back into the socket (`unshift`) and served as a client connection, which
// then reads exactly what it would have read without the look. A client socket is handed over
// paused: its reader resumes it once it listens (a socket held while the broker starts must
// not flow with nobody listening, which would drop its first request).
//
// A socket that sends nothing is closed after `timeoutMs` (the client idle timeout, which the
// connection sweep would have applied anyway); one that closes or fails first is just dropped.
// `pending` bounds nothing by itself (the server's maxConnections does) but lets shutdown destroy
// sockets still being looked at.
import type { Socket } from 'node:net';

export interface FirstBytesRoute {
  isPeer(firstBytes: Uint8Array): boolean;
  onPeer(socket: Socket, firstBytes: Buffer): void;
  /** Takes a paused socket; resumes it once it has a 'data' listener. */
  onClient(socket: Socket): void;
  timeoutMs: number;
}

export class FirstBytesRouter {
  private readonly pending = new Set<Socket>();

  constructor(private readonly route: FirstBytesRoute) {}

  get size(): number {
    return this.pending.size;
  }

  accept(socket: Socket): void {
    this.pending.add(socket);
    const finish = (): void => {
      this.pending.delete(socket);
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      finish();
      if (this.route.isPeer(chunk)) {
        this.route.onPeer(socket, chunk);
        return;
      }
      socket.pause();
      socket.unshift(chunk);
      this.route.onClient(socket);
    };
    const onError = (): void => {
      finish();
      socket.destroy();
    };
    const onClose = (): void => finish();
    const timer = setTimeout(() => {
      finish();
      socket.destroy();
    }, this.route.timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** Destroys every socket not routed yet (shutdown). */
  destroyAll(): void {
    for (const s of [...this.pending]) s.destroy();
    this.pending.clear();
  }
}
