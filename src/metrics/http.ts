/** API-side metrics: request durations, and the queue's depth read from BullMQ on every scrape. */
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { QueueCounts } from '../queue/view.js';

export class HttpMetrics {
  private readonly duration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(registry: Registry) {
    this.duration = new Histogram({
      name: 'regula_http_request_duration_seconds',
      help: 'HTTP request durations by method, route template and status code (SSE streams are not included).',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }

  observe(method: string, route: string, statusCode: number, seconds: number): void {
    this.duration.observe({ method, route, status_code: String(statusCode) }, seconds);
  }
}

/** `regula_queue_jobs{state}`: collected from BullMQ when scraped; a failed read leaves the last values. */
export function registerQueueDepth(registry: Registry, counts: () => Promise<QueueCounts>, onError: (err: unknown) => void): void {
  new Gauge({
    name: 'regula_queue_jobs',
    help: 'Jobs in the runs queue by BullMQ state, read when scraped (completed and failed are the jobs BullMQ still keeps).',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      try {
        for (const [state, n] of Object.entries(await counts())) this.set({ state }, n);
      } catch (err) {
        onError(err);
      }
    },
  });
}
