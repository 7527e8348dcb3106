/**
 * Worker-side run metrics, derived from the run events the process publishes (RunEventBus.onPublish):
 * what it sees is what it trained, so several workers' figures add up without double counting.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { isTerminalEvent, TERMINAL_EVENTS, type StoredEvent } from '../events/run-events.js';

/** A failure message → one of a few stable reasons (a label must not carry free text). */
export function failureReason(error: string): string {
  if (/wall-clock limit/i.test(error)) return 'time_limit';
  if (/out of memory|\boom\b|allocat|heap/i.test(error)) return 'out_of_memory';
  if (/engine trapped|memory access out of bounds|null function|signature mismatch|unreachable executed/i.test(error)) return 'engine_fault';
  if (/\bnan\b|non-?finite|infinit/i.test(error)) return 'non_finite_loss';
  if (/dataset|idx|label|image|ENOENT|no such file|sha-?256/i.test(error)) return 'dataset';
  if (/backend|webgl|wasm|tensorflow|cuda|gpu/i.test(error)) return 'backend';
  if (/prisma|postgres|database|redis|ECONNREFUSED|ETIMEDOUT/i.test(error)) return 'storage';
  return 'other';
}

export class RunMetrics {
  private readonly duration: Histogram<'status'>;
  private readonly samplesPerSec: Gauge;
  private readonly epochs: Counter;
  private readonly failures: Counter<'reason'>;
  private readonly startedAt = new Map<string, number>();

  constructor(registry: Registry) {
    this.duration = new Histogram({
      name: 'regula_run_duration_seconds',
      help: 'Training time of finished runs (start of training to the terminal event) by final status.',
      labelNames: ['status'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400],
      registers: [registry],
    });
    this.samplesPerSec = new Gauge({
      name: 'regula_training_samples_per_second',
      help: 'Training throughput of the last epoch this process completed (any run).',
      registers: [registry],
    });
    this.epochs = new Counter({
      name: 'regula_epochs_completed_total',
      help: 'Training epochs completed by this process.',
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'regula_run_failures_total',
      help: 'Runs that failed in this process, by reason (classified from the error message).',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  observe(runId: string, event: StoredEvent): void {
    const data = (event.data ?? {}) as Record<string, unknown>;
    switch (event.type) {
      case 'started':
      case 'restarted':
      case 'resumed':
        this.startedAt.set(runId, event.createdAt.getTime());
        return;
      case 'epoch':
        this.epochs.inc();
        if (typeof data.samplesPerSec === 'number' && Number.isFinite(data.samplesPerSec)) this.samplesPerSec.set(data.samplesPerSec);
        return;
    }
    if (!isTerminalEvent(event.type)) return;
    const started = this.startedAt.get(runId);
    this.startedAt.delete(runId);
    if (event.type === 'failed') this.failures.inc({ reason: failureReason(typeof data.error === 'string' ? data.error : '') });
    const seconds =
      typeof data.durationMs === 'number' ? data.durationMs / 1000 : started !== undefined ? (event.createdAt.getTime() - started) / 1000 : undefined;
    // A run cancelled while queued never trained: it has no duration.
    if (seconds !== undefined && seconds >= 0) this.duration.observe({ status: TERMINAL_EVENTS[event.type] }, seconds);
  }
}
