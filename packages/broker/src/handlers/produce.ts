// Produce and InitProducerId. A produced batch is validated (produce-validation.ts), then
// appended by its partition (idempotence and acks in partition.ts); answers are per partition.
import type {
  InitProducerIdRequest,
  InitProducerIdResponse,
  ProduceRequest,
  ProduceResponse,
} from '@streambus/protocol';
import { checkClientTopic } from '../groups/offsets-topic.js';
import type { Acks } from '../partition.js';
import { validateProduceRecords } from '../produce-validation.js';
import { type BrokerContext, localTopics } from './context.js';
import { countPartitionError, partitionError } from './errors.js';

const PRODUCER_EPOCH_MAX = 32767;

export async function produce(b: BrokerContext, req: ProduceRequest): Promise<ProduceResponse> {
  const acks = req.acks as Acks;
  const now = Date.now();
  const topics = await Promise.all(
    req.topics.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitions.map(async ({ partition, records }) => {
          try {
            checkClientTopic(t.name, 'produce to');
            const p = b.replicas.partition(t.name, partition);
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
              ...partitionError(b, err, { topic: t.name, partition }),
              partition,
              baseOffset: -1,
              logAppendTimeMs: -1,
              logStartOffset: -1,
            };
          }
        }),
      ),
    })),
  );
  return { topics };
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
  const producerId = await (b.cluster ?? localTopics(b)).allocateProducerId();
  return { errorCode: 0, producerId, producerEpoch: 0 };
}
