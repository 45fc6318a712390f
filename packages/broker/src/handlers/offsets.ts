// ListOffsets and DeleteRecords: the offsets of a partition, and moving its log start.
import {
  type DeleteRecordsRequest,
  type DeleteRecordsResponse,
  ErrorCode,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  OffsetSpec,
  StreamBusError,
} from '@streambus/protocol';
import { checkClientTopic } from '../groups/offsets-topic.js';
import type { BrokerContext } from './context.js';
import { partitionError } from './errors.js';

export async function listOffsets(
  b: BrokerContext,
  req: ListOffsetsRequest,
): Promise<ListOffsetsResponse> {
  const topics: ListOffsetsResponse['topics'] = [];
  for (const t of req.topics) {
    const partitions: ListOffsetsResponse['topics'][number]['partitions'] = [];
    for (const { partition, timestamp } of t.partitions) {
      try {
        const p = b.replicas.readablePartition(t.name, partition);
        let offset: number;
        let found = -1;
        if (timestamp === OffsetSpec.LATEST) offset = p.highWatermark;
        else if (timestamp === OffsetSpec.EARLIEST) offset = p.logStartOffset;
        else if (timestamp >= 0) {
          // Kafka's answer: the first record at or after T (below the high watermark) and its
          // timestamp; -1 and -1 when there is none.
          const hit = await p.findOffsetByTimestamp(timestamp);
          offset = hit?.offset ?? -1;
          found = hit?.timestamp ?? -1;
        } else {
          throw new StreamBusError(
            ErrorCode.INVALID_REQUEST,
            `timestamp ${timestamp}: use -1 (latest), -2 (earliest) or a time in ms`,
          );
        }
        partitions.push({ errorCode: 0, partition, offset, timestamp: found });
      } catch (err) {
        partitions.push({
          ...partitionError(b, err, { topic: t.name, partition }),
          partition,
          offset: -1,
          timestamp: -1,
        });
      }
    }
    topics.push({ name: t.name, partitions });
  }
  return { topics };
}

export async function deleteRecords(
  b: BrokerContext,
  req: DeleteRecordsRequest,
): Promise<DeleteRecordsResponse> {
  const topics: DeleteRecordsResponse['topics'] = [];
  for (const t of req.topics) {
    const partitions: DeleteRecordsResponse['topics'][number]['partitions'] = [];
    for (const { partition, offset } of t.partitions) {
      try {
        checkClientTopic(t.name, 'delete records of');
        const p = b.replicas.partition(t.name, partition);
        const target = offset === -1 ? p.highWatermark : offset;
        const lowWatermark = await p.deleteRecordsBefore(target);
        partitions.push({ errorCode: 0, partition, lowWatermark });
      } catch (err) {
        partitions.push({
          ...partitionError(b, err, { topic: t.name, partition }),
          partition,
          lowWatermark: -1,
        });
      }
    }
    topics.push({ name: t.name, partitions });
  }
  return { topics };
}
