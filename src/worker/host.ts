/**
 * The worker host: a BullMQ worker whose processor hands each run to a training thread and turns
 * the engine's reports into epoch rows with their checkpoints, events (stored, then published)
 * and the final artifact. Its own event loop only waits on messages, so BullMQ can renew job locks
 * during long epochs.
 *
 * A job whose run is already `running` comes back because the worker that held it was lost (its
 * lock expired: BullMQ's stalled check put it back), shut down (it handed the job back) or failed
 * an attempt that BullMQ retries. Training then resumes after the run's checkpoint: the epoch
 * rows up to it stay, training continues with the next epoch, and a `resumed` event says from
 * where. Without a checkpoint (lost during epoch 1) it restarts from epoch 1 (`restarted`).
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
import { epochRecord, RunJournal } from '../events/run-events.js';
import { RUNS_QUEUE, type RunJobData } from '../queue/names.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import type { CheckpointRow, RunsRepo } from '../store/runs-repo.js';
import type { CheckpointSpecs, TrainingCheckpoint, TrainingEvent } from '../engine/types.js';
import { TrainingFailed, type Lease, type PoolHealth, type TrainerPool } from './pool.js';
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
  if (!(err instanceof TrainingFailed)) return message;
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

function toCheckpoint(row: CheckpointRow): TrainingCheckpoint {
  // Copies: a stored Buffer may be a view on a larger one, and the copy is what goes to the thread.
  return { epoch: row.epoch, weights: new Uint8Array(row.weights), optimizer: new Uint8Array(row.optimizer), specs: row.specs as CheckpointSpecs };
}

export class WorkerHost {
  private worker: Worker<RunJobData> | undefined;
  private stopping = false;
  /** Runs this host is training: their heartbeats tell the reconciler they are not orphaned. */
  private readonly training = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly journal: RunJournal;

  constructor(private readonly o: WorkerHostOptions) {
    this.journal = new RunJournal(o.repo, o.bus);
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
      void this.failRun(job.data.runId, err.message).catch((e: unknown) => this.o.log.error({ err: e, runId: job.data.runId }, 'could not fail the run'));
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
      const client = (await this.worker?.getBackend().client) as unknown as { set(key: string, value: string, px: 'PX', ms: number): Promise<unknown> } | undefined;
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

  private async failRun(runId: string, error: string): Promise<void> {
    if (await this.o.repo.finish(runId, 'failed', { error })) await this.journal.record(runId, { type: 'failed', data: { error } });
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
    const attempts = job.opts.attempts ?? 1;
    const attempt = job.attemptsMade + 1;
    const { repo, pool } = this.o;
    const run = await repo.get(runId);
    const backend = lease.backend;
    let resume: TrainingCheckpoint | undefined;
    /** When the run's wall-clock limit started counting. */
    let since = Date.now();
    if (run?.status === 'running') {
      const r = await repo.resume(runId, backend.name, backend.note, backend.versions);
      if (!r) return this.cancelIfRequested(runId);
      const why =
        job.attemptsMade > 0
          ? `attempt ${attempt} of ${attempts} after: ${job.failedReason ?? 'a failure'}`
          : 'the worker training this run was lost or shut down';
      if (r.checkpoint) {
        since = run.startedAt?.getTime() ?? since;
        resume = toCheckpoint(r.checkpoint);
        await this.journal.record(runId, { type: 'resumed', data: { fromEpoch: resume.epoch + 1, reason: why } });
        log.warn({ fromEpoch: resume.epoch + 1 }, 'run resumed from its checkpoint');
      } else {
        await this.journal.record(runId, { type: 'restarted', data: { reason: `${why}; no epoch was completed, training restarts from epoch 1` } });
        log.warn('run restarted from epoch 1 (no checkpoint)');
      }
    } else if (run?.status === 'queued') {
      if (!(await repo.markRunning(runId, backend.name, backend.note, backend.versions))) return this.cancelIfRequested(runId);
    } else {
      log.info({ status: run?.status }, 'skipping job: run is not queued');
      return;
    }
    const spec = run.spec as unknown as NormalizedSpec;
    this.training.add(runId);
    void this.beat(runId);
    const rec = this.journal.sequence(runId, {
      onFailure: (err) => {
        log.error({ err }, 'recording failed: stopping this attempt');
        pool.interrupt(runId);
      },
      onPublishFailure: (err) => log.warn({ err }, 'event stored but not published live (Redis unavailable); followers replay it from the store'),
    });
    const started = performance.now();
    /** The last epoch stored with its checkpoint (what a resume would continue after). */
    let lastEpoch = resume?.epoch ?? 0;
    log.info({ backend: backend.name, fromEpoch: lastEpoch + 1 }, 'training started');

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
      let samplesPerSec: number | undefined;
      const fault = this.o.injectFault?.({ id: runId, name: run.name });
      const { result, numTensors, stop, terminated } = await lease.train(spec, {
        dataDir: this.o.dataDir,
        progressIntervalMs: this.o.progressIntervalMs,
        ...(resume ? { resume } : {}),
        ...(this.o.runTimeLimitMs !== undefined ? { timeLimitMs: this.o.runTimeLimitMs - (Date.now() - since) } : {}),
        ...(fault ? { fault } : {}),
        onData: (source, ms) => log.info({ source, ms }, 'dataset loaded'),
        onEvent: (event: TrainingEvent) => {
          switch (event.type) {
            case 'started': {
              const { type: _t, ...data } = event;
              rec.record({ type: 'started', data: { backend: backend.name, backendNote: backend.note, ...data } });
              break;
            }
            case 'early-stopped': {
              const { type: _t, ...data } = event;
              rec.record({ type: 'early-stopped', data });
              break;
            }
            case 'batch': {
              const { type: _t, ...data } = event;
              rec.record({ type: 'batch', data });
              break;
            }
            case 'epoch': {
              const { type: _t, checkpoint, ...report } = event;
              samplesPerSec = report.samplesPerSec;
              const { row, event: epochEvent } = epochRecord(report);
              rec.record(epochEvent, async () => {
                await repo.saveEpoch(runId, row, checkpoint);
                lastEpoch = report.epoch;
              });
              log.info({ epoch: report.epoch, loss: row.loss, valAccuracy: row.valAccuracy, samplesPerSec: Math.round(report.samplesPerSec) }, 'epoch done');
              break;
            }
          }
        },
      });
      await rec.flush();
      const durationMs = Math.round(performance.now() - started);
      if (result.status === 'cancelled' && stop === 'interrupt') {
        // Shutdown: the run stays running; its checkpoint (the last completed epoch) is stored.
        // Hand the job back so another worker resumes it at once.
        rec.record({ type: 'interrupted', data: { reason: 'the worker is shutting down; another worker resumes the run', resumeFromEpoch: lastEpoch + 1 } });
        await rec.flush();
        log.info({ resumeFromEpoch: lastEpoch + 1, terminated }, 'training interrupted by shutdown: job handed back to the queue');
        return await this.handBack(job, token);
      }
      if (result.status === 'cancelled') {
        await repo.finish(runId, 'cancelled', samplesPerSec !== undefined ? { samplesPerSec } : {});
        rec.record({
          type: 'cancelled',
          data: {
            reason: terminated ? 'cancelled by request; the training thread did not stop at a batch boundary in time and was terminated' : 'cancelled by request',
            epochsCompleted: lastEpoch,
            durationMs,
          },
        });
        await rec.flush();
        log.info({ terminated }, 'training cancelled');
        return;
      }
      await repo.saveArtifact(runId, result.artifact);
      await repo.finish(runId, 'succeeded', {
        testLoss: result.test.loss,
        testAccuracy: result.test.accuracy,
        testMetrics: result.test,
        weightStats: result.weights,
        ...(samplesPerSec !== undefined ? { samplesPerSec } : {}),
      });
      rec.record({
        type: 'completed',
        data: {
          test: result.test,
          durationMs,
          samplesPerSec: samplesPerSec ?? null,
          stoppedEarly: result.stoppedEarly,
          weights: result.weights,
          modelSha256: result.artifact.sha256,
        },
      });
      await rec.flush();
      log.info({ test: result.test, durationMs, numTensors }, 'training succeeded');
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      const message = failureMessage(err, backend.name, this.o.runTimeLimitMs);
      await rec.flush().catch(() => {});
      const unrecoverable = err instanceof TrainingFailed && err.unrecoverable;
      if (unrecoverable || attempt >= attempts) {
        log.error({ err, unrecoverable, kind: err instanceof TrainingFailed ? err.kind : undefined }, 'training failed');
        await this.failRun(runId, message).catch((e: unknown) => log.error({ err: e }, 'could not mark the run failed'));
        throw unrecoverable ? new UnrecoverableError(message) : err;
      }
      // Transient: the run stays running; BullMQ retries after a backoff and the retry resumes.
      log.warn({ err, attempts }, 'attempt failed: BullMQ retries it');
      try {
        await this.journal.record(runId, { type: 'retrying', data: { error: message, attempt, attempts, resumeFromEpoch: lastEpoch + 1 } });
      } catch {
        // The store may be what failed; the retry's 'resumed' event tells the story.
      }
      throw err;
    } finally {
      clearInterval(recheck);
      this.training.delete(runId);
    }
  }

  private async cancelIfRequested(runId: string): Promise<void> {
    if (await this.o.repo.finish(runId, 'cancelled')) await this.journal.record(runId, { type: 'cancelled', data: { reason: 'cancelled before start' } });
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
