// The metadata and topic admin side of a broker in a replicated cluster: answers come from the
// controller's applied state on this broker, changes are forwarded to the controller leader
// (cluster-node.ts), and their effect on this broker's replicas arrives through the applied log,
// never inline here.
import {
  ErrorCode,
  isStreamBusError,
  type MetadataRequest,
  type MetadataResponse,
  StreamBusError,
} from '@streambus/protocol';
import type { ClusterNode } from '../cluster-node.js';
import { topicByName } from '../controller/metadata-state.js';
import { isInternalTopic } from '../groups/offsets-topic.js';
import { checkTopicName, mergeOverrides, resolveTopicConfig } from '../topic-config.js';
import type { BrokerContext } from './context.js';
import { partitionError } from './errors.js';
import type { TopicAdmin } from './topics.js';

function overridesOf(c: ClusterNode, name: string): Record<string, string> | undefined {
  const t = topicByName(c.state, name);
  if (t === undefined) return undefined;
  return Object.fromEntries(t.configs.map((e) => [e.key, e.value]));
}

export function clusterTopicAdmin(b: BrokerContext, c: ClusterNode): TopicAdmin {
  const resolve = (overrides: Record<string, string>) =>
    resolveTopicConfig(b.config.defaults, overrides, b.config.limits.frameBytesMax);
  return {
    // The replication factor and the spread are the controller's to check.
    checkNew: (_name, _partitions, _rf, configs) => void resolve(configs),
    exists: (name) => topicByName(c.state, name) !== undefined,
    create: (name, partitions, rf, configs) => c.createTopic(name, partitions, rf, configs),
    delete: (name) => c.deleteTopic(name),
    describe: (name) => {
      const t = topicByName(c.state, name);
      const overrides = overridesOf(c, name);
      if (t === undefined || overrides === undefined) return undefined;
      return { partitions: t.partitions.length, config: c.topicConfig(t.configs), overrides };
    },
    alter: async (name, changes, validateOnly) => {
      const current = overridesOf(c, name);
      if (current === undefined) {
        throw new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic ${name}`);
      }
      resolve(mergeOverrides(current, changes));
      if (!validateOnly) await c.alterTopicConfig(name, changes);
    },
  };
}

export async function clusterMetadata(
  b: BrokerContext,
  c: ClusterNode,
  req: MetadataRequest,
): Promise<MetadataResponse> {
  const failed = new Map<string, MetadataResponse['topics'][number]>();
  if (req.topics !== null && b.config.autoCreateTopics && req.allowAutoTopicCreation !== false) {
    for (const name of req.topics) {
      if (topicByName(c.state, name) !== undefined || isInternalTopic(name)) continue;
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
