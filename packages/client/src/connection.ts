// One TCP connection to one broker (kafkajs's "network" + "broker connection" layers). It frames
// requests, matches responses by correlation id, bounds the requests in flight (callers beyond
// the bound wait for a slot, and the waiting list is bounded too), times requests out, and
// negotiates API versions right after connecting. It never retries: every failure is a
// StreamBusError for the single retry layer above (retry.ts). A failed connection stays failed;
// the cluster opens a new one.
//
// Failure mapping: connect errors -> NETWORK_EXCEPTION; the socket closing or erroring with
// requests pending -> CONNECTION_CLOSED (both retriable); a request not answered within its
// timeout -> REQUEST_TIMED_OUT, and the connection is closed (its ordering can no longer be
// trusted); a frame the parser rejects -> that error, connection closed.
import net from 'node:net';
import {
  ApiKey,
  type ApiKeyValue,
  decodeResponse,
  ErrorCode,
  encodeRequest,
  type Frame,
  FrameAssembler,
  negotiateVersion,
  type RequestOf,
  type ResponseOf,
  StreamBusError,
} from '@streambus/protocol';

export interface ConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly inflightRequestsMax: number;
  readonly slotWaitersMax: number;
  readonly frameBytesMax: number;
  readonly clientId: string;
}

interface Pending {
  readonly apiKey: ApiKeyValue;
  readonly resolve: (frame: Frame) => void;
  readonly reject: (err: StreamBusError) => void;
  readonly timer: NodeJS.Timeout;
}

const CORRELATION_ID_MAX = 0x7fffffff;
/** The socket's read buffer (one per connection, reused by every read). */
const READ_BUFFER_BYTES = 256 * 1024;

export class BrokerConnection {
  readonly host: string;
  readonly port: number;
  private readonly socket: net.Socket;
  private readonly parser: FrameAssembler;
  private readonly pending = new Map<number, Pending>();
  private readonly slotWaiters: Array<() => void> = [];
  private inflight = 0;
  private nextCorrelationId = 1;
  private failure: StreamBusError | null = null;
  private versions = new Map<number, number>();
  private readonly closeListeners: Array<(err: StreamBusError) => void> = [];

  private constructor(
    socket: net.Socket,
    reader: { onChunk: (chunk: Buffer) => void },
    private readonly options: ConnectionOptions,
  ) {
    this.host = options.host;
    this.port = options.port;
    this.socket = socket;
    this.parser = new FrameAssembler({ frameBytesMax: options.frameBytesMax });
    socket.setNoDelay(true);
    reader.onChunk = (chunk) => this.handleData(chunk);
    socket.on('error', (err) =>
      this.fail(
        new StreamBusError(ErrorCode.CONNECTION_CLOSED, `${this.address}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    socket.on('close', () =>
      this.fail(new StreamBusError(ErrorCode.CONNECTION_CLOSED, `${this.address}: closed`)),
    );
  }

  /** Connects and negotiates API versions. Throws NETWORK_EXCEPTION if the broker is unreachable. */
  static async connect(options: ConnectionOptions): Promise<BrokerConnection> {
    // The socket reads into one buffer of its own (reused; the assembler copies each frame out
    // once), not into a new 64 KiB chunk per read: less memory churn under large fetches.
    const reader = { onChunk: (_chunk: Buffer): void => {} };
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({
        host: options.host,
        port: options.port,
        onread: {
          buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
          callback: (n: number, buf: Uint8Array) => {
            reader.onChunk(Buffer.from(buf.buffer, buf.byteOffset, n));
            return true;
          },
        },
      });
      // A broker speaks only when asked: bytes before the connection exists end it.
      reader.onChunk = () => s.destroy();
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new StreamBusError(
            ErrorCode.NETWORK_EXCEPTION,
            `connect to ${options.host}:${options.port} timed out after ${options.connectTimeoutMs} ms`,
          ),
        );
      }, options.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(
          new StreamBusError(
            ErrorCode.NETWORK_EXCEPTION,
            `cannot connect to ${options.host}:${options.port}: ${err.message}`,
            { cause: err },
          ),
        );
      });
    });
    const conn = new BrokerConnection(socket, reader, options);
    try {
      const res = await conn.request(ApiKey.API_VERSIONS, {
        clientSoftwareName: options.clientId,
        clientSoftwareVersion: '0.1.0',
      });
      if (res.errorCode !== 0) {
        throw new StreamBusError(res.errorCode, res.errorMessage ?? 'api versions failed');
      }
      for (const api of res.apis) {
        const v = negotiateVersion(api.apiKey as ApiKeyValue, api);
        if (v !== null) conn.versions.set(api.apiKey, v);
      }
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Whether the broker implements a version of `apiKey` that this client speaks. */
  supports(apiKey: ApiKeyValue): boolean {
    return apiKey === ApiKey.API_VERSIONS || this.versions.has(apiKey);
  }

  get isClosed(): boolean {
    return this.failure !== null;
  }

  get inflightRequests(): number {
    return this.inflight;
  }

  onClose(listener: (err: StreamBusError) => void): void {
    if (this.failure) listener(this.failure);
    else this.closeListeners.push(listener);
  }

  close(): void {
    this.fail(new StreamBusError(ErrorCode.CONNECTION_CLOSED, `${this.address}: closed by client`));
  }

  /**
   * Sends a request and resolves with its checked response body. `extraTimeoutMs` extends the
   * request timeout (fetch long-polls for maxWaitMs).
   */
  async request<K extends ApiKeyValue>(
    apiKey: K,
    body: RequestOf<K>,
    extraTimeoutMs = 0,
  ): Promise<ResponseOf<K>> {
    return this.requestEncoded(
      apiKey,
      (correlationId) => [encodeRequest(apiKey, correlationId, body, this.versionOption(apiKey))],
      extraTimeoutMs,
    );
  }

  /**
   * Like request(), with the frame written by `encode` as chunks (corked into one write): the
   * producer builds PRODUCE frames around its batch buffers without copying them. With a slot
   * free the frame is written before this returns (the producer's first batch of a burst
   * reaches the broker while the rest of the burst is still being appended).
   */
  requestEncoded<K extends ApiKeyValue>(
    apiKey: K,
    encode: (correlationId: number, apiVersion: number) => Buffer[],
    extraTimeoutMs = 0,
  ): Promise<ResponseOf<K>> {
    const slot = this.acquireSlot();
    const frame =
      slot === undefined
        ? this.writeRequest(apiKey, encode, extraTimeoutMs)
        : slot.then(() => this.writeRequest(apiKey, encode, extraTimeoutMs));
    return frame.then((f) => decodeResponse(apiKey, f));
  }

  /** Writes one request frame now (its slot taken) and resolves with the response frame. */
  private writeRequest(
    apiKey: ApiKeyValue,
    encode: (correlationId: number, apiVersion: number) => Buffer[],
    extraTimeoutMs: number,
  ): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      if (this.failure) {
        this.releaseSlot();
        reject(this.failure);
        return;
      }
      const correlationId = this.takeCorrelationId();
      let chunks: Buffer[];
      try {
        chunks = encode(correlationId, this.versionOption(apiKey).apiVersion ?? 0);
      } catch (err) {
        this.releaseSlot();
        reject(err);
        return;
      }
      const timeoutMs = this.options.requestTimeoutMs + extraTimeoutMs;
      const timer = setTimeout(() => {
        this.fail(
          new StreamBusError(
            ErrorCode.REQUEST_TIMED_OUT,
            `${this.address}: request ${correlationId} not answered within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.pending.set(correlationId, { apiKey, resolve, reject, timer });
      if (chunks.length === 1) {
        this.socket.write(chunks[0]!);
      } else {
        this.socket.cork();
        for (const c of chunks) this.socket.write(c);
        this.socket.uncork();
      }
    });
  }

  /** Sends a request the broker will not answer (produce acks=0); resolves once written. */
  async sendNoResponse<K extends ApiKeyValue>(apiKey: K, body: RequestOf<K>): Promise<void> {
    if (this.failure) throw this.failure;
    const bytes = encodeRequest(apiKey, this.takeCorrelationId(), body, {
      ...this.versionOption(apiKey),
      noResponse: true,
    });
    await new Promise<void>((resolve, reject) => {
      this.socket.write(bytes, (err) => {
        if (err) reject(new StreamBusError(ErrorCode.CONNECTION_CLOSED, err.message));
        else resolve();
      });
    });
  }

  private versionOption(apiKey: ApiKeyValue): { apiVersion?: number } {
    if (apiKey === ApiKey.API_VERSIONS) return { apiVersion: 0 };
    const v = this.versions.get(apiKey);
    if (v === undefined) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        `broker ${this.address} supports no version of API ${apiKey} that this client speaks`,
      );
    }
    return { apiVersion: v };
  }

  private takeCorrelationId(): number {
    const id = this.nextCorrelationId;
    this.nextCorrelationId = id >= CORRELATION_ID_MAX ? 1 : id + 1;
    return id;
  }

  private acquireSlot(): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inflight < this.options.inflightRequestsMax) {
      this.inflight++;
      return undefined;
    }
    if (this.slotWaiters.length >= this.options.slotWaitersMax) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.TOO_MANY_INFLIGHT_REQUESTS,
          `${this.address}: ${this.slotWaiters.length} requests already wait for a slot`,
        ),
      );
    }
    return new Promise<void>((resolve) => {
      // The slot is handed over by releaseSlot (inflight is not decremented in between).
      this.slotWaiters.push(resolve);
    });
  }

  private releaseSlot(): void {
    const next = this.slotWaiters.shift();
    if (next) next();
    else this.inflight--;
  }

  private handleData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      this.fail(err as StreamBusError);
      return;
    }
    for (const frame of frames) {
      const p = this.pending.get(frame.correlationId);
      if (p === undefined) {
        this.fail(
          new StreamBusError(
            ErrorCode.MALFORMED_FRAME,
            `${this.address}: response for unknown correlation id ${frame.correlationId}`,
          ),
        );
        return;
      }
      this.pending.delete(frame.correlationId);
      clearTimeout(p.timer);
      this.releaseSlot();
      p.resolve(frame);
    }
  }

  private fail(err: StreamBusError): void {
    if (this.failure) return;
    this.failure = err;
    this.socket.destroy();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    // Waiters get the slot and then see the failure.
    const waiters = this.slotWaiters.splice(0);
    for (const w of waiters) w();
    for (const l of this.closeListeners.splice(0)) l(err);
  }
}
