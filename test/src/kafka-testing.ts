// Shared by the Kafka-client tests: an in-process cluster-path broker with the Kafka listener
// on an ephemeral port, and kafkajs compression codecs for snappy, lz4 and zstd built on the
// protocol package's own compressors (kafkajs 2.2.4 ships gzip only, kafka-protocol.md §8.8).
import { Broker, defaultConfig } from '@streambus/broker';
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
export async function startKafkaBroker(dataDir: string): Promise<Broker> {
  const broker = await Broker.start({
    ...defaultConfig(),
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: (process.env.SB_TEST_LOG as 'info' | undefined) ?? 'silent',
    kafka: { listen: { host: '127.0.0.1', port: 0 }, advertised: null, brokers: [] },
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
