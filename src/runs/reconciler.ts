/**
 * The queue reconciler: PostgreSQL is the record of which runs are unfinished, Redis only carries
 * their jobs. When Redis loses its data (restarted without persistence, flushed, failed over to an
 * empty replica), queued runs would wait forever and running ones whose worker also went would
 * never resume. At start-up and every RECONCILE_INTERVAL_MS, one instance (a Redis lock) re-enqueues
 * every queued or running run that has no BullMQ job.
 *
 * A running run whose job is gone may still be training: its worker keeps going through a Redis
 * restart. Workers therefore keep a heartbeat key per run they train (WorkerHost, every
 * HEARTBEAT_MS, expiring after 3×). A running run is only re-enqueued when it has no heartbeat
 * and still has none one heartbeat period later (after a flush a live worker writes it again
 * within that period). Re-enqueueing cannot duplicate a job: the job id is the run id, and BullMQ
 * ignores an add whose id exists.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RunQueue } from '../queue/producer.js';
import type { RunsRepo } from '../store/runs-repo.js';

/** How often a worker refreshes the heartbeat of each run it trains. */
export const HEARTBEAT_MS = 5000;

export const heartbeatKey = (prefix: string, runId: string) => `${prefix}:heartbeat:${runId}`;
const lockKey = (prefix: string) => `${prefix}:reconciler:lock`;

/** Deletes the lock only if it is still ours. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export interface ReconcileReport {
  /** Unfinished runs looked at. */
  checked: number;
  /** Runs whose job was missing and that were enqueued again. */
  requeued: string[];
}

export interface ReconcilerOptions {
  repo: RunsRepo;
  queue: RunQueue;
  prefix: string;
  log: Logger;
  intervalMs: number;
  /** How long to wait for a heartbeat before a running run without one counts as orphaned. */
  heartbeatMs?: number;
}

type RedisLike = {
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<string | null>;
  eval(script: string, keys: number, ...args: string[]): Promise<unknown>;
  exists(...keys: string[]): Promise<number>;
};

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly o: ReconcilerOptions) {}

  private get heartbeatMs(): number {
    return this.o.heartbeatMs ?? HEARTBEAT_MS;
  }

  /** Runs once now, then every intervalMs. Failures are logged (Redis or the database away) and retried next time. */
  start(): void {
    const tick = () => {
      if (this.stopped || this.running) return;
      this.running = this.reconcileOnce()
        .then((r) => {
          if (r?.requeued.length) this.o.log.warn({ requeued: r.requeued, checked: r.checked }, 'reconciler: re-enqueued runs whose BullMQ job was missing');
        })
        .catch((err: unknown) => this.o.log.warn({ err }, 'reconciler: pass failed; retrying at the next interval'))
        .finally(() => {
          this.running = undefined;
        });
    };
    tick();
    this.timer = setInterval(tick, this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass, if this instance gets the lock (null otherwise). */
  async reconcileOnce(): Promise<ReconcileReport | null> {
    const redis = (await this.o.queue.queue.getBackend().client) as unknown as RedisLike;
    const token = randomBytes(12).toString('hex');
    // Long enough for a pass over thousands of runs; released as soon as the pass ends.
    const ttl = Math.max(60_000, 4 * this.heartbeatMs);
    if ((await redis.set(lockKey(this.o.prefix), token, 'PX', ttl, 'NX')) !== 'OK') return null;
    try {
      return await this.pass(redis);
    } finally {
      await redis.eval(RELEASE, 1, lockKey(this.o.prefix), token).catch(() => {});
    }
  }

  private async pass(redis: RedisLike): Promise<ReconcileReport> {
    const { repo, queue, prefix } = this.o;
    const unfinished: { id: string; status: string; priority: number }[] = [];
    for (const status of ['queued', 'running'] as const) {
      for (let offset = 0; ; offset += 500) {
        const { items } = await repo.list({ status, limit: 500, offset });
        unfinished.push(...items.map((r) => ({ id: r.id, status: r.status as string, priority: r.priority })));
        if (items.length < 500) break;
      }
    }
    const missing: typeof unfinished = [];
    for (const r of unfinished) if (!(await queue.queue.getJob(r.id))) missing.push(r);
    const alive = async (id: string) => (await redis.exists(heartbeatKey(prefix, id))) === 1;
    let suspects: typeof unfinished = [];
    const requeue: typeof unfinished = [];
    for (const r of missing) {
      if (r.status === 'queued') requeue.push(r);
      else if (!(await alive(r.id))) suspects.push(r);
    }
    if (suspects.length) {
      // A live worker writes its heartbeat again within one period (after a flush, too).
      await new Promise((resolve) => setTimeout(resolve, this.heartbeatMs + 500));
      const still: typeof unfinished = [];
      for (const r of suspects) if (!(await alive(r.id)) && !(await queue.queue.getJob(r.id))) still.push(r);
      suspects = still;
    }
    requeue.push(...suspects);
    const requeued: string[] = [];
    for (const r of requeue) {
      // The run may have finished meanwhile: the worker skips a job whose run is not queued/running.
      await queue.enqueue(r.id, { priority: r.priority });
      requeued.push(r.id);
    }
    return { checked: unfinished.length, requeued };
  }
}
