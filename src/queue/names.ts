/** The BullMQ queue that carries training jobs. A job's id is its run's id. */
export const RUNS_QUEUE = 'runs';

export interface RunJobData {
  runId: string;
}
