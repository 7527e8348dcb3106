/** Messages between the worker host (main thread) and a training thread. */
import type { BackendPreference } from '../config.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import type { TrainingEvent, TrainingResult } from '../engine/types.js';

export interface ThreadInit {
  backend: BackendPreference;
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
  /** Int32Array over this buffer: [0] = 1 asks the loop to stop before its next batch. */
  cancel: SharedArrayBuffer;
}

export type ThreadMessage =
  | { type: 'ready'; backend: BackendReport }
  | { type: 'init-failed'; message: string }
  | { type: 'data-loaded'; runId: string; source: string; ms: number }
  | { type: 'event'; runId: string; event: TrainingEvent }
  | { type: 'done'; runId: string; result: TrainingResult; numTensors: number }
  | { type: 'failed'; runId: string; message: string; unrecoverable: boolean };
