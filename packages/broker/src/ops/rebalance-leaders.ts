// The RebalanceLeaders API (issue 12, `streambus cluster rebalance-leaders`): preferred-leader
// balancing on demand, from any broker (leadership.ts `balanceCluster`). A broker without the
// cluster path has no replicated leaderships to move: it answers that nothing was moved.
import type { RebalanceLeadersRequest, RebalanceLeadersResponse } from '@streambus/protocol';
import { preferredLeaderMoves } from '../controller/controller-planner.js';
import type { BrokerContext } from '../handlers/context.js';

/** The longest a RebalanceLeaders request waits for the moves to show (its timeoutMs, capped). */
export const REBALANCE_WAIT_MS_MAX = 60_000;

export async function rebalanceLeaders(
  b: BrokerContext,
  req: RebalanceLeadersRequest,
): Promise<RebalanceLeadersResponse> {
  if (b.cluster === null) {
    return { errorCode: 0, transfersStarted: 0, remainingCount: 0, remaining: [] };
  }
  const r = await b.cluster.rebalanceLeaders(Math.min(req.timeoutMs, REBALANCE_WAIT_MS_MAX));
  return {
    errorCode: 0,
    transfersStarted: r.transfersStarted,
    remainingCount: preferredLeaderMoves(b.cluster.state, Number.MAX_SAFE_INTEGER).length,
    remaining: r.remaining.map((m) => ({
      topic: m.topic,
      partition: m.partition,
      leaderId: m.from,
      preferredId: m.to,
    })),
  };
}
