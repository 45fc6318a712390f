// The broker's HTTP admin port: `/live` (the process is up), `/ready` (started and not shutting
// down) and `/metrics` (Prometheus text from the broker's own registry). GET and HEAD only;
// anything else is 404/405. No request body is read.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export function createAdminServer(registry: Registry, isReady: () => boolean): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/live') {
      send(res, 200, 'text/plain', 'live\n');
    } else if (path === '/ready') {
      const ready = isReady();
      send(res, ready ? 200 : 503, 'text/plain', ready ? 'ready\n' : 'not ready\n');
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
