// The broker's HTTP admin port: `/live` (the process is up), `/ready` (started and not shutting
// down) and `/metrics` (Prometheus text from the broker's own registry). GET and HEAD only;
// anything else is 404/405. No request body is read.
//
// `/ready` answers 200 when ready and 503 when not, with a JSON body giving the detail:
//   { "ready": true, "offlinePartitionCount": N, "offlinePartitions": [{ "topic", "partition", "reason", "sinceMs" }],
//     "cluster": { "ready", "missing": ["registered" | "metadata-caught-up" | "metadata-log-offline" | "replicas-open" | "shutting-down"],
//                  "registered", "metadataCaughtUp", "replicasAssigned", "replicasOpen", "replicaRoles" } }
// (`cluster` on the cluster path only; not ready while any of its conditions is missing, and
// from the start of a controlled shutdown.)
// Offline partitions do not make the broker unready (every other partition serves); they are
// listed so an operator or a probe can see them.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { ClusterReadiness } from './ops/readiness.js';

export interface Readiness {
  readonly ready: boolean;
  readonly offlinePartitionCount: number;
  /** At most the first 1000 (offlinePartitionCount has them all). */
  readonly offlinePartitions: ReadonlyArray<{
    topic: string;
    partition: number;
    reason: string;
    sinceMs: number;
  }>;
  /**
   * On the cluster path: the conditions (registered, metadata caught up, replicas open) and
   * `missing`, the ones not met (ops/readiness.ts).
   */
  readonly cluster?: ClusterReadiness;
}

export function createAdminServer(registry: Registry, readiness: () => Readiness): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/live') {
      send(res, 200, 'text/plain', 'live\n');
    } else if (path === '/ready') {
      const r = readiness();
      send(res, r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`);
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => send(res, 200, registry.contentType, text),
        (err: unknown) => send(res, 500, 'text/plain', `metrics failed: ${String(err)}\n`),
      );
    } else {
      send(res, 404, 'text/plain', 'not found\n');
    }
  });
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}
