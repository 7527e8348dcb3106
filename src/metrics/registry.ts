/**
 * Prometheus metrics (prom-client). Each process has its own registry:
 *
 * - the API process: HTTP request durations and queue depth by state (read from BullMQ at scrape
 *   time), served at GET /metrics on the API port;
 * - a worker process: run durations, training throughput, completed epochs and failures by reason,
 *   derived from the run events it publishes, served at GET /metrics on METRICS_PORT when set;
 * - `all` (API and worker in one process): one registry with both, on the API's /metrics.
 *
 * Every registry also carries prom-client's default process metrics (CPU, memory, event loop lag).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export { Registry };

export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}
