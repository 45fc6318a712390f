// ApiVersions, Metadata and DescribeCluster: what this broker speaks, and the topics, partitions and brokers a
// client routes by. Single node: this broker leads every partition, epoch 0.
import {
  API_VERSION_RANGES,
  type DescribeClusterResponse,
  ErrorCode,
  isStreamBusError,
  type MetadataRequest,
  type MetadataResponse,
} from '@streambus/protocol';
import { describeClusterOfOne } from '../describe-cluster.js';
import { checkTopicName } from '../topic-config.js';
import { BROKER_VERSION } from '../version.js';
import { clusterMetadata } from './cluster-admin.js';
import { type BrokerContext, localTopics } from './context.js';
import { ERROR_MESSAGE_LENGTH_MAX, partitionError } from './errors.js';

export function apiVersions(b: BrokerContext) {
  return {
    errorCode: 0,
    apis: Object.entries(API_VERSION_RANGES).map(([k, r]) => ({
      apiKey: Number(k),
      minVersion: r.min,
      maxVersion: r.max,
    })),
    brokerVersion: BROKER_VERSION,
    nodeId: b.config.nodeId,
  };
}

export async function metadata(b: BrokerContext, req: MetadataRequest): Promise<MetadataResponse> {
  if (b.cluster !== null) return clusterMetadata(b, b.cluster, req);
  const registry = localTopics(b);
  const names = req.topics ?? registry.names();
  const topics: MetadataResponse['topics'] = [];
  for (const name of names) {
    let t = registry.get(name);
    if (
      t === undefined &&
      req.topics !== null &&
      b.config.autoCreateTopics &&
      req.allowAutoTopicCreation !== false
    ) {
      try {
        checkTopicName(name);
        await b.admin.run(() => registry.create(name, b.config.defaults.partitions, {}));
      } catch (err) {
        if (!isStreamBusError(err, ErrorCode.TOPIC_ALREADY_EXISTS)) {
          topics.push({ ...partitionError(b, err, { topic: name }), name, partitions: [] });
          continue;
        }
      }
      t = registry.get(name);
    }
    if (t === undefined) {
      topics.push({
        errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        errorMessage: `unknown topic ${name}`,
        name,
        partitions: [],
      });
      continue;
    }
    const id = b.config.nodeId;
    topics.push({
      errorCode: 0,
      name,
      partitions: b.replicas.ofTopic(name).map((p) => ({
        ...(p.offline === null
          ? { errorCode: 0 }
          : {
              errorCode: ErrorCode.KAFKA_STORAGE_ERROR,
              errorMessage: `offline: ${p.offline.reason}`.slice(0, ERROR_MESSAGE_LENGTH_MAX),
            }),
        partition: p.index,
        leaderId: id,
        leaderEpoch: 0,
        replicas: [id],
        isr: [id],
      })),
    });
  }
  const address = b.advertised();
  return {
    clusterId: registry.clusterId,
    controllerId: b.config.nodeId,
    brokers: [{ nodeId: b.config.nodeId, host: address.host, port: address.port, rack: null }],
    topics,
  };
}

export function describeCluster(b: BrokerContext): DescribeClusterResponse {
  if (b.cluster !== null) return b.cluster.describeCluster();
  const address = b.advertised();
  return describeClusterOfOne({
    clusterId: localTopics(b).clusterId,
    nodeId: b.config.nodeId,
    host: address.host,
    port: address.port,
    partitions: b.replicas.count(),
  });
}
