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
import { heldReplicas } from '../cluster-view.js';
import { planAddPartitions } from '../controller/add-partitions.js';
import { topicByName } from '../controller/metadata-state.js';
import { isInternalTopic } from '../groups/offsets-topic.js';
import { checkPartitionLimits } from '../partition-limits.js';
import { REOPENING_REASON } from '../replicated-partition.js';
import { checkTopicName, mergeOverrides, resolveTopicConfig } from '../topic-config.js';
import type { BrokerContext } from './context.js';
import { ERROR_MESSAGE_LENGTH_MAX, partitionError } from './errors.js';
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
    // The replication factor and the spread are the controller's to check. The partition limits
    // are checked here, on the receiving broker, against the replicas this broker holds, as if
    // every new partition were placed on it (exact for a cluster of one, an upper bound else).
    checkNew: (name, partitions, _rf, configs) => {
      resolve(configs);
      const held = heldReplicas(c.state, b.config.nodeId).length;
      checkPartitionLimits(b.config.limits, name, partitions, held);
    },
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
    // The controller's own checks, made here on the applied state first (so validateOnly answers
    // what a real request would), then the limits as for a creation: the new count against
    // partitionsPerTopicMax, the partitions added against partitionsMax (an upper bound, as if
    // every new one were placed on this broker).
    addPartitions: async (name, count, assignments, validateOnly) => {
      planAddPartitions(c.state, { name, count, assignments });
      const had = topicByName(c.state, name)?.partitions.length ?? 0;
      const { partitionsPerTopicMax, partitionsMax } = b.config.limits;
      checkPartitionLimits({ partitionsPerTopicMax, partitionsMax: Infinity }, name, count, 0);
      const held = heldReplicas(c.state, b.config.nodeId).length;
      checkPartitionLimits(
        { partitionsPerTopicMax: Infinity, partitionsMax },
        name,
        count - had,
        held,
      );
      if (!validateOnly) await c.addPartitions(name, count, assignments);
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
  const answer = withLocalOffline(b, c.metadata(req.topics));
  if (failed.size === 0) return answer;
  return { ...answer, topics: answer.topics.map((t) => failed.get(t.name) ?? t) };
}

/**
 * A partition this broker leads (by the state) whose replica here is offline answers
 * KAFKA_STORAGE_ERROR with the reason, as its produce and fetch do: the state cannot know of a
 * local log failure, and a client routed here would otherwise retry a broken log forever. A
 * replica reopening for a config change is not reported: it is back in moments, produce waits
 * for it and fetch answers a retriable NOT_LEADER_OR_FOLLOWER meanwhile (Kafka clients such as
 * kafkajs fail a whole metadata refresh on KAFKA_STORAGE_ERROR).
 */
function withLocalOffline(b: BrokerContext, answer: MetadataResponse): MetadataResponse {
  const self = b.config.nodeId;
  let changed = false;
  const topics = answer.topics.map((t) => {
    if (t.errorCode !== 0) return t;
    const partitions = t.partitions.map((p) => {
      // Led here, or leaderless with this broker its only replica (a cluster of one after a
      // restart: an offline replica never reports itself leader).
      const local =
        p.leaderId === self ||
        (p.leaderId === -1 && p.replicas.length === 1 && p.replicas[0] === self);
      const offline = local ? b.replicas.find(t.name, p.partition)?.offline : null;
      if (offline === null || offline === undefined || offline.reason === REOPENING_REASON) {
        return p;
      }
      changed = true;
      return {
        ...p,
        errorCode: ErrorCode.KAFKA_STORAGE_ERROR,
        errorMessage: `offline: ${offline.reason}`.slice(0, ERROR_MESSAGE_LENGTH_MAX),
      };
    });
    return { ...t, partitions };
  });
  return changed ? { ...answer, topics } : answer;
}
