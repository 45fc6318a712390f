// The Kafka wire codec (exported from the protocol package as the `kafka` namespace): primitives,
// framing, the request/response layouts of every covered API, the advertised version table and
// the StreamBus-to-Kafka error map. Pure: no sockets, no clocks. See docs/kafka-protocol-codec.md.
export * from './apis.js';
export * from './error-map.js';
export * from './frame.js';
export { KafkaReader, TAGGED_FIELDS_MAX, type TaggedField } from './reader.js';
export * as schema from './schema.js';
export * from './versions.js';
export { type Int32Slot, KafkaWriter, RAW_INLINE_BYTES_MAX } from './writer.js';
