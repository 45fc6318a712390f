// Checks of a FETCH request as a whole, before any partition is read. Pure.
import { ErrorCode, type FetchRequest, StreamBusError } from '@streambus/protocol';

/**
 * A partition named twice in one fetch would be read (and its bytes sent) twice: one request
 * naming a partition 2,100 times once asked for 2 GB. Refused as a whole with INVALID_REQUEST
 * naming the first duplicate (`topic-partition`), as Kafka refuses duplicate partitions.
 */
export function refuseDuplicatePartitions(req: FetchRequest): void {
  const seen = new Map<string, Set<number>>();
  for (const t of req.topics) {
    let partitions = seen.get(t.name);
    if (partitions === undefined) {
      partitions = new Set();
      seen.set(t.name, partitions);
    }
    for (const { partition } of t.partitions) {
      if (partitions.has(partition)) {
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `fetch names partition ${t.name}-${partition} more than once`,
        );
      }
      partitions.add(partition);
    }
  }
}
