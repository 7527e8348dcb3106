/** A worker host for integration tests, on a harness's queue, store and event bus. */
import { pino } from 'pino';
import { WorkerHost, type WorkerHostOptions } from '../../src/worker/host.js';
import type { TrainerPool } from '../../src/worker/pool.js';
import type { Harness } from './harness.js';

/** One job at a time, progress events at once, silent; `opts` override any of it. Not started. */
export function workerHost(h: Harness, pool: TrainerPool, opts: Partial<WorkerHostOptions> = {}): WorkerHost {
  return new WorkerHost({
    connection: h.ctx.connection,
    prefix: h.config.queuePrefix,
    concurrency: 1,
    dataDir: h.config.dataDir,
    progressIntervalMs: 0,
    repo: h.ctx.repo,
    bus: h.ctx.bus,
    pool,
    log: pino({ level: 'silent' }),
    ...opts,
  });
}
