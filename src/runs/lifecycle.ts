/**
 * A run's life on a worker, without the queue: start (queued → running), resume after its
 * checkpoint or restart from epoch 1 (a running run whose job came back), record what training
 * reports, and end it — succeeded, cancelled, handed back (shutdown), retried or failed. Every
 * status change is a compare-and-set in the store and is followed by its event (RunJournal), so
 * the rules read here in one place and can be tested without BullMQ; worker/host.ts only adapts
 * jobs to these calls.
 *
 * A job whose run is already `running` comes back because the worker that held it was lost (its
 * lock expired: BullMQ's stalled check put it back), shut down (it handed the job back) or failed
 * an attempt that BullMQ retries. Training then resumes after the run's checkpoint: the epoch
 * rows up to it stay, training continues with the next epoch, and a `resumed` event says from
 * where. Without a checkpoint (lost during epoch 1) it restarts from epoch 1 (`restarted`).
 */
import type { RuntimeVersions } from '../engine/backends/index.js';
import type { CheckpointSpecs, TrainingCheckpoint, TrainingEvent, TrainingResult } from '../engine/types.js';
import { epochRecord, type RunEventSequence, type RunJournal, type SequenceHandlers } from '../events/run-events.js';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import type { CheckpointRow, RunsRepo } from '../store/runs-repo.js';
import type { RunRecord } from './records.js';

/** The backend of the training thread that takes the run: recorded on the run. */
export interface TrainingBackend {
  name: string;
  note: string | null;
  versions?: RuntimeVersions;
}

/** Which attempt of its job this is (BullMQ's attempts), and why the previous one failed. */
export interface Attempt {
  attempt: number;
  attempts: number;
  failedReason?: string | undefined;
}

/** What a worker does with a job: train its run, or nothing (cancelled before start, or not queued/running). */
export type Start =
  | { kind: 'train'; run: RunRecord; spec: NormalizedSpec; resume: TrainingCheckpoint | undefined; since: number }
  | { kind: 'cancelled' }
  | { kind: 'skip'; status: RunRecord['status'] | undefined };

function toCheckpoint(row: CheckpointRow): TrainingCheckpoint {
  // Copies: a stored Buffer may be a view on a larger one, and the copy is what goes to the thread.
  return { epoch: row.epoch, weights: new Uint8Array(row.weights), optimizer: new Uint8Array(row.optimizer), specs: row.specs as CheckpointSpecs };
}

export class RunLifecycle {
  constructor(
    private readonly repo: RunsRepo,
    private readonly journal: RunJournal,
  ) {}

  /**
   * Takes the run for training on `backend`: a queued run starts; a running one resumes after its
   * checkpoint (`resumed`) or restarts from epoch 1 (`restarted`). A run whose cancel came first
   * ends `cancelled`; any other is skipped.
   */
  async start(runId: string, backend: TrainingBackend, attempt: Attempt): Promise<Start> {
    const run = await this.repo.get(runId);
    let resume: TrainingCheckpoint | undefined;
    /** When the run's wall-clock limit started counting. */
    let since = Date.now();
    if (run?.status === 'running') {
      const r = await this.repo.resume(runId, backend.name, backend.note, backend.versions);
      if (!r) return this.cancelBeforeStart(runId);
      const why =
        attempt.attempt > 1
          ? `attempt ${attempt.attempt} of ${attempt.attempts} after: ${attempt.failedReason ?? 'a failure'}`
          : 'the worker training this run was lost or shut down';
      if (r.checkpoint) {
        since = run.startedAt?.getTime() ?? since;
        resume = toCheckpoint(r.checkpoint);
        await this.journal.record(runId, { type: 'resumed', data: { fromEpoch: resume.epoch + 1, reason: why } });
      } else {
        await this.journal.record(runId, { type: 'restarted', data: { reason: `${why}; no epoch was completed, training restarts from epoch 1` } });
      }
    } else if (run?.status === 'queued') {
      if (!(await this.repo.markRunning(runId, backend.name, backend.note, backend.versions))) return this.cancelBeforeStart(runId);
    } else {
      return { kind: 'skip', status: run?.status };
    }
    return { kind: 'train', run, spec: run.spec, resume, since };
  }

  /** A cancel that came before training started: the run ends `cancelled` (if it had not ended). */
  private async cancelBeforeStart(runId: string): Promise<Start> {
    if (await this.repo.finish(runId, 'cancelled')) await this.journal.record(runId, { type: 'cancelled', data: { reason: 'cancelled before start' } });
    return { kind: 'cancelled' };
  }

  /** What one attempt's training reports, recorded in order (see Training). */
  training(runId: string, backend: TrainingBackend, resume: TrainingCheckpoint | undefined, handlers: SequenceHandlers = {}): Training {
    return new Training(runId, backend, resume?.epoch ?? 0, this.repo, this.journal.sequence(runId, handlers));
  }

  /**
   * An attempt failed with `error`. The run fails when the failure is `unrecoverable` (it would fail
   * again anywhere) or this was the last attempt; otherwise it stays running and the retry resumes
   * from its checkpoint (`retrying`).
   */
  async attemptFailed(t: Training, error: string, opts: { unrecoverable: boolean } & Attempt): Promise<'failed' | 'retrying'> {
    await t.flush().catch(() => {});
    if (opts.unrecoverable || opts.attempt >= opts.attempts) {
      await this.fail(t.runId, error);
      return 'failed';
    }
    try {
      await this.journal.record(t.runId, {
        type: 'retrying',
        data: { error, attempt: opts.attempt, attempts: opts.attempts, resumeFromEpoch: t.lastEpoch + 1 },
      });
    } catch {
      // The store may be what failed; the retry's 'resumed' event tells the story.
    }
    return 'retrying';
  }

  /** queued | running → failed, with its event (nothing if the run had already ended). */
  async fail(runId: string, error: string): Promise<void> {
    if (await this.repo.finish(runId, 'failed', { error })) await this.journal.record(runId, { type: 'failed', data: { error } });
  }
}

/**
 * One attempt's training of a run: turns the engine's events into epoch rows with their
 * checkpoints and run events, and ends the attempt.
 */
export class Training {
  /** The last epoch stored with its checkpoint (what a resume would continue after). */
  lastEpoch: number;
  /** The last epoch's throughput. */
  samplesPerSec: number | undefined;
  private readonly startedAt = performance.now();

  constructor(
    readonly runId: string,
    private readonly backend: TrainingBackend,
    fromEpoch: number,
    private readonly repo: RunsRepo,
    private readonly events: RunEventSequence,
  ) {
    this.lastEpoch = fromEpoch;
  }

  /** Records an engine event (an epoch's row and checkpoint are stored before its event). */
  onEvent(event: TrainingEvent): void {
    switch (event.type) {
      case 'started': {
        const { type: _t, ...data } = event;
        this.events.record({ type: 'started', data: { backend: this.backend.name, backendNote: this.backend.note, ...data } });
        break;
      }
      case 'early-stopped': {
        const { type: _t, ...data } = event;
        this.events.record({ type: 'early-stopped', data });
        break;
      }
      case 'batch': {
        const { type: _t, ...data } = event;
        this.events.record({ type: 'batch', data });
        break;
      }
      case 'epoch': {
        const { type: _t, checkpoint, ...report } = event;
        this.samplesPerSec = report.samplesPerSec;
        const { row, event: recorded } = epochRecord(report);
        this.events.record(recorded, async () => {
          await this.repo.saveEpoch(this.runId, row, checkpoint);
          this.lastEpoch = report.epoch;
        });
        break;
      }
    }
  }

  /** Waits for every recorded event; throws the first storage failure, if any. */
  flush(): Promise<void> {
    return this.events.flush();
  }

  private get durationMs(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  /**
   * Shutdown: the run stays running; its checkpoint (the last completed epoch) is stored. The job
   * goes back to the queue so another worker resumes it at once (`interrupted`).
   */
  async handBack(): Promise<void> {
    this.events.record({
      type: 'interrupted',
      data: { reason: 'the worker is shutting down; another worker resumes the run', resumeFromEpoch: this.lastEpoch + 1 },
    });
    await this.events.flush();
  }

  /** A user's cancel stopped training: the run ends `cancelled`. */
  async cancelled(terminated: boolean): Promise<void> {
    const durationMs = this.durationMs;
    await this.repo.finish(this.runId, 'cancelled', this.samplesPerSec !== undefined ? { samplesPerSec: this.samplesPerSec } : {});
    this.events.record({
      type: 'cancelled',
      data: {
        reason: terminated ? 'cancelled by request; the training thread did not stop at a batch boundary in time and was terminated' : 'cancelled by request',
        epochsCompleted: this.lastEpoch,
        durationMs,
      },
    });
    await this.events.flush();
  }

  /** Training completed: its model and test metrics are stored and the run ends `succeeded`. */
  async succeeded(result: Extract<TrainingResult, { status: 'completed' }>): Promise<{ durationMs: number }> {
    const durationMs = this.durationMs;
    const { samplesPerSec } = this;
    await this.repo.saveArtifact(this.runId, result.artifact);
    await this.repo.finish(this.runId, 'succeeded', {
      testLoss: result.test.loss,
      testAccuracy: result.test.accuracy,
      testMetrics: result.test,
      weightStats: result.weights,
      ...(samplesPerSec !== undefined ? { samplesPerSec } : {}),
    });
    this.events.record({
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
    await this.events.flush();
    return { durationMs };
  }
}
