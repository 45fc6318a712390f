// The topic admin APIs: CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs,
// CreatePartitions, answered per topic. The work is a `TopicAdmin`'s: the controller's, forwarded to its leader
// (`clusterTopicAdmin`, cluster-admin.ts), also on a cluster of one.
import {
  type AlterConfigsRequest,
  type AlterConfigsResponse,
  type CreatePartitionsRequest,
  type CreatePartitionsResponse,
  type CreateTopicsRequest,
  type CreateTopicsResponse,
  type DeleteTopicsRequest,
  type DeleteTopicsResponse,
  type DescribeConfigsRequest,
  type DescribeConfigsResponse,
  ErrorCode,
  StreamBusError,
} from '@streambus/protocol';
import { checkClientTopic } from '../groups/offsets-topic.js';
import {
  checkTopicName,
  describeTopicConfig,
  type TopicConfig,
  type TopicOverrides,
} from '../topic-config.js';
import { clusterTopicAdmin } from './cluster-admin.js';
import type { BrokerContext } from './context.js';
import { partitionError } from './errors.js';

export interface TopicAdmin {
  /** The checks of a creation beyond name and partition count (throws typed errors). */
  checkNew(
    name: string,
    partitions: number,
    replicationFactor: number,
    configs: TopicOverrides,
  ): void;
  exists(name: string): boolean;
  create(
    name: string,
    partitions: number,
    replicationFactor: number,
    configs: TopicOverrides,
  ): Promise<void>;
  delete(name: string): Promise<void>;
  describe(
    name: string,
  ): { partitions: number; config: TopicConfig; overrides: TopicOverrides } | undefined;
  alter(
    name: string,
    changes: Readonly<Record<string, string | null>>,
    validateOnly: boolean,
  ): Promise<void>;
  /** CreatePartitions: `name` grows to `count` (assignments: one replica list per new one). */
  addPartitions(
    name: string,
    count: number,
    assignments: readonly (readonly number[])[] | null,
    validateOnly: boolean,
  ): Promise<void>;
}

function topicAdmin(b: BrokerContext): TopicAdmin {
  return clusterTopicAdmin(b, b.cluster);
}

export async function createTopics(
  b: BrokerContext,
  req: CreateTopicsRequest,
): Promise<CreateTopicsResponse> {
  const admin = topicAdmin(b);
  const topics: CreateTopicsResponse['topics'] = [];
  for (const t of req.topics) {
    try {
      checkTopicName(t.name);
      checkClientTopic(t.name, 'create');
      const partitions = t.partitions === -1 ? b.config.defaults.partitions : t.partitions;
      if (partitions < 1) {
        throw new StreamBusError(
          ErrorCode.INVALID_PARTITIONS,
          `partitions must be at least 1, got ${partitions}`,
        );
      }
      admin.checkNew(t.name, partitions, t.replicationFactor, t.configs);
      if (req.validateOnly) {
        if (admin.exists(t.name)) {
          throw new StreamBusError(
            ErrorCode.TOPIC_ALREADY_EXISTS,
            `topic ${t.name} already exists`,
          );
        }
      } else {
        await admin.create(t.name, partitions, t.replicationFactor, t.configs);
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
  const admin = topicAdmin(b);
  const topics: DeleteTopicsResponse['topics'] = [];
  for (const name of req.topics) {
    try {
      checkClientTopic(name, 'delete');
      await admin.delete(name);
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
  const admin = topicAdmin(b);
  return {
    topics: req.topics.map((name) => {
      const t = admin.describe(name);
      if (t === undefined) {
        return {
          errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          errorMessage: `unknown topic ${name}`,
          name,
          configs: [],
        };
      }
      const configs = [
        { name: 'partitions', value: String(t.partitions), isDefault: false, readOnly: true },
        ...describeTopicConfig(t.config, t.overrides),
      ];
      return { errorCode: 0, name, configs };
    }),
  };
}

export async function alterConfigs(
  b: BrokerContext,
  req: AlterConfigsRequest,
): Promise<AlterConfigsResponse> {
  const admin = topicAdmin(b);
  const topics: AlterConfigsResponse['topics'] = [];
  for (const change of req.topics) {
    try {
      checkClientTopic(change.name, 'alter the configs of');
      await admin.alter(change.name, change.configs, req.validateOnly ?? false);
      topics.push({ errorCode: 0, name: change.name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: change.name }), name: change.name });
    }
  }
  return { topics };
}

/**
 * CreatePartitions (native key 40, and Kafka's through kafka/handlers.ts): each topic grows to
 * its count through the controller's `add-partitions` record (controller/add-partitions.ts);
 * the internal `__consumer_offsets` is refused (its partition count places the groups).
 */
export async function createPartitions(
  b: BrokerContext,
  req: CreatePartitionsRequest,
): Promise<CreatePartitionsResponse> {
  const admin = topicAdmin(b);
  const topics: CreatePartitionsResponse['topics'] = [];
  for (const t of req.topics) {
    try {
      checkClientTopic(t.name, 'add partitions to');
      await admin.addPartitions(t.name, t.count, t.assignments, req.validateOnly ?? false);
      topics.push({ errorCode: 0, name: t.name });
    } catch (err) {
      topics.push({ ...partitionError(b, err, { topic: t.name }), name: t.name });
    }
  }
  return { topics };
}
