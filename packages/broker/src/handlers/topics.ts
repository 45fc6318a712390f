// The topic admin APIs: CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs. Each change
// runs in the admin queue; the topic registry does the work. Answers are per topic.
import {
  type AlterConfigsRequest,
  type AlterConfigsResponse,
  type CreateTopicsRequest,
  type CreateTopicsResponse,
  type DeleteTopicsRequest,
  type DeleteTopicsResponse,
  type DescribeConfigsRequest,
  type DescribeConfigsResponse,
  ErrorCode,
  StreamBusError,
} from '@streambus/protocol';
import { checkTopicName, describeTopicConfig } from '../topic-config.js';
import {
  clusterAlterConfigs,
  clusterCreateTopics,
  clusterDeleteTopics,
  clusterDescribeConfigs,
} from './cluster-admin.js';
import { type BrokerContext, localTopics } from './context.js';
import { partitionError } from './errors.js';

export async function createTopics(
  b: BrokerContext,
  req: CreateTopicsRequest,
): Promise<CreateTopicsResponse> {
  if (b.cluster !== null) return clusterCreateTopics(b, b.cluster, req);
  const registry = localTopics(b);
  const topics: CreateTopicsResponse['topics'] = [];
  for (const t of req.topics) {
    try {
      checkTopicName(t.name);
      const partitions = t.partitions === -1 ? b.config.defaults.partitions : t.partitions;
      if (partitions < 1) {
        throw new StreamBusError(
          ErrorCode.INVALID_PARTITIONS,
          `partitions must be at least 1, got ${partitions}`,
        );
      }
      if (t.replicationFactor !== -1 && t.replicationFactor !== 1) {
        throw new StreamBusError(
          ErrorCode.INVALID_REPLICATION_FACTOR,
          `replication factor ${t.replicationFactor} needs more brokers: this cluster has 1 (use 1 or -1)`,
        );
      }
      registry.checkNew(t.name, partitions, t.configs);
      if (req.validateOnly) {
        if (registry.has(t.name)) {
          throw new StreamBusError(
            ErrorCode.TOPIC_ALREADY_EXISTS,
            `topic ${t.name} already exists`,
          );
        }
      } else {
        await b.admin.run(() => registry.create(t.name, partitions, t.configs));
      }
      topics.push({ errorCode: 0, name: t.name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: t.name }), name: t.name });
    }
  }
  return { topics };
}

export async function deleteTopics(
  b: BrokerContext,
  req: DeleteTopicsRequest,
): Promise<DeleteTopicsResponse> {
  if (b.cluster !== null) return clusterDeleteTopics(b, b.cluster, req);
  const registry = localTopics(b);
  const topics: DeleteTopicsResponse['topics'] = [];
  for (const name of req.topics) {
    try {
      await b.admin.run(() => registry.delete(name));
      topics.push({ errorCode: 0, name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: name }), name });
    }
  }
  return { topics };
}

export function describeConfigs(
  b: BrokerContext,
  req: DescribeConfigsRequest,
): DescribeConfigsResponse {
  if (b.cluster !== null) return clusterDescribeConfigs(b.cluster, req);
  const registry = localTopics(b);
  return {
    topics: req.topics.map((name) => {
      const t = registry.get(name);
      if (t === undefined) {
        return {
          errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          errorMessage: `unknown topic ${name}`,
          name,
          configs: [],
        };
      }
      const configs = [
        {
          name: 'partitions',
          value: String(t.record.partitions),
          isDefault: false,
          readOnly: true,
        },
        ...describeTopicConfig(t.config, t.record.overrides),
      ];
      return { errorCode: 0, name, configs };
    }),
  };
}

export async function alterConfigs(
  b: BrokerContext,
  req: AlterConfigsRequest,
): Promise<AlterConfigsResponse> {
  if (b.cluster !== null) return clusterAlterConfigs(b, b.cluster, req);
  const registry = localTopics(b);
  const topics: AlterConfigsResponse['topics'] = [];
  for (const change of req.topics) {
    try {
      await b.admin.run(() =>
        registry.alterConfigs(change.name, change.configs, req.validateOnly ?? false),
      );
      topics.push({ errorCode: 0, name: change.name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: change.name }), name: change.name });
    }
  }
  return { topics };
}
