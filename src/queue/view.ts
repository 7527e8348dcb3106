/**
 * A read-only view of the runs queue: job counts by state, and where a waiting run stands.
 *
 * BullMQ's order (bullmq 5/6, moveToActive): a worker takes the oldest job of the `wait` list first
 * (jobs added without a priority), and only when that list is empty the lowest-scored job of the
 * `prioritized` sorted set, whose score is priority × 2³² + insertion counter: lower priority
 * number first, first-come first-served within one priority. Regula always enqueues with a
 * priority (default 50), so `wait` is normally empty and the prioritized order is the queue order.
 */
import type { Queue } from 'bullmq';

export const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];
export type QueueCounts = Record<QueueState, number>;

export interface QueuePosition {
  /** BullMQ's state of the run's job, or null when the queue holds no job for it. */
  state: string | null;
  /** 1 = the next job a free worker takes; null unless the job is waiting (wait or prioritized). */
  position: number | null;
}

export class QueueView {
  constructor(private readonly queue: Queue) {}

  async counts(): Promise<QueueCounts> {
    const raw = await this.queue.getJobCounts(...QUEUE_STATES);
    return Object.fromEntries(QUEUE_STATES.map((s) => [s, raw[s] ?? 0])) as QueueCounts;
  }

  /**
   * The run's place among waiting jobs, in the order workers take them: the `wait` list oldest
   * first, then `prioritized` by score (one script call, so both come from the same moment).
   * Reads every waiting job id: fine for thousands of waiting runs.
   */
  async position(runId: string): Promise<QueuePosition> {
    const ids = await this.queue.getRanges(['waiting', 'prioritized'], 0, -1, true);
    const index = ids.indexOf(runId);
    if (index >= 0) {
      const state = await this.queue.getJobState(runId);
      return { state, position: index + 1 };
    }
    const state = await this.queue.getJobState(runId);
    return { state: state === 'unknown' ? null : state, position: null };
  }
}
