// Fetch: reads up to the high watermark, long-polling (parked on the replica manager) until
// `minBytes` are there, the wait ends, the connection closes or the broker shuts down.
import {
  ApiKey,
  decodeRequest,
  ErrorCode,
  encodeResponsePartsByRef,
  type FetchRequest,
  type FetchResponse,
  type Frame,
  isStreamBusError,
  StreamBusError,
} from '@streambus/protocol';
import { readBufferPool } from '@streambus/storage';
import type { RequestContext, WrittenParts } from '../connection.js';
import { refuseDuplicatePartitions } from '../fetch-request.js';
import type { ServedPartition } from '../served-partition.js';
import type { BrokerContext } from './context.js';
import { leaderHintOf, partitionError } from './errors.js';

const EMPTY = Buffer.alloc(0);

/**
 * The FETCH handler: the response frame as parts of one gathered write (pack-parts.ts), the
 * record bytes not copied from the buffers they were read into; once the socket has taken them,
 * those buffers go back to the storage's read buffer pool for the next read (read-buffers.ts).
 */
export async function fetchFrame(
  b: BrokerContext,
  frame: Frame,
  ctx: RequestContext,
): Promise<WrittenParts> {
  const body = await fetch(b, decodeRequest(ApiKey.FETCH, frame), ctx);
  const parts = encodeResponsePartsByRef({ ...frame, apiKey: ApiKey.FETCH }, body);
  return Object.assign(parts, { written: () => releaseRecords(body) });
}

/** Gives a response's record buffers back to the pool: nothing may read them afterwards. */
function releaseRecords(response: FetchResponse): void {
  for (const t of response.topics) {
    for (const p of t.partitions) if (p.records.length > 0) readBufferPool.give(p.records);
  }
}

export async function fetch(
  b: BrokerContext,
  req: FetchRequest,
  ctx: RequestContext,
): Promise<FetchResponse> {
  refuseDuplicatePartitions(req);
  const waitMs = Math.max(0, Math.min(req.maxWaitMs, b.config.limits.requestTimeoutMs - 100));
  const deadline = Date.now() + waitMs;
  let heldBytes = 0;
  let dropped: FetchResponse | null = null;
  for (;;) {
    const endsBefore = requestedPartitions(b, req).map((p) => p?.highWatermark ?? -1);
    // A round that parks again drops its (too small) data: give its reservation back first.
    ctx.releaseResponseBytes(heldBytes);
    const { response, bytes, failed } = await fetchOnce(b, req, ctx);
    if (dropped !== null) releaseRecords(dropped);
    dropped = response;
    heldBytes = bytes;
    const remainingMs = deadline - Date.now();
    if (bytes >= req.minBytes || failed || remainingMs <= 0 || ctx.signal.aborted || b.closing()) {
      return response;
    }
    const partitions = requestedPartitions(b, req);
    if (partitions.some((p, i) => (p?.highWatermark ?? -1) !== endsBefore[i])) continue;
    const parked = await b.replicas.park(partitions as ServedPartition[], remainingMs, ctx.signal);
    if (!parked) return response;
  }
}

function requestedPartitions(
  b: BrokerContext,
  req: FetchRequest,
): Array<ServedPartition | undefined> {
  const out: Array<ServedPartition | undefined> = [];
  for (const t of req.topics) {
    for (const p of t.partitions) out.push(b.replicas.find(t.name, p.partition));
  }
  return out;
}

/**
 * One pass over the requested partitions. The record bytes are capped by `maxBytes` and the
 * broker's `limits.fetchBytesMax` (only a first batch larger than the cap may pass it, as in
 * Kafka, so a consumer can always make progress); each read is reserved in advance against
 * the connection's and the broker's outbound budgets (`ctx.reserveResponseBytes`) for the
 * most it can return, and the unused part given back. When a reservation is refused, that
 * partition and the rest are answered without records (errorCode 0): the consumer asks again.
 * Returns with `bytes` still reserved (released as the response is written).
 */
async function fetchOnce(
  b: BrokerContext,
  req: FetchRequest,
  ctx: RequestContext,
): Promise<{ response: FetchResponse; bytes: number; failed: boolean }> {
  const cap = Math.min(Math.max(0, req.maxBytes), b.config.limits.fetchBytesMax);
  let budget = cap;
  let outOfBudget = false;
  let bytes = 0;
  let failed = false;
  const topics: FetchResponse['topics'] = [];
  for (const t of req.topics) {
    const partitions: FetchResponse['topics'][number]['partitions'] = [];
    for (const { partition, fetchOffset, partitionMaxBytes } of t.partitions) {
      try {
        const p = b.replicas.readablePartition(t.name, partition);
        const limit = Math.min(partitionMaxBytes, budget);
        const hw = p.highWatermark;
        let data: Buffer = EMPTY;
        // A read returns at least one whole batch: reserve for the larger of the two.
        const reserve = Math.max(limit, p.topicConfig.maxMessageBytes);
        if ((limit > 0 || bytes === 0) && !outOfBudget && fetchOffset < hw) {
          if (!ctx.reserveResponseBytes(reserve)) {
            outOfBudget = true;
          } else {
            try {
              const result = await p.read(fetchOffset, Math.max(1, limit));
              // Past the cap only as the response's first batch (Kafka KIP-74).
              if (bytes === 0 || bytes + result.data.length <= cap) data = result.data;
              else {
                budget = 0;
                readBufferPool.give(result.data);
              }
            } finally {
              ctx.releaseResponseBytes(reserve - data.length);
            }
          }
        } else if (fetchOffset < p.logStartOffset || fetchOffset > hw) {
          throw new StreamBusError(
            ErrorCode.OFFSET_OUT_OF_RANGE,
            `offset ${fetchOffset} is outside [${p.logStartOffset}, ${hw}]`,
          );
        }
        budget -= data.length;
        bytes += data.length;
        partitions.push({
          errorCode: 0,
          partition,
          highWatermark: p.highWatermark,
          logStartOffset: p.logStartOffset,
          lastStableOffset: p.highWatermark,
          records: data,
        });
      } catch (err) {
        failed = true;
        b.metrics.requestErrors.inc({
          api: 'fetch',
          code: isStreamBusError(err) ? err.code : -1,
        });
        const known = b.replicas.find(t.name, partition);
        partitions.push({
          ...partitionError(b, err, { topic: t.name, partition }),
          partition,
          highWatermark: known?.highWatermark ?? -1,
          logStartOffset: known?.logStartOffset ?? -1,
          lastStableOffset: known?.highWatermark ?? -1,
          records: EMPTY,
          ...leaderHintOf(b, err),
        });
      }
    }
    topics.push({ name: t.name, partitions });
  }
  return { response: { topics }, bytes, failed };
}
