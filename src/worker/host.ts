/**
 * The worker host: a BullMQ worker whose processor hands each run to a training thread and turns
 * the engine's reports into epoch rows, events (stored, then published) and the final artifact.
 * Its own event loop only waits on messages, so BullMQ can renew job locks during long epochs.
 */
import { Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { RunEventBus } from '../events/bus.js';
import { RUNS_QUEUE, type RunJobData } from '../queue/names.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import type { RunsRepo } from '../store/runs-repo.js';
import type { TrainingEvent } from '../engine/types.js';
import type { TrainerPool } from './pool.js';

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
}

/** Writes one run's events in order: store first (it assigns the SSE id), then publish. */
class RunRecorder {
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly runId: string,
    private readonly repo: RunsRepo,
    private readonly bus: RunEventBus,
  ) {}

  record(type: string, data: unknown, before?: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      try {
        if (before) await before();
        const event = await this.repo.appendEvent(this.runId, type, data);
        await this.bus.publish(this.runId, event);
      } catch (err) {
        this.failure ??= err;
      }
    });
  }

  /** Waits for every recorded event; throws the first storage failure, if any. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure;
  }
}

export class WorkerHost {
  private worker: Worker<RunJobData> | undefined;

  constructor(private readonly o: WorkerHostOptions) {}

  async start(): Promise<void> {
    await this.o.bus.onCancel((runId) => {
      if (this.o.pool.cancel(runId)) this.o.log.info({ runId }, 'cancel requested: stopping before the next batch');
    });
    this.worker = new Worker<RunJobData>(RUNS_QUEUE, (job) => this.process(job), {
      connection: this.o.connection,
      prefix: this.o.prefix,
      concurrency: this.o.concurrency,
    });
    this.worker.on('error', (err) => this.o.log.error({ err }, 'worker error'));
    await this.worker.waitUntilReady();
  }

  private async process(job: Job<RunJobData>): Promise<void> {
    const { runId } = job.data;
    const log = this.o.log.child({ runId });
    const { repo, bus, pool } = this.o;
    const run = await repo.get(runId);
    const backend = pool.backend;
    if (run?.status === 'running') {
      // Only a stalled job comes back while its run is running: the worker that held it died.
      if (!(await repo.restart(runId, backend.name, backend.note))) return this.cancelIfRequested(runId);
      const e = await repo.appendEvent(runId, 'restarted', { reason: 'the worker training this run was lost; training restarts from epoch 1' });
      await bus.publish(runId, e);
      log.warn('run restarted after a lost worker');
    } else if (run?.status === 'queued') {
      if (!(await repo.markRunning(runId, backend.name, backend.note))) return this.cancelIfRequested(runId);
    } else {
      log.info({ status: run?.status }, 'skipping job: run is not queued');
      return;
    }
    const spec = run.spec as unknown as NormalizedSpec;
    const rec = new RunRecorder(runId, repo, bus);
    const started = performance.now();
    log.info({ backend: backend.name }, 'training started');

    // A cancel that arrived between the status check and the thread starting.
    const recheck = setInterval(() => {
      void repo.get(runId).then((r) => {
        if (r?.cancelRequested) pool.cancel(runId);
      });
    }, 5000);
    try {
      let samplesPerSec: number | undefined;
      const { result, numTensors } = await pool.train(runId, spec, {
        dataDir: this.o.dataDir,
        progressIntervalMs: this.o.progressIntervalMs,
        onData: (source, ms) => log.info({ source, ms }, 'dataset loaded'),
        onEvent: (event: TrainingEvent) => {
          switch (event.type) {
            case 'started':
              rec.record('started', { backend: backend.name, backendNote: backend.note, ...event, type: undefined });
              break;
            case 'early-stopped': {
              const { type: _t, ...data } = event;
              rec.record('early-stopped', data);
              break;
            }
            case 'batch': {
              const { type: _t, ...data } = event;
              rec.record('batch', data);
              break;
            }
            case 'epoch': {
              const { type: _t, ...report } = event;
              samplesPerSec = report.samplesPerSec;
              const row = {
                epoch: report.epoch,
                loss: report.train.loss,
                accuracy: report.train.accuracy,
                valLoss: report.val?.loss ?? null,
                valAccuracy: report.val?.accuracy ?? null,
                durationMs: report.durationMs,
                details: { train: report.train, val: report.val, samplesPerSec: report.samplesPerSec, weights: report.weights },
              };
              rec.record(
                'epoch',
                { ...row, epochs: report.epochs, samplesPerSec: report.samplesPerSec, train: report.train, val: report.val, weights: report.weights, details: undefined },
                () => repo.saveEpoch(runId, row),
              );
              log.info({ epoch: report.epoch, loss: row.loss, valAccuracy: row.valAccuracy, samplesPerSec: Math.round(report.samplesPerSec) }, 'epoch done');
              break;
            }
          }
        },
      });
      await rec.flush();
      const durationMs = Math.round(performance.now() - started);
      if (result.status === 'cancelled') {
        await repo.finish(runId, 'cancelled', samplesPerSec !== undefined ? { samplesPerSec } : {});
        rec.record('cancelled', { reason: 'cancelled by request', epochsCompleted: result.epochs.length, durationMs });
        await rec.flush();
        log.info('training cancelled');
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
      rec.record('completed', {
        test: result.test,
        durationMs,
        samplesPerSec: samplesPerSec ?? null,
        stoppedEarly: result.stoppedEarly,
        weights: result.weights,
        modelSha256: result.artifact.sha256,
      });
      await rec.flush();
      log.info({ test: result.test, durationMs, numTensors }, 'training succeeded');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.error({ err }, 'training failed');
      await rec.flush().catch(() => {});
      if (await repo.finish(runId, 'failed', { error: message })) {
        const e = await repo.appendEvent(runId, 'failed', { error: message });
        await bus.publish(runId, e);
      }
    } finally {
      clearInterval(recheck);
    }
  }

  private async cancelIfRequested(runId: string): Promise<void> {
    const { repo, bus } = this.o;
    if (await repo.finish(runId, 'cancelled')) {
      const e = await repo.appendEvent(runId, 'cancelled', { reason: 'cancelled before start' });
      await bus.publish(runId, e);
    }
  }

  async close(): Promise<void> {
    await this.worker?.close();
  }
}
