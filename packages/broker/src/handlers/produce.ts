// Produce and InitProducerId. A produced batch is validated (produce-validation.ts), then
// appended by its partition (idempotence and acks in partition.ts); answers are per partition.
import type {
  InitProducerIdRequest,
  InitProducerIdResponse,
  ProduceRequest,
  ProduceResponse,
} from '@streambus/protocol';
import { checkClientTopic } from '../groups/offsets-topic.js';
import { validateProduceRecords } from '../produce-validation.js';
import type { Acks } from '../served-partition.js';
import type { BrokerContext } from './context.js';
import { countPartitionError, leaderHintOf, partitionError } from './errors.js';

const PRODUCER_EPOCH_MAX = 32767;

type ProducePartitionResult = ProduceResponse['topics'][number]['partitions'][number];

/**
 * Every partition of the request is appended concurrently; the answer lists them in request
 * order. Per request this allocates one result per partition and one array per topic (no
 * closure or promise per topic: this runs once per produce request).
 */
export function produce(b: BrokerContext, req: ProduceRequest): Promise<ProduceResponse> {
  const acks = req.acks as Acks;
  const now = Date.now();
  const pending: Array<Promise<ProducePartitionResult>> = [];
  const topics: Array<{ name: string; partitions: ProducePartitionResult[] }> = [];
  for (const t of req.topics) {
    const partitions: ProducePartitionResult[] = [];
    topics.push({ name: t.name, partitions });
    for (const { partition, records } of t.partitions) {
      pending.push(producePartition(b, t.name, partition, records, acks, now));
    }
  }
  if (pending.length === 1 && topics.length === 1) {
    return pending[0]!.then((result) => {
      topics[0]!.partitions.push(result);
      return { topics };
    });
  }
  return Promise.all(pending).then((results) => {
    let i = 0;
    for (let ti = 0; ti < topics.length; ti++) {
      const out = topics[ti]!.partitions;
      const n = req.topics[ti]!.partitions.length;
      for (let j = 0; j < n; j++) out.push(results[i++]!);
    }
    return { topics };
  });
}

/** One partition's append; every failure becomes its result (never a rejection). */
async function producePartition(
  b: BrokerContext,
  topic: string,
  partition: number,
  records: Buffer,
  acks: Acks,
  now: number,
): Promise<ProducePartitionResult> {
  try {
    checkClientTopic(topic, 'produce to');
    // An election under way here: wait for its outcome (bounded) rather than refuse naming
    // no leader (replicated-partition.ts electionWait).
    const electing = b.replicas.find(topic, partition)?.electionWait?.() ?? null;
    if (electing !== null) await electing;
    const p = b.replicas.partition(topic, partition);
    const validated = validateProduceRecords(
      records,
      p.topicConfig,
      now,
      b.config.limits.decompressedBytesMax,
    );
    const out = await p.produce(records, validated, acks);
    if (!out.duplicate) b.metrics.recordsIn.inc(validated.recordCount);
    return {
      errorCode: 0,
      partition,
      baseOffset: out.baseOffset,
      logAppendTimeMs: out.appendTimeMs,
      logStartOffset: p.logStartOffset,
    };
  } catch (err) {
    countPartitionError(b, 'produce', err);
    return {
      ...partitionError(b, err, { topic, partition }),
      partition,
      baseOffset: -1,
      logAppendTimeMs: -1,
      logStartOffset: -1,
      ...leaderHintOf(b, err),
    };
  }
}

export async function initProducerId(
  b: BrokerContext,
  req: InitProducerIdRequest,
): Promise<InitProducerIdResponse> {
  if (req.producerId !== undefined && req.producerId >= 0) {
    const epoch = req.producerEpoch ?? -1;
    if (epoch >= 0 && epoch < PRODUCER_EPOCH_MAX) {
      return { errorCode: 0, producerId: req.producerId, producerEpoch: epoch + 1 };
    }
  }
  const producerId = await b.cluster.allocateProducerId();
  return { errorCode: 0, producerId, producerEpoch: 0 };
}
