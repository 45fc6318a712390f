// The Kafka APIs, each translated into the request of the native handler family that does the
// same work (handlers/*.ts) and its answer translated back: produce, fetch, offsets, topics and
// configs run through the very functions the native listener calls, so both protocols share
// storage, idempotence, acks, long-polling, the controller and every bound (the group APIs:
// group-handlers.ts, onto the group coordinator). What is Kafka's alone lives here: field names and versions, the error map (kafkaErrorCode, one table), the
// advertised Kafka addresses in Metadata, AlterConfigs' replace-all meaning.
import { ErrorCode, kafka, StreamBusError } from '@streambus/protocol';
import type { HostPort } from '../config.js';
import type { RequestContext, Response } from '../connection.js';
import type { BrokerContext } from '../handlers/context.js';
import { fetch } from '../handlers/fetch.js';
import { describeCluster, metadata } from '../handlers/metadata.js';
import { deleteRecords, listOffsets } from '../handlers/offsets.js';
import { initProducerId, produce } from '../handlers/produce.js';
import {
  alterConfigs,
  createPartitions,
  createTopics,
  deleteTopics,
  describeConfigs,
} from '../handlers/topics.js';
import type { ApiRange } from './advertised.js';
import {
  kafkaDeleteGroups,
  kafkaDescribeGroups,
  kafkaFindCoordinator,
  kafkaHeartbeat,
  kafkaJoinGroup,
  kafkaLeaveGroup,
  kafkaListGroups,
  kafkaOffsetCommit,
  kafkaOffsetFetch,
  kafkaSyncGroup,
} from './group-handlers.js';
import type { KafkaFrame } from './kafka-wire.js';

/** What the Kafka handlers see: the native handlers' context plus the Kafka addresses. */
export interface KafkaContext {
  readonly b: BrokerContext;
  readonly ranges: readonly ApiRange[];
  /** The advertised Kafka address of a node (this one included); undefined when not known. */
  addressOf(nodeId: number): HostPort | undefined;
}

type Req<N extends kafka.ApiKeyName> = kafka.RequestOf<N>;
type Res<N extends kafka.ApiKeyName> = kafka.ResponseOf<N>;

const EMPTY = Buffer.alloc(0);
/** Kafka's resource types in the config APIs (`ConfigResource.Type`). */
const RESOURCE_TOPIC = 2;
/** DescribeConfigs config_source (v1+): DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG. */
const SOURCE_TOPIC = 1;
const SOURCE_DEFAULT = 5;
/** IncrementalAlterConfigs operations. */
const OP_SET = 0;
const OP_DELETE = 1;
/** DescribeCluster's "authorized operations not requested" value. */
const AUTHORIZED_OPERATIONS_NONE = -2147483648;

const wire = kafka.kafkaErrorCode;

/** Maps the partitions of a per-topic list (the shape of every partition-level API). */
function perTopic<P, Q>(
  topics: readonly { readonly name: string; readonly partitions: readonly P[] }[],
  f: (p: P) => Q,
): { name: string; partitions: Q[] }[] {
  return topics.map((t) => ({ name: t.name, partitions: t.partitions.map(f) }));
}

/** The Kafka request's handler: decoded at admission (kafka-wire.ts), answered or not here. */
export async function handleKafkaRequest(
  k: KafkaContext,
  frame: KafkaFrame,
  ctx: RequestContext,
): Promise<Response | null> {
  if (k.b.closing()) {
    throw new StreamBusError(ErrorCode.SHUTTING_DOWN, 'broker is shutting down');
  }
  const req = frame.request;
  if (req === null) return kafka.encodeApiVersionsFallback(frame.correlationId, k.ranges);
  const v = req.header.apiVersion;
  const id = req.header.correlationId;
  const out = <N extends kafka.ApiKeyName>(name: N, body: Res<N>): Buffer[] =>
    kafka.encodeResponseChunks(name, v, id, body);
  switch (req.name) {
    case 'ApiVersions':
      return out('ApiVersions', {
        errorCode: 0,
        apiKeys: kafka.apiVersionsEntries(k.ranges),
        throttleTimeMs: 0,
      });
    case 'Metadata':
      return out('Metadata', await kafkaMetadata(k, req.body));
    case 'Produce': {
      const body = await kafkaProduce(k.b, req.body);
      return req.body.acks === 0 ? null : out('Produce', body);
    }
    case 'Fetch':
      return out('Fetch', await kafkaFetch(k.b, req.body, ctx));
    case 'ListOffsets':
      return out('ListOffsets', await kafkaListOffsets(k.b, req.body));
    case 'InitProducerId':
      return out('InitProducerId', await kafkaInitProducerId(k.b, req.body));
    case 'FindCoordinator':
      return out('FindCoordinator', await kafkaFindCoordinator(k, req.body));
    case 'JoinGroup':
      return out('JoinGroup', await kafkaJoinGroup(k, req.body, v, req.header.clientId, ctx));
    case 'SyncGroup':
      return out('SyncGroup', await kafkaSyncGroup(k, req.body, ctx));
    case 'Heartbeat':
      return out('Heartbeat', await kafkaHeartbeat(k, req.body));
    case 'LeaveGroup':
      return out('LeaveGroup', await kafkaLeaveGroup(k, req.body));
    case 'OffsetCommit':
      return out('OffsetCommit', await kafkaOffsetCommit(k, req.body));
    case 'OffsetFetch':
      return out('OffsetFetch', await kafkaOffsetFetch(k, req.body));
    case 'ListGroups':
      return out('ListGroups', await kafkaListGroups(k));
    case 'DescribeGroups':
      return out('DescribeGroups', await kafkaDescribeGroups(k, req.body));
    case 'DeleteGroups':
      return out('DeleteGroups', await kafkaDeleteGroups(k, req.body));
    case 'CreateTopics':
      return out('CreateTopics', await kafkaCreateTopics(k.b, req.body));
    case 'DeleteTopics':
      return out('DeleteTopics', await kafkaDeleteTopics(k.b, req.body));
    case 'DeleteRecords':
      return out('DeleteRecords', await kafkaDeleteRecords(k.b, req.body));
    case 'DescribeConfigs':
      return out('DescribeConfigs', kafkaDescribeConfigs(k.b, req.body, v));
    case 'AlterConfigs':
      return out('AlterConfigs', await kafkaAlterConfigs(k.b, req.body, true));
    case 'IncrementalAlterConfigs':
      return out('IncrementalAlterConfigs', await kafkaAlterConfigs(k.b, req.body, false));
    case 'DescribeCluster':
      return out('DescribeCluster', kafkaDescribeCluster(k));
    case 'CreatePartitions':
      return out('CreatePartitions', await kafkaCreatePartitions(k.b, req.body));
    default:
      // Admission lets only advertised APIs through; reaching here is a table mismatch.
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        `Kafka API ${req.name} is not implemented by this listener`,
      );
  }
}

// ---- Metadata and DescribeCluster -----------------------------------------------------------

async function kafkaMetadata(k: KafkaContext, req: Req<'Metadata'>): Promise<Res<'Metadata'>> {
  const native = await metadata(k.b, {
    topics: req.topics === null ? null : req.topics.map((t) => t.name),
    allowAutoTopicCreation: req.allowAutoTopicCreation,
  });
  const brokers: Res<'Metadata'>['brokers'] = [];
  const known = new Set<number>();
  for (const n of native.brokers) {
    const a = k.addressOf(n.nodeId);
    if (a === undefined) continue;
    known.add(n.nodeId);
    brokers.push({ nodeId: n.nodeId, host: a.host, port: a.port, rack: n.rack });
  }
  const self = k.b.config.nodeId;
  if (!known.has(self)) {
    const a = k.addressOf(self);
    if (a !== undefined) {
      known.add(self);
      brokers.push({ nodeId: self, host: a.host, port: a.port, rack: null });
    }
  }
  return {
    throttleTimeMs: 0,
    brokers,
    clusterId: native.clusterId,
    // Any broker forwards topic changes to the controller leader: this one serves as Kafka's
    // "controller" (kafkajs sends CreateTopics and InitProducerId there, §8.11).
    controllerId: self,
    topics: native.topics.map((t) => ({
      errorCode: wire(t.errorCode),
      name: t.name,
      isInternal: false,
      partitions: t.partitions.map((p) => {
        // A leader without a Kafka address cannot be reached by a Kafka client: no leader yet.
        const reachable = p.leaderId >= 0 && known.has(p.leaderId);
        return {
          errorCode:
            p.errorCode !== 0 ? wire(p.errorCode) : reachable ? 0 : ErrorCode.LEADER_NOT_AVAILABLE,
          partitionIndex: p.partition,
          leaderId: reachable ? p.leaderId : -1,
          replicaNodes: p.replicas,
          isrNodes: p.isr,
        };
      }),
    })),
  };
}

function kafkaDescribeCluster(k: KafkaContext): Res<'DescribeCluster'> {
  const native = describeCluster(k.b);
  const brokers: Res<'DescribeCluster'>['brokers'] = [];
  for (const n of native.brokers) {
    const a = k.addressOf(n.nodeId);
    if (a !== undefined && n.live) {
      brokers.push({ brokerId: n.nodeId, host: a.host, port: a.port, rack: n.rack });
    }
  }
  return {
    throttleTimeMs: 0,
    errorCode: wire(native.errorCode),
    errorMessage: native.errorMessage ?? null,
    clusterId: native.clusterId,
    controllerId: k.b.config.nodeId,
    brokers,
    clusterAuthorizedOperations: AUTHORIZED_OPERATIONS_NONE,
  };
}

// ---- Produce, InitProducerId ----------------------------------------------------------------

type ProducePartition = Res<'Produce'>['responses'][number]['partitions'][number];

function produceFailed(index: number, errorCode: number): ProducePartition {
  return { index, errorCode, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 };
}

async function kafkaProduce(b: BrokerContext, req: Req<'Produce'>): Promise<Res<'Produce'>> {
  const refuse = (code: number) => ({
    responses: perTopic(req.topics, (p) => produceFailed(p.index, code)),
    throttleTimeMs: 0,
  });
  if (req.acks !== 0 && req.acks !== 1 && req.acks !== -1) {
    return refuse(ErrorCode.INVALID_REQUIRED_ACKS);
  }
  // Transactions are not supported (docs/kafka-listener.md): a transactional producer gets
  // INVALID_REQUEST, not a silent non-transactional write.
  if (req.transactionalId !== null) return refuse(ErrorCode.INVALID_REQUEST);
  const hasRecords = (p: { records: Uint8Array | null }) =>
    p.records !== null && p.records.length > 0;
  const native = await produce(b, {
    acks: req.acks,
    timeoutMs: req.timeoutMs,
    topics: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions
        .filter(hasRecords)
        .map((p) => ({ partition: p.index, records: p.records as Buffer })),
    })),
  });
  const results = new Map<string, ProducePartition>();
  for (const t of native.topics) {
    for (const p of t.partitions) {
      results.set(`${t.name}\0${p.partition}`, {
        index: p.partition,
        errorCode: wire(p.errorCode),
        baseOffset: p.baseOffset,
        logAppendTimeMs: p.logAppendTimeMs,
        logStartOffset: p.logStartOffset,
      });
    }
  }
  return {
    responses: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map(
        (p) =>
          results.get(`${t.name}\0${p.index}`) ??
          produceFailed(
            p.index,
            hasRecords(p) ? ErrorCode.UNKNOWN_SERVER_ERROR : ErrorCode.INVALID_RECORD,
          ),
      ),
    })),
    throttleTimeMs: 0,
  };
}

async function kafkaInitProducerId(
  b: BrokerContext,
  req: Req<'InitProducerId'>,
): Promise<Res<'InitProducerId'>> {
  if (req.transactionalId !== null) {
    return {
      throttleTimeMs: 0,
      errorCode: ErrorCode.INVALID_REQUEST,
      producerId: -1,
      producerEpoch: -1,
    };
  }
  const r = await initProducerId(b, {});
  return {
    throttleTimeMs: 0,
    errorCode: wire(r.errorCode),
    producerId: r.producerId,
    producerEpoch: r.producerEpoch,
  };
}

// ---- Fetch, ListOffsets, DeleteRecords ------------------------------------------------------

async function kafkaFetch(
  b: BrokerContext,
  req: Req<'Fetch'>,
  ctx: RequestContext,
): Promise<Res<'Fetch'>> {
  const native = await fetch(
    b,
    {
      maxWaitMs: Math.max(0, req.maxWaitMs),
      minBytes: req.minBytes,
      maxBytes: req.maxBytes,
      topics: req.topics.map((t) => ({
        name: t.topic,
        partitions: t.partitions.map((p) => ({
          partition: p.partition,
          fetchOffset: p.fetchOffset,
          partitionMaxBytes: p.partitionMaxBytes,
        })),
      })),
    },
    ctx,
  );
  // read_committed: with no transactions the last stable offset is the high watermark and no
  // batch is aborted, so both isolation levels read the same records (an empty list, not null).
  const aborted = req.isolationLevel === 1 ? [] : null;
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    sessionId: 0, // no fetch sessions: every request is a full one (§4.2)
    responses: native.topics.map((t) => ({
      topic: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partition,
        errorCode: wire(p.errorCode),
        highWatermark: p.highWatermark,
        lastStableOffset: p.lastStableOffset,
        logStartOffset: p.logStartOffset,
        abortedTransactions: aborted,
        preferredReadReplica: -1,
        records: p.records.length > 0 ? p.records : EMPTY, // never null (§8.3)
      })),
    })),
  };
}

async function kafkaListOffsets(
  b: BrokerContext,
  req: Req<'ListOffsets'>,
): Promise<Res<'ListOffsets'>> {
  const native = await listOffsets(b, {
    topics: perTopic(req.topics, (p) => ({ partition: p.partitionIndex, timestamp: p.timestamp })),
  });
  return {
    throttleTimeMs: 0,
    topics: perTopic(native.topics, (p) => ({
      partitionIndex: p.partition,
      errorCode: wire(p.errorCode),
      timestamp: p.timestamp,
      offset: p.offset,
    })),
  };
}

async function kafkaDeleteRecords(
  b: BrokerContext,
  req: Req<'DeleteRecords'>,
): Promise<Res<'DeleteRecords'>> {
  const native = await deleteRecords(b, {
    topics: perTopic(req.topics, (p) => ({ partition: p.partitionIndex, offset: p.offset })),
    timeoutMs: req.timeoutMs,
  });
  return {
    throttleTimeMs: 0,
    topics: perTopic(native.topics, (p) => ({
      partitionIndex: p.partition,
      lowWatermark: p.lowWatermark,
      errorCode: wire(p.errorCode),
    })),
  };
}

// ---- CreateTopics, DeleteTopics, configs ----------------------------------------------------

async function kafkaCreateTopics(
  b: BrokerContext,
  req: Req<'CreateTopics'>,
): Promise<Res<'CreateTopics'>> {
  const refused = new Map<string, { errorCode: number; errorMessage: string }>();
  const accepted: Req<'CreateTopics'>['topics'] = [];
  for (const t of req.topics) {
    if (t.assignments.length > 0) {
      refused.set(t.name, {
        errorCode: ErrorCode.INVALID_REQUEST,
        errorMessage: 'manual replica assignment is not supported: the controller places replicas',
      });
    } else if (t.configs.some((c) => c.value === null)) {
      refused.set(t.name, {
        errorCode: ErrorCode.INVALID_CONFIG,
        errorMessage: 'a topic config needs a value',
      });
    } else {
      accepted.push(t);
    }
  }
  const native = await createTopics(b, {
    topics: accepted.map((t) => ({
      name: t.name,
      partitions: t.numPartitions,
      replicationFactor: t.replicationFactor,
      configs: Object.fromEntries(t.configs.map((c) => [c.name, c.value as string])),
    })),
    timeoutMs: req.timeoutMs,
    validateOnly: req.validateOnly,
  });
  const results = new Map(native.topics.map((t) => [t.name, t]));
  return {
    throttleTimeMs: 0,
    topics: req.topics.map((t) => {
      const r = refused.get(t.name) ?? results.get(t.name);
      return {
        name: t.name,
        errorCode: wire(r?.errorCode ?? ErrorCode.UNKNOWN_SERVER_ERROR),
        errorMessage: r?.errorMessage ?? null,
      };
    }),
  };
}

async function kafkaDeleteTopics(
  b: BrokerContext,
  req: Req<'DeleteTopics'>,
): Promise<Res<'DeleteTopics'>> {
  const native = await deleteTopics(b, { topics: req.topicNames, timeoutMs: req.timeoutMs });
  return {
    throttleTimeMs: 0,
    responses: native.topics.map((t) => ({ name: t.name, errorCode: wire(t.errorCode) })),
  };
}

function notTopic(resourceType: number): { errorCode: number; errorMessage: string } {
  return {
    errorCode: ErrorCode.INVALID_REQUEST,
    errorMessage: `config resource type ${resourceType}: only topic configs (type 2) are served`,
  };
}

function kafkaDescribeConfigs(
  b: BrokerContext,
  req: Req<'DescribeConfigs'>,
  version: number,
): Res<'DescribeConfigs'> {
  const topics = req.resources.filter((r) => r.resourceType === RESOURCE_TOPIC);
  const native = describeConfigs(b, { topics: topics.map((r) => r.resourceName) });
  const byName = new Map(native.topics.map((t) => [t.name, t]));
  return {
    throttleTimeMs: 0,
    results: req.resources.map((r) => {
      const base = { resourceType: r.resourceType, resourceName: r.resourceName };
      if (r.resourceType !== RESOURCE_TOPIC)
        return { ...base, ...notTopic(r.resourceType), configs: [] };
      const t = byName.get(r.resourceName);
      if (t === undefined || t.errorCode !== 0) {
        return {
          ...base,
          errorCode: wire(t?.errorCode ?? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
          errorMessage: t?.errorMessage ?? `unknown topic ${r.resourceName}`,
          configs: [],
        };
      }
      const wanted = r.configurationKeys === null ? null : new Set(r.configurationKeys);
      return {
        ...base,
        errorCode: 0,
        errorMessage: null,
        configs: t.configs
          .filter((c) => c.name !== 'partitions' && (wanted === null || wanted.has(c.name)))
          .map((c) => ({
            name: c.name,
            value: c.value,
            readOnly: c.readOnly,
            isDefault: c.isDefault,
            configSource: version >= 1 ? (c.isDefault ? SOURCE_DEFAULT : SOURCE_TOPIC) : -1,
            isSensitive: false,
            synonyms: [],
          })),
      };
    }),
  };
}

/**
 * AlterConfigs (`replaceAll`: the given set replaces the topic's overrides, as in Kafka: a key
 * not named goes back to its default) and IncrementalAlterConfigs (SET and DELETE per key).
 */
async function kafkaAlterConfigs(
  b: BrokerContext,
  req: Req<'AlterConfigs'> | Req<'IncrementalAlterConfigs'>,
  replaceAll: boolean,
): Promise<Res<'AlterConfigs'>> {
  const refused = new Map<string, { errorCode: number; errorMessage: string }>();
  const changes: { name: string; configs: Record<string, string | null> }[] = [];
  const current = replaceAll
    ? describeConfigs(b, {
        topics: req.resources
          .filter((r) => r.resourceType === RESOURCE_TOPIC)
          .map((r) => r.resourceName),
      })
    : null;
  for (const r of req.resources) {
    if (r.resourceType !== RESOURCE_TOPIC) {
      refused.set(`${r.resourceType}\0${r.resourceName}`, notTopic(r.resourceType));
      continue;
    }
    const configs: Record<string, string | null> = {};
    if (current !== null) {
      const t = current.topics.find((x) => x.name === r.resourceName);
      for (const c of t?.configs ?? []) if (!c.isDefault && !c.readOnly) configs[c.name] = null;
    }
    let bad: string | null = null;
    for (const c of r.configs) {
      const op = 'configOperation' in c ? c.configOperation : OP_SET;
      if (op === OP_SET) configs[c.name] = c.value;
      else if (op === OP_DELETE) configs[c.name] = null;
      else bad = `config ${c.name}: operation ${op} (APPEND/SUBTRACT) is not supported; use SET`;
    }
    if (bad !== null) {
      refused.set(`${r.resourceType}\0${r.resourceName}`, {
        errorCode: ErrorCode.INVALID_CONFIG,
        errorMessage: bad,
      });
      continue;
    }
    changes.push({ name: r.resourceName, configs });
  }
  const native = await alterConfigs(b, { topics: changes, validateOnly: req.validateOnly });
  const results = new Map(native.topics.map((t) => [t.name, t]));
  return {
    throttleTimeMs: 0,
    responses: req.resources.map((r) => {
      const x = refused.get(`${r.resourceType}\0${r.resourceName}`) ?? results.get(r.resourceName);
      return {
        errorCode: wire(x?.errorCode ?? ErrorCode.UNKNOWN_SERVER_ERROR),
        errorMessage: x?.errorMessage ?? null,
        resourceType: r.resourceType,
        resourceName: r.resourceName,
      };
    }),
  };
}

/**
 * CreatePartitions v0-3: the native CreatePartitions (handlers/topics.ts), so the controller
 * adds the partitions (`add-partitions` record); assignments given by the client are one broker
 * list per new partition, else the controller places them.
 */
async function kafkaCreatePartitions(
  b: BrokerContext,
  req: Req<'CreatePartitions'>,
): Promise<Res<'CreatePartitions'>> {
  const native = await createPartitions(b, {
    topics: req.topics.map((t) => ({
      name: t.name,
      count: t.count,
      assignments: t.assignments === null ? null : t.assignments.map((a) => a.brokerIds),
    })),
    timeoutMs: req.timeoutMs,
    validateOnly: req.validateOnly,
  });
  return {
    throttleTimeMs: 0,
    results: native.topics.map((t) => ({
      name: t.name,
      errorCode: wire(t.errorCode),
      errorMessage: t.errorCode === 0 ? null : (t.errorMessage ?? null),
    })),
  };
}
