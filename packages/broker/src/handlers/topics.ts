// The topic admin APIs: CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs, answered per
// topic. The work is a `TopicAdmin`'s: on a single-node broker the topic registry's, run in the
// admin queue (`localTopicAdmin`); on a cluster broker the controller's, forwarded to its
// leader (`clusterTopicAdmin`, cluster-admin.ts).
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
import { checkClientTopic } from '../groups/offsets-topic.js';
import {
  checkTopicName,
  describeTopicConfig,
  type TopicConfig,
  type TopicOverrides,
} from '../topic-config.js';
import type { TopicRegistry } from '../topic-registry.js';
import { clusterTopicAdmin } from './cluster-admin.js';
import { type BrokerContext, localTopics } from './context.js';
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
}

function localTopicAdmin(b: BrokerContext, registry: TopicRegistry): TopicAdmin {
  return {
    checkNew: (name, partitions, replicationFactor, configs) => {
      if (replicationFactor !== -1 && replicationFactor !== 1) {
        throw new StreamBusError(
          ErrorCode.INVALID_REPLICATION_FACTOR,
          `replication factor ${replicationFactor} needs more brokers: this cluster has 1 (use 1 or -1)`,
        );
      }
      registry.checkNew(name, partitions, configs);
    },
    exists: (name) => registry.has(name),
    create: (name, partitions, _rf, configs) =>
      b.admin.run(() => registry.create(name, partitions, configs)),
    delete: (name) => b.admin.run(() => registry.delete(name)),
    describe: (name) => {
      const t = registry.get(name);
      return (
        t && { partitions: t.record.partitions, config: t.config, overrides: t.record.overrides }
      );
    },
    alter: (name, changes, validateOnly) =>
      b.admin.run(() => registry.alterConfigs(name, changes, validateOnly)),
  };
}

function topicAdmin(b: BrokerContext): TopicAdmin {
  return b.cluster !== null ? clusterTopicAdmin(b, b.cluster) : localTopicAdmin(b, localTopics(b));
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
