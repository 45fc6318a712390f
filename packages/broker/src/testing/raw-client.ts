// A raw native-protocol client for the broker's tests: frames requests with the protocol
// package's codec, matches responses by correlation id, and exposes the socket so tests can send
// garbage, stall reading, or half-close. Not the SDK (packages/client); deliberately minimal.
import { connect, type Socket } from 'node:net';
import {
  type ApiKeyValue,
  decodeResponse,
  encodeRequest,
  type Frame,
  FrameParser,
  type RequestOf,
  type ResponseOf,
} from '@streambus/protocol';

export class RawClient {
  private readonly parser = new FrameParser({ frameBytesMax: 256 * 1024 * 1024 });
  private readonly pending = new Map<
    number,
    { resolve: (f: Frame) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  readonly frames: Frame[] = [];
  closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.parser.push(chunk)) {
        this.frames.push(frame);
        const p = this.pending.get(frame.correlationId);
        if (p) {
          this.pending.delete(frame.correlationId);
          p.resolve(frame);
        }
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('connection closed'));
      this.pending.clear();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a request and returns its raw response frame. */
  sendRaw<K extends ApiKeyValue>(
    apiKey: K,
    body: RequestOf<K>,
    options: { apiVersion?: number } = {},
  ): Promise<Frame> {
    const id = this.nextId++;
    // A request on a socket already closed would wait forever for an answer.
    if (this.socket.destroyed) return Promise.reject(new Error('connection closed'));
    const frame = encodeRequest(apiKey, id, body, options);
    const promise = new Promise<Frame>((resolve, reject) =>
      this.pending.set(id, { resolve, reject }),
    );
    this.socket.write(frame);
    return promise;
  }

  async request<K extends ApiKeyValue>(apiKey: K, body: RequestOf<K>): Promise<ResponseOf<K>> {
    return decodeResponse(apiKey, await this.sendRaw(apiKey, body));
  }

  /** A request with NO_RESPONSE (produce acks=0). */
  sendNoResponse<K extends ApiKeyValue>(apiKey: K, body: RequestOf<K>): void {
    this.socket.write(encodeRequest(apiKey, this.nextId++, body, { noResponse: true }));
  }

  close(): void {
    this.socket.destroy();
  }
}
