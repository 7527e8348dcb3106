import { Queue, type ConnectionOptions } from 'bullmq';
import { RUNS_QUEUE, type RunJobData } from './names.js';

/** Attempts per training job (the first run and up to four retries after transient failures). */
export const JOB_ATTEMPTS = 5;
/** The first retry's delay; each further one doubles it (BullMQ's exponential backoff). */
export const RETRY_DELAY_MS = 5000;

/** Enqueues training jobs; the job id is the run id, so a run is queued at most once. */
export class RunQueue {
  readonly queue: Queue<RunJobData>;

  constructor(connection: ConnectionOptions, prefix: string) {
    this.queue = new Queue<RunJobData>(RUNS_QUEUE, {
      connection,
      prefix,
      // A failed attempt is retried after 5 s, 10 s, 20 s, 40 s: a worker that could not record (the
      // database briefly away) or whose training thread died. The retry resumes from the run's last
      // checkpoint. A spec that can never train throws UnrecoverableError and is not retried.
      defaultJobOptions: { removeOnComplete: 1000, removeOnFail: 5000, attempts: JOB_ATTEMPTS, backoff: { type: 'exponential', delay: RETRY_DELAY_MS } },
    });
  }

  /**
   * `priority`: BullMQ's, lower is sooner (1 first). BullMQ runs jobs without a priority before all
   * prioritized ones, so the API always passes one.
   */
  async enqueue(runId: string, opts: { priority?: number } = {}): Promise<void> {
    await this.queue.add('train', { runId }, { jobId: runId, ...(opts.priority !== undefined ? { priority: opts.priority } : {}) });
  }

  /** Removes a job that no worker holds. True if it was removed (false when active or gone). */
  async removeWaiting(runId: string): Promise<boolean> {
    const job = await this.queue.getJob(runId);
    if (!job) return false;
    const state = await job.getState();
    if (state === 'active') return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // a worker took it meanwhile
    }
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
