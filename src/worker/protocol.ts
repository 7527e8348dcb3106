/** Messages between the worker host (main thread) and a training thread. */
import type { BackendPreference } from '../config.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import type { TrainingCheckpoint, TrainingEvent, TrainingResult } from '../engine/types.js';

export interface ThreadInit {
  backend: BackendPreference;
  /** Threads a native backend (onednn) may use: the cores shared out among the training threads. */
  threads: number;
}

export interface BackendReport {
  name: string;
  /** Why earlier choices were skipped, e.g. "tfjs-node: Cannot find module ...". Null when the first choice loaded. */
  note: string | null;
}

export interface TrainRequest {
  type: 'train';
  runId: string;
  spec: NormalizedSpec;
  dataDir: string;
  progressIntervalMs: number;
  /**
   * Int32Array over this buffer: [0] != 0 asks the loop to stop before its next batch, and says why
   * (STOP_CANCEL or STOP_INTERRUPT); the thread itself only reads it.
   */
  cancel: SharedArrayBuffer;
  /** Continue after this checkpoint's epoch (a run whose worker was lost, shut down or failed). */
  resume?: TrainingCheckpoint;
}

/** The stop flag's values: a user's cancel (the run ends `cancelled`)… */
export const STOP_CANCEL = 1;
/** …or an interruption (worker shutdown, a failed write): the run stays `running`, to be resumed. */
export const STOP_INTERRUPT = 2;

export type ThreadMessage =
  | { type: 'ready'; backend: BackendReport }
  | { type: 'init-failed'; message: string }
  | { type: 'data-loaded'; runId: string; source: string; ms: number }
  /** 'epoch' events carry their checkpoint (the thread always asks the engine for one). */
  | { type: 'event'; runId: string; event: TrainingEvent }
  | { type: 'done'; runId: string; result: TrainingResult; numTensors: number }
  | { type: 'failed'; runId: string; message: string; unrecoverable: boolean };
