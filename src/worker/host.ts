/**
 * The worker host: the BullMQ adapter. Its processor leases a training thread for each job and
 * drives the run's lifecycle (runs/lifecycle.ts: start, resume or restart, record, end), hands jobs
 * back on shutdown, keeps each training run's heartbeat, and turns failures into BullMQ's terms.
 * Its own event loop only waits on messages, so BullMQ can renew job locks during long epochs.
 *
 * Failures: a spec that can never train (dataset error, a model that does not build) fails its run
 * at once (BullMQ's UnrecoverableError, no retry), and so does one that broke the engine (a wasm
 * trap, exhausted memory: the pool replaced the thread, and the spec would do it again anywhere) or
 * that ran past its wall-clock limit (`runTimeLimitMs`). Anything else — the database or Redis away while
 * recording, a training thread that died — fails the attempt; BullMQ retries it with backoff (the
 * queue's attempts/backoff) and the retry resumes from the checkpoint. The last attempt fails the run.
 */
import { DelayedError, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { RunEventBus } from '../events/bus.js';
import { RunJournal } from '../events/run-events.js';
import { RunLifecycle } from '../runs/lifecycle.js';
import { RUNS_QUEUE, type RunJobData } from '../queue/names.js';
import type { RunsRepo } from '../store/runs-repo.js';
import type { TrainingEvent } from '../engine/types.js';
import { TrainingFailedError, type Lease, type PoolHealth, type TrainerPool } from './pool.js';
import type { InjectedFault } from './protocol.js';
import { HEARTBEAT_MS, heartbeatKey } from '../runs/reconciler.js';

export interface WorkerHostOptions {
  connection: ConnectionOptions;
  prefix: string;
  concurrency: number;
  dataDir: string;
  progressIntervalMs: number;
  repo: RunsRepo;
  bus: RunEventBus;
  pool: TrainerPool;
  log: Logger;
  /** BullMQ job lock duration (default 30 s): a worker silent for this long has lost its job. */
  lockDurationMs?: number;
  /** How often this worker looks for stalled jobs (default 30 s). */
  stalledIntervalMs?: number;
  /**
   * Wall-clock limit of a run, from its start (kept across resumes; reset when it restarts from
   * epoch 1); past it the thread is terminated and the run fails. Undefined: no limit.
   */
  runTimeLimitMs?: number;
  /** Test-only: a fault for the pool to inject into a run (needs a pool started with faultInjection). */
  injectFault?: (run: { id: string; name: string | null }) => InjectedFault | undefined;
}

export interface WorkerHealth {
  ok: boolean;
  checks: Record<string, string>;
  pool: PoolHealth;
}

/** The error stored on a run that failed: what happened, in words an operator can act on. */
export function failureMessage(err: unknown, backend: string, runTimeLimitMs: number | undefined): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof TrainingFailedError)) return message;
  switch (err.kind) {
    case 'trap':
      return `the ${backend} engine trapped while training this spec (${message}); its training thread was replaced, and the spec is not retried because it would trap again`;
    case 'out-of-memory':
      return `training ran out of memory on the ${backend} engine (${message}); its training thread was replaced, and the spec is not retried: use a smaller model or batch size`;
    case 'time-limit':
      return `the run did not finish within its wall-clock limit of ${Math.round((runTimeLimitMs ?? 0) / 1000)} s (RUN_TIME_LIMIT_S)`;
    default:
      return message;
  }
}

/**
 * How often a job may stall (its worker lost) and still go back to the queue. Each resume loses at
 * most the epoch in progress; a job that keeps killing its workers fails after this many.
 */
export const MAX_STALLS = 3;

export class WorkerHost {
  private worker: Worker<RunJobData> | undefined;
  private stopping = false;
  /** Runs this host is training: their heartbeats tell the reconciler they are not orphaned. */
  private readonly training = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly lifecycle: RunLifecycle;

  constructor(private readonly o: WorkerHostOptions) {
    this.lifecycle = new RunLifecycle(o.repo, new RunJournal(o.repo, o.bus));
  }

  async start(): Promise<void> {
    await this.o.bus.onCancel((runId) => {
      if (this.o.pool.cancel(runId)) this.o.log.info({ runId }, 'cancel requested: stopping before the next batch (the thread is terminated if it does not)');
    });
    this.worker = new Worker<RunJobData>(RUNS_QUEUE, (job, token) => this.process(job, token), {
      connection: this.o.connection,
      prefix: this.o.prefix,
      concurrency: this.o.concurrency,
      maxStalledCount: MAX_STALLS,
      ...(this.o.lockDurationMs !== undefined ? { lockDuration: this.o.lockDurationMs } : {}),
      ...(this.o.stalledIntervalMs !== undefined ? { stalledInterval: this.o.stalledIntervalMs } : {}),
    });
    this.worker.on('error', (err) => this.o.log.error({ err }, 'worker error'));
    // A job that BullMQ fails without our processor (it stalled more than MAX_STALLS times) would
    // leave its run `running` forever: fail the run too. (finish() is a compare-and-set, so runs
    // the processor already finished are left alone.)
    this.worker.on('failed', (job, err) => {
      if (!job?.finishedOn) return; // retried: not final
      void this.lifecycle
        .fail(job.data.runId, err.message)
        .catch((e: unknown) => this.o.log.error({ err: e, runId: job.data.runId }, 'could not fail the run'));
    });
    this.worker.on('stalled', (jobId) => this.o.log.warn({ runId: jobId }, 'job stalled (its worker was lost): back in the queue'));
    await this.worker.waitUntilReady();
    this.heartbeat = setInterval(() => {
      for (const runId of this.training) void this.beat(runId);
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Marks a run as trained here for three heartbeat periods (see runs/reconciler.ts). */
  private async beat(runId: string): Promise<void> {
    try {
      const client = (await this.worker?.getBackend().client) as unknown as
        | { set(key: string, value: string, px: 'PX', ms: number): Promise<unknown> }
        | undefined;
      await client?.set(heartbeatKey(this.o.prefix, runId), '1', 'PX', 3 * HEARTBEAT_MS);
    } catch {
      // Redis away: the reconciler cannot run either; the next beat writes it again.
    }
  }

  /** Readiness of this worker: its training threads are all alive and its BullMQ worker takes jobs. */
  health(): WorkerHealth {
    const pool = this.o.pool.health();
    const running = this.worker?.isRunning() ?? false;
    const checks: Record<string, string> = {
      trainingThreads: pool.ok ? 'ok' : (pool.problem ?? 'unavailable'),
      queue: this.stopping ? 'shutting down' : running ? 'ok' : 'not consuming jobs',
    };
    return { ok: Object.values(checks).every((c) => c === 'ok'), checks, pool };
  }

  /**
   * Gives the job back to the queue for another worker (shutdown): the run stays `running`. It goes
   * through `delayed` with no delay rather than job.moveToWait(), because BullMQ 6.7's move back to
   * wait leaves no marker for a prioritized job (the API always sets a priority), so idle workers
   * would only notice it after their drainDelay; a delayed job's marker wakes them at once. The
   * attempt count does not change (moveToDelayed skips it). DelayedError tells BullMQ the
   * processor moved the job itself.
   */
  private async handBack(job: Job<RunJobData>, token: string | undefined): Promise<never> {
    await job.moveToDelayed(Date.now(), token);
    throw new DelayedError();
  }

  private async process(job: Job<RunJobData>, token: string | undefined): Promise<void> {
    const { runId } = job.data;
    const log = this.o.log.child({ runId, attempt: job.attemptsMade + 1 });
    if (this.stopping) return this.handBack(job, token);
    // The thread is reserved first, so the backend recorded is the one that trains the run.
    const lease = await this.o.pool.lease(runId);
    try {
      return await this.processOn(lease, job, token, log);
    } finally {
      lease.release();
    }
  }

  private async processOn(lease: Lease, job: Job<RunJobData>, token: string | undefined, log: Logger): Promise<void> {
    const { runId } = job.data;
    const attempt = { attempt: job.attemptsMade + 1, attempts: job.opts.attempts ?? 1, failedReason: job.failedReason };
    const { repo, pool } = this.o;
    const backend = lease.backend;
    const start = await this.lifecycle.start(runId, backend, attempt);
    if (start.kind === 'skip') {
      log.info({ status: start.status }, 'skipping job: run is not queued');
      return;
    }
    if (start.kind === 'cancelled') return;
    const { run, spec, resume, since } = start;
    if (resume) log.warn({ fromEpoch: resume.epoch + 1 }, 'run resumed from its checkpoint');
    else if (run.status === 'running') log.warn('run restarted from epoch 1 (no checkpoint)');
    this.training.add(runId);
    void this.beat(runId);
    const training = this.lifecycle.training(runId, backend, resume, {
      onFailure: (err) => {
        log.error({ err }, 'recording failed: stopping this attempt');
        pool.interrupt(runId);
      },
      onPublishFailure: (err) => log.warn({ err }, 'event stored but not published live (Redis unavailable); followers replay it from the store'),
    });
    log.info({ backend: backend.name, fromEpoch: training.lastEpoch + 1 }, 'training started');

    // A cancel that arrived between the status check and the thread starting.
    const recheck = setInterval(() => {
      void repo.get(runId).then(
        (r) => {
          if (r?.cancelRequested) pool.cancel(runId);
        },
        () => {},
      );
    }, 5000);
    try {
      const fault = this.o.injectFault?.({ id: runId, name: run.name });
      const { result, numTensors, stop, terminated } = await lease.train(spec, {
        dataDir: this.o.dataDir,
        progressIntervalMs: this.o.progressIntervalMs,
        ...(resume ? { resume } : {}),
        ...(this.o.runTimeLimitMs !== undefined ? { timeLimitMs: this.o.runTimeLimitMs - (Date.now() - since) } : {}),
        ...(fault ? { fault } : {}),
        onData: (source, ms) => log.info({ source, ms }, 'dataset loaded'),
        onEvent: (event: TrainingEvent) => {
          training.onEvent(event);
          if (event.type === 'epoch') {
            const { epoch, train, val, samplesPerSec } = event;
            log.info({ epoch, loss: train.loss, valAccuracy: val?.accuracy ?? null, samplesPerSec: Math.round(samplesPerSec) }, 'epoch done');
          }
        },
      });
      await training.flush();
      if (result.status === 'cancelled' && stop === 'interrupt') {
        await training.handBack();
        log.info({ resumeFromEpoch: training.lastEpoch + 1, terminated }, 'training interrupted by shutdown: job handed back to the queue');
        return await this.handBack(job, token);
      }
      if (result.status === 'cancelled') {
        await training.cancelled(terminated);
        log.info({ terminated }, 'training cancelled');
        return;
      }
      const { durationMs } = await training.succeeded(result);
      log.info({ test: result.test, durationMs, numTensors }, 'training succeeded');
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      const message = failureMessage(err, backend.name, this.o.runTimeLimitMs);
      const unrecoverable = err instanceof TrainingFailedError && err.unrecoverable;
      const outcome = await this.lifecycle.attemptFailed(training, message, { unrecoverable, ...attempt }).catch((e: unknown) => {
        log.error({ err: e }, 'could not mark the run failed');
        return 'failed' as const;
      });
      if (outcome === 'failed') {
        log.error({ err, unrecoverable, kind: err instanceof TrainingFailedError ? err.kind : undefined }, 'training failed');
        throw unrecoverable ? new UnrecoverableError(message) : err;
      }
      // Transient: the run stays running; BullMQ retries after a backoff and the retry resumes.
      log.warn({ err, attempts: attempt.attempts }, 'attempt failed: BullMQ retries it');
      throw err;
    } finally {
      clearInterval(recheck);
      this.training.delete(runId);
    }
  }

  /**
   * Graceful stop (SIGTERM): take no new job, ask every training to stop before its next batch
   * without cancelling its run, and hand its job back to the queue (the last completed epoch's
   * checkpoint is already stored), so another worker resumes it. Resolves true once every job
   * is handed back, false if that took longer than `graceMs` (those jobs' locks then expire and
   * BullMQ's stalled check hands them to another worker).
   */
  async shutdown(graceMs: number): Promise<boolean> {
    this.stopping = true;
    clearInterval(this.heartbeat);
    const closed = (this.worker?.close() ?? Promise.resolve()).then(() => true);
    const runs = this.o.pool.interruptAll();
    if (runs.length) this.o.log.info({ runs, graceMs }, 'shutting down: interrupting training, jobs go back to the queue');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    try {
      return await Promise.race([closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.worker?.close();
  }
}
