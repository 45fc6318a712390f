// A raw Kafka-protocol client for tests and the `kafka` bench: frames requests with the
// protocol package's Kafka codec, matches answers by correlation id (answers come in request
// order), and exposes the socket so tests can send garbage. Deliberately minimal: no retries,
// no metadata, no batching. Not for production use.
import { connect, type Socket } from 'node:net';
import { kafka } from '@streambus/protocol';

type Name = kafka.ApiKeyName;

export class KafkaRawClient {
  private readonly parser = new kafka.KafkaFrameParser({
    frameBytesMax: 256 * 1024 * 1024,
    frameBytesMin: 4,
  });
  private readonly pending: Array<{
    readonly id: number;
    readonly resolve: (frame: Buffer) => void;
    readonly reject: (e: Error) => void;
  }> = [];
  private nextId = 1;
  readonly closed: Promise<void>;

  private constructor(
    readonly socket: Socket,
    readonly clientId: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.parser.push(chunk)) {
        const id = frame.readInt32BE(0);
        const i = this.pending.findIndex((p) => p.id === id);
        if (i >= 0) this.pending.splice(i, 1)[0]!.resolve(frame);
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('close', () => {
      for (const p of this.pending.splice(0)) p.reject(new Error('connection closed'));
    });
    socket.on('error', () => {});
  }

  static connect(port: number, clientId = 'kafka-raw-client'): Promise<KafkaRawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      socket.once('connect', () => resolve(new KafkaRawClient(socket, clientId)));
      socket.once('error', reject);
    });
  }

  /** Sends an encoded request frame (size prefix included) and returns the answer frame. */
  sendFrame(frame: Buffer, correlationId: number): Promise<Buffer> {
    if (this.socket.destroyed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ id: correlationId, resolve, reject });
      this.socket.write(frame);
    });
  }

  /** Encodes a request at `version` (the next correlation id) without sending it. */
  encode<N extends Name>(
    name: N,
    version: number,
    body: kafka.RequestOf<N>,
  ): {
    frame: Buffer;
    correlationId: number;
  } {
    const correlationId = this.nextId++;
    const frame = kafka.encodeRequest(
      name,
      { apiVersion: version, correlationId, clientId: this.clientId },
      body,
    );
    return { frame, correlationId };
  }

  /** Sends a request and decodes its answer. */
  async request<N extends Name>(
    name: N,
    version: number,
    body: kafka.RequestOf<N>,
  ): Promise<kafka.ResponseOf<N>> {
    const { frame, correlationId } = this.encode(name, version, body);
    const answer = await this.sendFrame(frame, correlationId);
    return kafka.decodeResponse(name, version, answer).body;
  }

  /** Fetch v11 of one partition from `offset` (no session, read_uncommitted unless asked). */
  async fetchPartition(
    topic: string,
    partition: number,
    offset: number,
    options: { maxWaitMs?: number; partitionMaxBytes?: number; isolationLevel?: number } = {},
  ): Promise<kafka.ResponseOf<'Fetch'>['responses'][number]['partitions'][number]> {
    const partitionMaxBytes = options.partitionMaxBytes ?? 1 << 20;
    const r = await this.request('Fetch', 11, {
      replicaId: -1,
      maxWaitMs: options.maxWaitMs ?? 0,
      minBytes: 1,
      maxBytes: Math.max(partitionMaxBytes, 1 << 20),
      isolationLevel: options.isolationLevel ?? 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [
        {
          topic,
          partitions: [
            {
              partition,
              currentLeaderEpoch: -1,
              fetchOffset: offset,
              logStartOffset: -1,
              partitionMaxBytes,
            },
          ],
        },
      ],
      forgottenTopicsData: [],
      rackId: '',
    });
    return r.responses[0]!.partitions[0]!;
  }

  /** Writes a request that gets no answer (Produce acks=0). */
  send<N extends Name>(name: N, version: number, body: kafka.RequestOf<N>): void {
    this.socket.write(this.encode(name, version, body).frame);
  }

  close(): Promise<void> {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    return this.closed;
  }
}

/**
 * @platformatic/kafka declares Node >= 22 and needs one built-in from it, Promise.withResolvers;
 * on an older Node its tests and bench rows provide it with this (a shim of the standard
 * function, not a change to the library's protocol code).
 */
export function providePromiseWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: () => unknown };
  if (P.withResolvers !== undefined) return;
  P.withResolvers = () => {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
}
