// RepairPartition: repairs one partition's replica on this broker while it runs
// (replicated-partition.ts `repair`): the replica stops serving, its log directory is repaired
// (truncate at the damage; skip only as a dry run), and it opens again. The answer states the
// offsets lost and whether it serves.
import {
  REPAIR_ITEMS_MAX,
  type RepairPartitionRequest,
  type RepairPartitionResponse,
} from '@streambus/protocol';
import type { BrokerContext } from './context.js';
import { ERROR_MESSAGE_LENGTH_MAX, partitionError } from './errors.js';

export async function repairPartition(
  b: BrokerContext,
  req: RepairPartitionRequest,
): Promise<RepairPartitionResponse> {
  const empty = {
    mode: req.mode,
    dryRun: req.dryRun,
    damages: [],
    damageCount: 0,
    lost: [],
    offsetsLost: null,
    bytesRemoved: 0,
    logEndOffsetBefore: -1,
    logEndOffsetAfter: -1,
    online: false,
    offlineReason: null,
  };
  try {
    const p = b.replicas.knownPartition(req.topic, req.partition);
    const r = await b.admin.run(() =>
      p.repair({ mode: req.mode, dryRun: req.dryRun }, b.replicas.repairLog),
    );
    const offline = p.offline;
    b.logger.warn(
      {
        topic: p.topic,
        partition: p.index,
        mode: r.mode,
        dryRun: r.dryRun,
        lost: r.lost,
        offsetsLost: r.offsetsLost,
        bytesRemoved: r.bytesRemoved,
        logEndOffsetBefore: r.logEndOffsetBefore,
        logEndOffsetAfter: r.logEndOffsetAfter,
        online: offline === null,
      },
      r.dryRun ? 'partition repair dry run' : 'partition repaired',
    );
    return {
      errorCode: 0,
      mode: r.mode,
      dryRun: r.dryRun,
      damages: r.damages.slice(0, REPAIR_ITEMS_MAX).map((d) => ({
        segment: d.segment,
        position: d.position,
        bytes: d.bytes,
        fromOffset: d.fromOffset,
        toOffset: d.toOffset,
        reason: d.reason.slice(0, ERROR_MESSAGE_LENGTH_MAX),
      })),
      damageCount: r.damages.length,
      lost: r.lost.slice(0, REPAIR_ITEMS_MAX).map((l) => ({ ...l })),
      offsetsLost: r.offsetsLost,
      bytesRemoved: r.bytesRemoved,
      logEndOffsetBefore: r.logEndOffsetBefore,
      logEndOffsetAfter: r.logEndOffsetAfter,
      online: offline === null,
      offlineReason: offline?.reason.slice(0, ERROR_MESSAGE_LENGTH_MAX) ?? null,
    };
  } catch (err) {
    return {
      ...empty,
      ...partitionError(b, err, { topic: req.topic, partition: req.partition }),
    };
  }
}
