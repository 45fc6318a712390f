// Shared by the Kafka-client tests: an in-process cluster-path broker with the Kafka listener
// on an ephemeral port, and kafkajs compression codecs for snappy, lz4 and zstd built on the
// protocol package's own compressors (kafkajs 2.2.4 ships gzip only, kafka-protocol.md §8.8).

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker, defaultConfig, type HostPort } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { Compression, compress, decompress, zstdCanCompress } from '@streambus/protocol';
import { CompressionCodecs, CompressionTypes } from 'kafkajs';

/** Waits until every broker the native `bootstrap` knows is live (registered and unfenced). */
export async function waitClusterLive(bootstrap: string, timeoutMs = 20_000): Promise<void> {
  const client = new StreamBusClient({ bootstrap });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const d = await client
        .admin()
        .describeCluster()
        .catch(() => null);
      if (
        d !== null &&
        d.controllerId > 0 &&
        d.brokers.length > 0 &&
        d.brokers.every((b) => b.live)
      ) {
        return;
      }
      if (Date.now() > deadline) throw new Error(`the cluster at ${bootstrap} is not live`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await client.close();
  }
}

/** A cluster of one on the cluster path with its Kafka listener, live (it accepts topics). */
export async function startKafkaBroker(
  dataDir: string,
  advertised: HostPort | null = null,
): Promise<Broker> {
  const broker = await Broker.start({
    ...defaultConfig(),
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: (process.env.SB_TEST_LOG as 'info' | undefined) ?? 'silent',
    kafka: { listen: { host: '127.0.0.1', port: 0 }, advertised, brokers: [] },
    // Small and quick for tests: few __consumer_offsets partitions, a short first rebalance.
    groups: {
      ...defaultConfig().groups,
      offsetsTopicPartitions: 2,
      offsetsTopicReplicationFactor: 1,
      initialRebalanceDelayMs: 100,
    },
  });
  await waitClusterLive(`127.0.0.1:${broker.address.port}`);
  return broker;
}

function codec(id: number) {
  return () => ({
    compress: async (encoder: { buffer: Buffer }) => compress(id, encoder.buffer),
    decompress: async (buffer: Buffer) => decompress(id, buffer),
  });
}

/** Registers snappy, lz4 and (where this Node has it) zstd with kafkajs; returns the codecs. */
export function kafkajsCodecs(): CompressionTypes[] {
  CompressionCodecs[CompressionTypes.Snappy] = codec(Compression.SNAPPY);
  CompressionCodecs[CompressionTypes.LZ4] = codec(Compression.LZ4);
  const out = [
    CompressionTypes.None,
    CompressionTypes.GZIP,
    CompressionTypes.Snappy,
    CompressionTypes.LZ4,
  ];
  if (zstdCanCompress) {
    CompressionCodecs[CompressionTypes.ZSTD] = codec(Compression.ZSTD);
    out.push(CompressionTypes.ZSTD);
  }
  return out;
}

/** Splits a Kafka byte stream into frames (size prefix included). */
function kafkaFrames(): (chunk: Buffer) => Buffer[] {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const out: Buffer[] = [];
    while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
      const n = 4 + pending.readInt32BE(0);
      out.push(pending.subarray(0, n));
      pending = pending.subarray(n);
    }
    return out;
  };
}

/**
 * A loopback TCP proxy in front of a Kafka listener that, when armed, forwards the next Produce
 * request but drops that connection instead of forwarding its answer: the broker has written
 * the batch, the client never hears so and retries on a new connection. The broker must
 * advertise the proxy's address so every client connection runs through it.
 */
export class DroppingKafkaProxy {
  /** How many Produce answers were dropped. */
  dropped = 0;
  private armed = 0;
  private target: HostPort | null = null;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<DroppingKafkaProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new DroppingKafkaProxy(server, (server.address() as { port: number }).port);
    server.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  /** Where connections go (the Kafka listener's bound address). */
  forwardTo(target: HostPort): void {
    this.target = target;
  }

  /** Drops the answer of the next `n` Produce requests. */
  dropNextProduce(n = 1): void {
    this.armed += n;
  }

  private accept(client: Socket): void {
    if (this.target === null) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', kill);
    upstream.on('close', kill);
    // Correlation ids of Produce requests whose answers this connection drops.
    const doomed = new Set<number>();
    const fromClient = kafkaFrames();
    client.on('data', (chunk: Buffer) => {
      for (const f of fromClient(chunk)) {
        if (f.length >= 12 && f.readInt16BE(4) === 0 && this.armed > 0) {
          this.armed--;
          doomed.add(f.readInt32BE(8));
        }
        upstream.write(f);
      }
    });
    const fromBroker = kafkaFrames();
    upstream.on('data', (chunk: Buffer) => {
      for (const f of fromBroker(chunk)) {
        if (f.length >= 8 && doomed.has(f.readInt32BE(4))) {
          this.dropped++;
          kill();
          return;
        }
        client.write(f);
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Runs `body` against a broker of its own that advertises a DroppingKafkaProxy (so every Kafka
 * client connection runs through it), with a native client; cleans up all of it afterwards.
 */
export async function withDroppingProxy(
  body: (o: {
    proxy: DroppingKafkaProxy;
    broker: Broker;
    native: StreamBusClient;
  }) => Promise<void>,
): Promise<void> {
  const proxy = await DroppingKafkaProxy.start();
  const dir = mkdtempSync(join(tmpdir(), 'sb-kafka-drop-'));
  let broker: Broker | null = null;
  let native: StreamBusClient | null = null;
  try {
    broker = await startKafkaBroker(dir, { host: '127.0.0.1', port: proxy.port });
    proxy.forwardTo(broker.kafkaAddress!);
    native = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
    await body({ proxy, broker, native });
  } finally {
    await native?.close();
    await broker?.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The values of a topic read from earliest with the native SDK: until `count` arrived (or
 * `timeoutMs`), then one more poll, so a duplicate after the last one would show.
 */
export async function nativeValues(
  native: StreamBusClient,
  topic: string,
  count: number,
  timeoutMs = 10_000,
): Promise<Array<string | null>> {
  const consumer = native.consumer({ maxWaitMs: 100 });
  const got: Array<string | null> = [];
  const take = async () => {
    for (const b of await consumer.poll()) {
      for (const r of b.records)
        got.push(r.value === null ? null : Buffer.from(r.value).toString());
    }
  };
  try {
    await consumer.assign({ topic, from: 'earliest' });
    const deadline = Date.now() + timeoutMs;
    while (got.length < count && Date.now() < deadline) await take();
    await take();
  } finally {
    await consumer.close();
  }
  return got;
}
