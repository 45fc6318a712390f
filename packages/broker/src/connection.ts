// One client connection: frames in, responses out, in request order. It owns the socket and the
// per-connection bounds; it knows nothing about what a request means (the handler does).
//
// Rules (ARCHITECTURE.md §5):
//   1. Requests are pipelined: each frame read gets a slot; slots are answered in the order they
//      were read, whatever order their handlers finish in (clients rely on it, and librdkafka's
//      idempotent producer needs in-order processing per connection).
//   2. Back-pressure, not buffering: when `inflightRequestsMax` requests or `inflightBytesMax`
//      frame bytes are unanswered, or the socket's write buffer is over its high-water mark (a
//      slow reader), reading pauses; it resumes when all three are below their bounds again.
//   3. A frame the parser refuses (malformed, oversized): the responses owed before it are sent,
//      then an ERROR frame carrying the refused frame's header (when 14 bytes of it were
//      readable), then the connection is closed. Other connections are not touched.
//   4. A request with NO_RESPONSE (produce acks=0) holds a slot until handled but writes nothing.
//   5. A request unanswered after `requestTimeoutMs` is answered REQUEST_TIMED_OUT (its late
//      result is dropped); a handler that parks a request by design (a JoinGroup or SyncGroup
//      waits out a rebalance) extends that request's bound with `ctx.parkFor(ms)`, never past
//      `PARKED_REQUEST_TIMEOUT_MS_MAX`; a connection with nothing in flight and no bytes read for
//      `idleTimeoutMs` is closed. Both are checked by the broker's periodic `sweep`.
//   6. Closing aborts `signal`, which cancels the connection's parked long-polls.
//   7. Request bodies are pre-scanned (msgpack-scan.ts) before any handler decodes them: one
//      nesting too deep, declaring too many items, or whose decoded size would pass
//      `requestDecodedBytesMax` gets INVALID_REQUEST (the connection stays open); the estimated
//      decoded size is charged to `inflightBytesMax` with the frame until it is answered.
//   8. Inbound, broker-wide (byte-budget.ts): a frame that does not arrive in one socket read
//      reserves its declared size in the shared inbound budget when its header arrives, and
//      releases it when complete. A connection that cannot reserve stops reading and waits its
//      turn (FIFO); one holding a reservation can always finish its frame, so waiting cannot
//      deadlock. A frame not completed within `frameStallTimeoutMs` of its first byte (time
//      during which this side paused reading for its own bounds does not count) closes the
//      connection with a log line, freeing its reservation.
//   9. Outbound: responses produced but not yet taken by the kernel (queued, in the socket's
//      write buffer, or reserved by a fetch in progress) count per connection and broker-wide.
//      At `outboundBytesMax` the connection stops reading; a fetch reserves its reads in
//      advance (`reserveResponseBytes`) and reads less, or nothing, when either bound is spent.
//      A peer that takes none of its responses for `frameStallTimeoutMs` is closed.
//  10. The wire format is a `Wire` (framing, the checks before dispatch, how a failed request
//      and a refused stream are answered): the native one (NATIVE_WIRE, below) by default, the
//      Kafka listener's (kafka/kafka-wire.ts) for Kafka clients. Rules 1-9 hold for both.
import type { Socket } from 'node:net';
import {
  API_NAMES,
  checkApiVersion,
  ErrorCode,
  encodeErrorResponse,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameFlag,
  type FrameHeader,
  FrameParser,
  isStreamBusError,
  MSGPACK_LIMITS_DEFAULT,
  type MsgpackLimits,
  StreamBusError,
  scanMsgpack,
} from '@streambus/protocol';
import { stageProbe } from '@streambus/storage';
import type { Logger } from 'pino';
import { type BrokerBudgets, brokerBudgets } from './byte-budget.js';
import type { BrokerLimits } from './config.js';
import type { BrokerMetrics } from './metrics.js';

export interface RequestContext {
  /** Aborted when the connection closes. */
  readonly signal: AbortSignal;
  readonly remote: string;
  /**
   * Reserves `bytes` of response (fetch reads) against the connection's and the broker's
   * outbound budgets; false when either is spent (read less). Held until the response is sent
   * to the socket; give back what was not used with `releaseResponseBytes`.
   */
  reserveResponseBytes(bytes: number): boolean;
  releaseResponseBytes(bytes: number): void;
  /**
   * This request may be held up to `ms` by design (a parked JoinGroup or SyncGroup): it is
   * answered REQUEST_TIMED_OUT only after max(requestTimeoutMs, min(ms,
   * PARKED_REQUEST_TIMEOUT_MS_MAX)) instead of requestTimeoutMs. Never shortens the bound.
   */
  parkFor(ms: number): void;
}

/** The longest any request may be held (`parkFor`): the bound stays finite whatever is asked. */
export const PARKED_REQUEST_TIMEOUT_MS_MAX = 3_600_000;

/**
 * An encoded response frame: one buffer, or its consecutive parts (header, body) written back to
 * back without joining them (a fetch response's body is not copied again).
 */
export type Response = Buffer | readonly Buffer[];

/**
 * Parts with a `written` hook: called once the socket has taken every part (its write callback,
 * without an error), when their buffers may be reused (a fetch's read buffers). Not called when
 * the connection ends first.
 */
export type WrittenParts = readonly Buffer[] & { readonly written?: () => void };

/** Returns the encoded response frame, or null for a request that is not answered. */
export type RequestHandler<F = Frame> = (
  frame: F,
  ctx: RequestContext,
) => Response | null | Promise<Response | null>;

/** Splits a connection's byte stream into frames (bounded; throws a typed error when refused). */
export interface WireParser<F> {
  push(chunk: Buffer): F[];
  /** Bytes held for the incomplete frame (0 between frames). */
  readonly pendingBytes: number;
  /** The incomplete frame's declared size (0 between frames). */
  readonly pendingFrameBytes: number;
}

/** One connection's wire format: everything connection.ts needs to know of what a frame is. */
export interface WireCodec<F> {
  readonly parser: WireParser<F>;
  /** Checks a frame before its handler runs (throws a typed error); returns the bytes to charge. */
  admit(frame: F): number;
  /** The answer to a request that failed as a whole; `close`: close the connection after it. */
  failure(frame: F, err: StreamBusError): { response: Response | null; close: boolean };
  /** What to send before closing a stream the parser refused (`unparsed`: its unread bytes). */
  refused(unparsed: Buffer, err: StreamBusError): Response | null;
  /** False for a request that never gets an answer (native NO_RESPONSE, Kafka acks=0). */
  expectsResponse(frame: F): boolean;
  /** The metrics label of the frame's API. */
  apiName(frame: F): string;
  /** Fields for a log line about the frame (the API, and the client id where the wire has one). */
  logFields(frame: F): Record<string, unknown>;
}

export type Wire<F> = (limits: BrokerLimits) => WireCodec<F>;

/**
 * One request from dispatch until its response is written; also the handler's view of it
 * (RequestContext: the connection's signal plus this slot's reservations), so a request costs
 * one object here, not two.
 */
class Slot<F = unknown> implements RequestContext {
  /** performance.now() at dispatch (a double: no BigInt per request), for requestSeconds. */
  readonly startPerfMs = performance.now();
  readonly startMs = Date.now();
  /** performance.now() when answered, only with the stage probe on (stage-probe.ts). */
  completedPerfMs = 0;
  /** Charged to inflightBytes: the frame and its body's estimated decoded size. */
  frameBytes = 0;
  done = false;
  response: Response | null = null;
  /** Close the connection once this slot's response is written. */
  closeAfter = false;
  /** Outbound bytes reserved by the handler (released when the response is queued). */
  reservedBytes = 0;
  /** Bytes of `response`, counted as outbound until written. */
  responseBytes = 0;

  constructor(
    // biome-ignore lint/suspicious/noExplicitAny: any wire's connection
    private readonly conn: Connection<any>,
    readonly header: F,
    /** Answered REQUEST_TIMED_OUT once unanswered this long (requestTimeoutMs, or `parkFor`). */
    public timeoutMs: number,
  ) {}
  get signal(): AbortSignal {
    return this.conn.signal;
  }
  get remote(): string {
    return this.conn.remote;
  }
  reserveResponseBytes(bytes: number): boolean {
    return this.conn.reserveFor(this, bytes);
  }
  releaseResponseBytes(bytes: number): void {
    this.conn.releaseFor(this, bytes);
  }
  parkFor(ms: number): void {
    if (!Number.isFinite(ms)) return;
    this.timeoutMs = Math.max(this.timeoutMs, Math.min(ms, PARKED_REQUEST_TIMEOUT_MS_MAX));
  }
}

function responseLength(response: Response | null): number {
  if (response === null) return 0;
  if (Buffer.isBuffer(response)) return response.length;
  let n = 0;
  for (const part of response) n += part.length;
  return n;
}

/** One API label's request metrics, resolved once: prom-client hashes the labels on every call. */
interface ApiRequestMetrics {
  readonly requests: { inc(): void };
  readonly seconds: { observe(value: number): void };
}

/** Per metrics registry, per API label (a fixed set: the wires' API name tables). */
const apiMetricsCache = new WeakMap<BrokerMetrics, Map<string, ApiRequestMetrics>>();

function apiRequestMetrics(metrics: BrokerMetrics, api: string): ApiRequestMetrics {
  let byApi = apiMetricsCache.get(metrics);
  if (byApi === undefined) {
    byApi = new Map();
    apiMetricsCache.set(metrics, byApi);
  }
  let m = byApi.get(api);
  if (m === undefined) {
    m = {
      requests: metrics.requests.labels({ api }),
      seconds: metrics.requestSeconds.labels({ api }),
    };
    byApi.set(api, m);
  }
  return m;
}

/** Stage timings for benchmarks (storage's stage-probe.ts); null unless enabled at start. */
const PROBE = stageProbe();

const KNOWN_FLAGS = FrameFlag.RESPONSE | FrameFlag.ERROR | FrameFlag.NO_RESPONSE;
/** How long a closing connection waits for the peer to read the final error frame. */
const CLOSE_LINGER_MS = 2000;
/** Request bodies nest at most 5 deep (messages.ts); deeper is hostile. */
const REQUEST_DEPTH_MAX = 16;

/** The native protocol's wire: frames of wire/frame.ts, msgpack bodies pre-scanned (rule 7). */
export const NATIVE_WIRE: Wire<Frame> = (limits) => {
  const scanLimits: MsgpackLimits = {
    ...MSGPACK_LIMITS_DEFAULT,
    depthMax: REQUEST_DEPTH_MAX,
    decodedBytesMax: Math.min(limits.requestDecodedBytesMax, limits.inflightBytesMax),
  };
  return {
    parser: new FrameParser({ frameBytesMax: limits.frameBytesMax }),
    admit(frame) {
      // Rule 7: refuse a hostile body before anything decodes it; charge its decoded size.
      checkApiVersion(frame.apiKey, frame.apiVersion);
      const shape = scanMsgpack(frame.body, scanLimits, API_NAMES[frame.apiKey]);
      return FRAME_HEADER_BYTES + frame.body.length + shape.decodedBytes;
    },
    failure(frame, err) {
      if ((frame.flags & FrameFlag.NO_RESPONSE) !== 0) return { response: null, close: false };
      return { response: encodeErrorResponse(frame, err), close: false };
    },
    refused(unparsed, err) {
      const header = findRefusedHeader(unparsed, limits.frameBytesMax);
      return header === null ? null : encodeErrorResponse(header, err);
    },
    expectsResponse: (frame) => (frame.flags & FrameFlag.NO_RESPONSE) === 0,
    apiName: (frame) => API_NAMES[frame.apiKey] ?? 'unknown',
    logFields: (frame) => ({ apiKey: frame.apiKey }),
  };
};

/** Walks frame boundaries to the first header the parser would refuse (flags masked to valid bits). */
function findRefusedHeader(buf: Buffer, frameBytesMax: number): FrameHeader | null {
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= buf.length) {
    const length = buf.readUInt32BE(pos);
    const flags = buf.readUInt16BE(pos + 12);
    if (
      length < FRAME_HEADER_BYTES - 4 ||
      4 + length > frameBytesMax ||
      (flags & ~KNOWN_FLAGS) !== 0
    ) {
      return {
        apiKey: buf.readUInt16BE(pos + 4),
        apiVersion: buf.readUInt16BE(pos + 6),
        correlationId: buf.readUInt32BE(pos + 8),
        flags: 0,
      };
    }
    pos += 4 + length;
  }
  return null;
}

export class Connection<F = Frame> {
  readonly remote: string;
  private readonly codec: WireCodec<F>;
  private readonly parser: WireParser<F>;
  private readonly abort = new AbortController();
  private readonly slots: Slot<F>[] = [];
  private readonly budgets: BrokerBudgets;
  /** Inbound budget reserved for the incomplete frame in the parser. */
  private inboundReservedBytes = 0;
  /** Set while waiting for inbound budget (cancels the wait). */
  private inboundWaitCancel: (() => void) | null = null;
  /** When the incomplete frame's clock started (its first byte, or reading resumed since). */
  private partialSinceMs = 0;
  private responseReservedBytes = 0;
  private responsePendingBytes = 0;
  /** What this connection has charged to the broker-wide outbound budget. */
  private outboundChargedBytes = 0;
  /** Last time the socket's write buffer was seen empty or shrinking (rule 9). */
  private writeProgressMs = Date.now();
  private writableSeenBytes = 0;
  /** Frames read (one socket chunk's worth at most) but not dispatched: over a bound. */
  private backlog: F[] = [];
  private pumping = false;
  private flushScheduled = false;
  /** Chunks holding the bytes of the frame the parser has not completed yet (for error headers). */
  private tail: Buffer[] = [];
  private inflightRequests = 0;
  private inflightBytes = 0;
  private writeBlocked = false;
  private readingStopped = false;
  private closed = false;
  private lastActivityMs: number;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly limits: BrokerLimits,
    private readonly handler: RequestHandler<F>,
    private readonly metrics: BrokerMetrics,
    private readonly logger: Logger,
    private readonly onClosed: (conn: Connection<F>) => void,
    /** Shared by every connection of a broker; a private set when not given (tests). */
    budgets?: BrokerBudgets,
    /** The wire format (rule 10); the native protocol when not given. */
    wire?: Wire<F>,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.codec = (wire ?? (NATIVE_WIRE as unknown as Wire<F>))(limits);
    this.parser = this.codec.parser;
    this.budgets = budgets ?? brokerBudgets(limits);
    this.lastActivityMs = Date.now();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A socket may come paused (FirstBytesRouter, a start-up hold): it flows from here.
    socket.resume();
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.writeProgressMs = Date.now();
      this.syncOutbound();
      this.maybeResume();
    });
    socket.on('error', (err) =>
      this.logger.debug({ err, remote: this.remote }, 'connection error'),
    );
    socket.on('close', () => this.onSocketClosed());
  }

  get inflight(): number {
    return this.inflightRequests;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Responses produced and not yet taken by the kernel, reservations included. */
  get outboundBytes(): number {
    return this.responseReservedBytes + this.responsePendingBytes + this.socket.writableLength;
  }

  /** @internal Slot.reserveResponseBytes. */
  reserveFor(slot: Slot<F>, bytes: number): boolean {
    if (slot.done || this.closed) return false;
    if (this.outboundBytes + bytes > this.limits.outboundBytesMax) return false;
    if (!this.budgets.outbound.tryReserve(bytes)) return false;
    this.outboundChargedBytes += bytes;
    slot.reservedBytes += bytes;
    this.responseReservedBytes += bytes;
    return true;
  }

  /** @internal Slot.releaseResponseBytes. */
  releaseFor(slot: Slot<F>, bytes: number): void {
    if (slot.done) return; // everything it held was released when it completed
    const n = Math.min(bytes, slot.reservedBytes);
    slot.reservedBytes -= n;
    this.responseReservedBytes -= n;
    this.syncOutbound();
  }

  /** Brings this connection's share of the broker-wide outbound budget up to date. */
  private syncOutbound(): void {
    const now = this.closed ? 0 : this.outboundBytes;
    if (now !== this.outboundChargedBytes) {
      this.budgets.outbound.charge(now - this.outboundChargedBytes);
      this.outboundChargedBytes = now;
    }
  }

  private onData(chunk: Buffer): void {
    if (this.readingStopped) return;
    this.lastActivityMs = Date.now();
    this.metrics.bytesIn.inc(chunk.length);
    let frames: F[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      this.refuseStream(err, chunk);
      return;
    }
    this.trackTail(chunk);
    if (frames.length > 0 || this.parser.pendingBytes === 0) this.releaseInbound();
    if (this.parser.pendingBytes > 0 && this.inboundReservedBytes === 0) this.reserveInbound();
    if (this.backlog.length === 0) this.backlog = frames;
    else this.backlog.push(...frames);
    this.pump();
    if (this.backlog.length > 0 || this.overLimits() || this.inboundWaitCancel !== null) {
      this.socket.pause();
    }
  }

  /** A frame is incomplete: reserve its declared size broker-wide, or wait for it (rule 8). */
  private reserveInbound(): void {
    const bytes = Math.min(this.parser.pendingFrameBytes, this.limits.frameBytesMax);
    this.partialSinceMs = Date.now();
    if (this.budgets.inbound.tryReserve(bytes)) {
      this.inboundReservedBytes = bytes;
      return;
    }
    this.inboundWaitCancel = this.budgets.inbound.wait(bytes, () => {
      this.inboundWaitCancel = null;
      this.inboundReservedBytes = bytes;
      if (this.closed) {
        this.releaseInbound();
        return;
      }
      this.maybeResume();
    });
  }

  private releaseInbound(): void {
    if (this.inboundWaitCancel !== null) {
      const cancel = this.inboundWaitCancel;
      this.inboundWaitCancel = null;
      cancel();
    }
    if (this.inboundReservedBytes > 0) {
      const bytes = this.inboundReservedBytes;
      this.inboundReservedBytes = 0;
      this.budgets.inbound.release(bytes);
    }
  }

  /** Dispatches backlogged frames while the bounds allow (not re-entrant: a synchronous
   *  completion inside `dispatch` calls back into `maybeResume`). */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let i = 0;
      while (
        i < this.backlog.length &&
        !this.overLimits() &&
        !this.closed &&
        !this.readingStopped
      ) {
        const frame = this.backlog[i]!;
        i++;
        this.dispatch(frame);
      }
      if (i > 0) this.backlog = i >= this.backlog.length ? [] : this.backlog.slice(i);
    } finally {
      this.pumping = false;
    }
  }

  private trackTail(chunk: Buffer): void {
    const pending = this.parser.pendingBytes;
    if (pending === 0) this.tail = [];
    else if (pending <= chunk.length) this.tail = [chunk.subarray(chunk.length - pending)];
    else this.tail.push(chunk);
  }

  /** The bounds this side holds the peer to (in-flight work it has not finished). */
  private overInflight(): boolean {
    return (
      this.inflightRequests >= this.limits.inflightRequestsMax ||
      this.inflightBytes >= this.limits.inflightBytesMax
    );
  }

  private overLimits(): boolean {
    return (
      this.overInflight() ||
      this.writeBlocked ||
      this.responsePendingBytes + this.socket.writableLength >= this.limits.outboundBytesMax
    );
  }

  private maybeResume(): void {
    if (this.closed) return;
    if (this.backlog.length > 0 && !this.readingStopped) this.pump();
    if (
      this.readingStopped ||
      this.backlog.length > 0 ||
      this.overLimits() ||
      this.inboundWaitCancel !== null
    ) {
      return;
    }
    this.socket.resume();
  }

  private dispatch(frame: F): void {
    const slot = new Slot<F>(this, frame, this.limits.requestTimeoutMs);
    this.slots.push(slot);
    this.inflightRequests++;
    let result: Response | null | Promise<Response | null>;
    try {
      const bytes = this.codec.admit(frame);
      slot.frameBytes = bytes;
      this.inflightBytes += bytes;
      result = this.handler(frame, slot);
    } catch (err) {
      this.fail(slot, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (buf) => this.complete(slot, buf),
        (err: unknown) => this.fail(slot, err),
      );
    } else {
      this.complete(slot, result);
    }
  }

  /** A request failed as a whole: the wire's answer, and maybe the end of the connection. */
  private fail(slot: Slot<F>, err: unknown): void {
    if (slot.done) return;
    const error = isStreamBusError(err)
      ? err
      : new StreamBusError(ErrorCode.UNKNOWN_SERVER_ERROR, 'internal error', { cause: err });
    const fields = { remote: this.remote, ...this.codec.logFields(slot.header) };
    if (!isStreamBusError(err)) this.logger.error({ err, ...fields }, 'request failed');
    this.metrics.requestErrors.inc({ api: this.codec.apiName(slot.header), code: error.code });
    const { response, close } = this.codec.failure(slot.header, error);
    if (close) {
      this.logger.warn(
        { ...fields, code: error.code, reason: error.message },
        'closing connection: request refused',
      );
      slot.closeAfter = true;
      this.stopReading();
    }
    this.complete(slot, response);
  }

  private complete(slot: Slot<F>, response: Response | null): void {
    if (slot.done) return; // already answered (timed out), or the connection is gone
    slot.done = true;
    if (PROBE !== null) slot.completedPerfMs = performance.now();
    slot.response = this.codec.expectsResponse(slot.header) ? response : null;
    this.inflightRequests--;
    this.inflightBytes -= slot.frameBytes;
    // The reservation becomes the response itself, counted until written.
    this.responseReservedBytes -= slot.reservedBytes;
    slot.reservedBytes = 0;
    slot.responseBytes = responseLength(slot.response);
    this.responsePendingBytes += slot.responseBytes;
    this.syncOutbound();
    this.scheduleFlush();
  }

  /**
   * Responses finished in the same event-loop turn (a group commit resolves many appends at once)
   * leave in one write: one system call instead of one per response. A nextTick, not a
   * setImmediate: queued from a promise continuation (where handlers answer), it runs once the
   * whole microtask queue has drained, so every response that turn finishes is in the write,
   * and the write does not wait behind every other I/O callback of a busy broker for the check
   * phase (the stage probe measured that wait at p99 7-30 ms at load 10; issue 9, latency).
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
      this.maybeResume();
    });
  }

  /** Writes every finished response at the head of the queue, in order. */
  private flush(): void {
    if (this.closed) return;
    let corked = false;
    while (this.slots.length > 0 && this.slots[0]!.done) {
      const slot = this.slots.shift()!;
      this.responsePendingBytes -= slot.responseBytes;
      slot.responseBytes = 0;
      // A refused stream's closing slot has no request of its own.
      const api = slot.header === null ? 'unknown' : this.codec.apiName(slot.header);
      const m = apiRequestMetrics(this.metrics, api);
      m.requests.inc();
      m.seconds.observe((performance.now() - slot.startPerfMs) / 1000);
      if (PROBE !== null) {
        PROBE.record(`conn.${api}.handle`, slot.completedPerfMs - slot.startPerfMs);
        PROBE.record(`conn.${api}.flushWait`, performance.now() - slot.completedPerfMs);
      }
      if (slot.response !== null) {
        // Cork when more than one buffer leaves now (responses finished in this turn, or one in
        // parts: one writev for them all); a lone one-buffer response is one plain write.
        if (
          !corked &&
          (!Buffer.isBuffer(slot.response) || (this.slots.length > 0 && this.slots[0]!.done))
        ) {
          this.socket.cork();
          corked = true;
        }
        if (Buffer.isBuffer(slot.response)) {
          this.metrics.bytesOut.inc(slot.response.length);
          if (!this.socket.write(slot.response)) this.writeBlocked = true;
        } else {
          const written = (slot.response as WrittenParts).written;
          let left = slot.response.length;
          for (const part of slot.response) {
            this.metrics.bytesOut.inc(part.length);
            const done =
              --left === 0 && written
                ? (err?: Error | null) => {
                    if (!err) written();
                  }
                : undefined;
            if (!this.socket.write(part, done)) this.writeBlocked = true;
          }
        }
      }
      if (slot.closeAfter) {
        if (corked) this.socket.uncork();
        this.syncOutbound();
        this.endSocket();
        return;
      }
    }
    if (corked) this.socket.uncork();
    this.syncOutbound();
    if (this.writeBlocked) this.socket.pause();
    if (this.slots.length === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** The parser refused the stream: answer what is owed, then an ERROR frame, then close. */
  private refuseStream(err: unknown, chunk: Buffer): void {
    const error = isStreamBusError(err)
      ? err
      : new StreamBusError(ErrorCode.MALFORMED_FRAME, 'unreadable frame', { cause: err });
    this.metrics.framesRejected.inc({ code: error.code });
    this.logger.warn(
      { remote: this.remote, code: error.code, reason: error.message },
      'closing connection: bad frame',
    );
    this.stopReading();
    const response = this.codec.refused(Buffer.concat([...this.tail, chunk]), error);
    this.tail = [];
    const slot = new Slot<F>(this, null as F, this.limits.requestTimeoutMs);
    slot.done = true;
    slot.response = response;
    slot.closeAfter = true;
    slot.responseBytes = responseLength(slot.response);
    this.responsePendingBytes += slot.responseBytes;
    this.slots.push(slot);
    this.flush();
  }

  private stopReading(): void {
    this.readingStopped = true;
    this.backlog = [];
    this.releaseInbound();
    this.socket.pause();
  }

  private endSocket(): void {
    if (this.closed) return;
    this.stopReading();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS).unref();
  }

  /** Periodic check: request timeouts and idle reaping. */
  sweep(nowMs: number): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (!slot.done && nowMs - slot.startMs > slot.timeoutMs) {
        const err = new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          `request not answered within ${slot.timeoutMs} ms`,
        );
        this.fail(slot, err);
      }
    }
    if (this.slots.length === 0 && nowMs - this.lastActivityMs > this.limits.idleTimeoutMs) {
      this.logger.debug({ remote: this.remote }, 'closing idle connection');
      this.endSocket();
      return;
    }
    this.syncOutbound();
    this.maybeCloseStalled(nowMs);
    this.maybeCloseUnread(nowMs);
  }

  /**
   * Rule 9: a peer that takes none of its responses for `frameStallTimeoutMs` while bytes wait
   * for it is closed: otherwise a few such readers would hold the outbound budget, and every
   * other consumer would get empty fetches, until the idle timeout.
   */
  private maybeCloseUnread(nowMs: number): void {
    if (this.readingStopped) return;
    const pending = this.socket.writableLength;
    if (pending === 0 || pending < this.writableSeenBytes) this.writeProgressMs = nowMs;
    this.writableSeenBytes = pending;
    if (pending === 0 || nowMs - this.writeProgressMs <= this.limits.frameStallTimeoutMs) return;
    this.metrics.framesRejected.inc({ code: ErrorCode.READER_STALLED });
    this.logger.warn(
      {
        remote: this.remote,
        code: ErrorCode.READER_STALLED,
        unreadBytes: pending,
        frameStallTimeoutMs: this.limits.frameStallTimeoutMs,
      },
      'closing connection: responses not read',
    );
    this.stopReading();
    this.socket.destroy();
  }

  /** Rule 8: an incomplete frame gets `frameStallTimeoutMs` of reading time to finish. */
  private maybeCloseStalled(nowMs: number): void {
    if (this.readingStopped || this.parser.pendingBytes === 0) return;
    if (this.inboundWaitCancel !== null || this.backlog.length > 0 || this.overInflight()) {
      this.partialSinceMs = nowMs; // paused for this side's own bounds: not the peer's stall
      return;
    }
    if (nowMs - this.partialSinceMs <= this.limits.frameStallTimeoutMs) return;
    this.metrics.framesRejected.inc({ code: ErrorCode.FRAME_STALLED });
    this.logger.warn(
      {
        remote: this.remote,
        code: ErrorCode.FRAME_STALLED,
        receivedBytes: this.parser.pendingBytes,
        frameBytes: this.parser.pendingFrameBytes,
        frameStallTimeoutMs: this.limits.frameStallTimeoutMs,
      },
      'closing connection: frame stalled',
    );
    this.stopReading();
    this.socket.destroy();
  }

  /** Graceful close: stop reading, wait (bounded) for in-flight requests to be answered, end. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.stopReading();
    if (this.slots.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.drainWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.abort.abort();
    this.endSocket();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onSocketClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.releaseInbound();
    this.abort.abort();
    for (const slot of this.slots) {
      if (!slot.done) {
        slot.done = true;
        this.inflightRequests--;
        this.inflightBytes -= slot.frameBytes;
      }
    }
    this.slots.length = 0;
    this.responseReservedBytes = 0;
    this.responsePendingBytes = 0;
    this.syncOutbound();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
    this.onClosed(this);
  }
}
