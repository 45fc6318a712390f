// Requests to a consumer group's coordinator, for the group consumer and the admin: one attempt
// finds the coordinator (cluster.ts coordinatorFor, cached) and sends; a coordinator error in the
// answer (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS), at the
// response's top or in any partition, is thrown inside the attempt, so the one retry layer
// (context.ts) retries it after its hook dropped the cached coordinator.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { BrokerConnection } from './connection.js';
import type { ClientContext } from './context.js';

const COORDINATOR_ERRORS: ReadonlySet<number> = new Set([
  ErrorCode.NOT_COORDINATOR,
  ErrorCode.COORDINATOR_NOT_AVAILABLE,
  ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
]);

interface MaybeErrors {
  readonly errorCode?: unknown;
  readonly errorMessage?: string;
  readonly topics?: unknown;
  readonly groups?: unknown;
}

/** Throws the first coordinator error an answer carries (top level, per group or per partition). */
function throwCoordinatorError(res: unknown, what: string): void {
  const r = res as MaybeErrors;
  const check = (code: unknown, message: string | undefined) => {
    if (typeof code === 'number' && COORDINATOR_ERRORS.has(code)) {
      throw new StreamBusError(code, message ?? what);
    }
  };
  check(r.errorCode, r.errorMessage);
  if (Array.isArray(r.groups)) for (const g of r.groups) check(g.errorCode, g.errorMessage);
  if (Array.isArray(r.topics)) {
    for (const t of r.topics) {
      for (const p of (t as { partitions?: MaybeErrors[] }).partitions ?? []) {
        check(p.errorCode, p.errorMessage);
      }
    }
  }
}

export interface CoordinatorRequestOptions {
  /** Retry until this long from now (at least the policy's total time); default: the policy. */
  readonly budgetMs?: number;
  /** The connection lane (JoinGroup and SyncGroup use one of their own). */
  readonly lane?: string;
}

export function coordinatorRequest<T>(
  ctx: ClientContext,
  groupId: string,
  send: (conn: BrokerConnection) => Promise<T>,
  options: CoordinatorRequestOptions = {},
): Promise<T> {
  const attempt = async () => {
    const res = await send(await ctx.cluster.coordinatorFor(groupId, options.lane ?? ''));
    throwCoordinatorError(res, `coordinator of group '${groupId}'`);
    return res;
  };
  if (options.budgetMs === undefined) return ctx.run(attempt);
  return ctx.runUntil(
    attempt,
    Date.now() + Math.max(options.budgetMs, ctx.retryPolicy.totalTimeoutMs),
  );
}
