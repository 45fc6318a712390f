// The Kafka wire-protocol listener (docs/kafka-listener.md): what tests and benches use.
export { isAdvertised, KAFKA_LISTENER_RANGES } from './advertised.js';
export { KafkaRawClient, providePromiseWithResolvers } from './kafka-raw-client.js';
export { admitKafkaFrame, type KafkaFrame, kafkaWire, peekClientId } from './kafka-wire.js';
