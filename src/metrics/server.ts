/**
 * A bare HTTP server for a worker: GET /metrics (Prometheus), GET /healthz (the process answers) and
 * GET /readyz (the worker's own health: its training threads are alive and it consumes jobs; 503
 * with the reason otherwise), nothing else.
 */
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';

export interface Readiness {
  ok: boolean;
  checks: Record<string, string>;
}

export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  readiness?: () => Readiness,
): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const route = req.method === 'GET' ? (req.url ?? '').split('?')[0] : undefined;
    if (route === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
      return;
    }
    if (route === '/readyz' && readiness) {
      const r = readiness();
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: r.ok ? 'ok' : 'unavailable', checks: r.checks }));
      return;
    }
    if (route !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
