// The metadata and topic admin APIs of a broker in a replicated cluster: answers come from the
// controller's applied state on this broker, changes are forwarded to the controller leader
// (cluster-node.ts), and their effect on this broker's replicas arrives through the applied log,
// never inline here. Per-topic failures are answered in that topic's entry.
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
  isStreamBusError,
  type MetadataRequest,
  type MetadataResponse,
  StreamBusError,
} from '@streambus/protocol';
import type { ClusterNode } from '../cluster-node.js';
import { topicByName } from '../controller/metadata-state.js';
import {
  checkTopicName,
  describeTopicConfig,
  mergeOverrides,
  resolveTopicConfig,
} from '../topic-config.js';
import type { BrokerContext } from './context.js';
import { partitionError } from './errors.js';

function overridesOf(c: ClusterNode, name: string): Record<string, string> | undefined {
  const t = topicByName(c.state, name);
  if (t === undefined) return undefined;
  return Object.fromEntries(t.configs.map((e) => [e.key, e.value]));
}

export async function clusterMetadata(
  b: BrokerContext,
  c: ClusterNode,
  req: MetadataRequest,
): Promise<MetadataResponse> {
  const failed = new Map<string, MetadataResponse['topics'][number]>();
  if (req.topics !== null && b.config.autoCreateTopics && req.allowAutoTopicCreation !== false) {
    for (const name of req.topics) {
      if (topicByName(c.state, name) !== undefined) continue;
      try {
        checkTopicName(name);
        await c.createTopic(name, b.config.defaults.partitions, -1, {});
      } catch (err) {
        if (!isStreamBusError(err, ErrorCode.TOPIC_ALREADY_EXISTS)) {
          failed.set(name, { ...partitionError(b, err, { topic: name }), name, partitions: [] });
        }
      }
    }
  }
  const answer = c.metadata(req.topics);
  if (failed.size === 0) return answer;
  return { ...answer, topics: answer.topics.map((t) => failed.get(t.name) ?? t) };
}

export async function clusterCreateTopics(
  b: BrokerContext,
  c: ClusterNode,
  req: CreateTopicsRequest,
): Promise<CreateTopicsResponse> {
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
      resolveTopicConfig(b.config.defaults, t.configs, b.config.limits.frameBytesMax);
      if (req.validateOnly) {
        if (topicByName(c.state, t.name) !== undefined) {
          throw new StreamBusError(
            ErrorCode.TOPIC_ALREADY_EXISTS,
            `topic ${t.name} already exists`,
          );
        }
      } else {
        await c.createTopic(t.name, partitions, t.replicationFactor, t.configs);
      }
      topics.push({ errorCode: 0, name: t.name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: t.name }), name: t.name });
    }
  }
  return { topics };
}

export async function clusterDeleteTopics(
  b: BrokerContext,
  c: ClusterNode,
  req: DeleteTopicsRequest,
): Promise<DeleteTopicsResponse> {
  const topics: DeleteTopicsResponse['topics'] = [];
  for (const name of req.topics) {
    try {
      await c.deleteTopic(name);
      topics.push({ errorCode: 0, name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: name }), name });
    }
  }
  return { topics };
}

export function clusterDescribeConfigs(
  c: ClusterNode,
  req: DescribeConfigsRequest,
): DescribeConfigsResponse {
  return {
    topics: req.topics.map((name) => {
      const t = topicByName(c.state, name);
      if (t === undefined) {
        return {
          errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          errorMessage: `unknown topic ${name}`,
          name,
          configs: [],
        };
      }
      const overrides = Object.fromEntries(t.configs.map((e) => [e.key, e.value]));
      const configs = [
        {
          name: 'partitions',
          value: String(t.partitions.length),
          isDefault: false,
          readOnly: true,
        },
        ...describeTopicConfig(c.topicConfig(t.configs), overrides),
      ];
      return { errorCode: 0, name, configs };
    }),
  };
}

export async function clusterAlterConfigs(
  b: BrokerContext,
  c: ClusterNode,
  req: AlterConfigsRequest,
): Promise<AlterConfigsResponse> {
  const topics: AlterConfigsResponse['topics'] = [];
  for (const change of req.topics) {
    try {
      const current = overridesOf(c, change.name);
      if (current === undefined) {
        throw new StreamBusError(
          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          `unknown topic ${change.name}`,
        );
      }
      const merged = mergeOverrides(current, change.configs);
      resolveTopicConfig(b.config.defaults, merged, b.config.limits.frameBytesMax);
      if (!req.validateOnly) await c.alterTopicConfig(change.name, change.configs);
      topics.push({ errorCode: 0, name: change.name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: change.name }), name: change.name });
    }
  }
  return { topics };
}
