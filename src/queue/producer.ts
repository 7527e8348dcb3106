import { Queue, type ConnectionOptions } from 'bullmq';
import { RUNS_QUEUE, type RunJobData } from './names.js';

/** Enqueues training jobs; the job id is the run id, so a run is queued at most once. */
export class RunQueue {
  readonly queue: Queue<RunJobData>;

  constructor(connection: ConnectionOptions, prefix: string) {
    this.queue = new Queue<RunJobData>(RUNS_QUEUE, {
      connection,
      prefix,
      defaultJobOptions: { removeOnComplete: 1000, removeOnFail: 5000, attempts: 1 },
    });
  }

  async enqueue(runId: string): Promise<void> {
    await this.queue.add('train', { runId }, { jobId: runId });
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
