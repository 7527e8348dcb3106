/** Messages between the worker host (main thread) and a training thread. */
import type { RuntimeVersions } from '../engine/backends/index.js';
import type { BackendPreference } from '../config.js';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import type { TrainingCheckpoint, TrainingEvent, TrainingResult } from '../engine/types.js';

export interface ThreadInit {
  backend: BackendPreference;
  /** Threads a native backend (onednn) may use: the cores shared out among the training threads. */
  threads: number;
  /** Test-only: the thread honours TrainRequest.fault (never set by the service's entry points). */
  faultInjection?: boolean;
}

/**
 * Test-only faults (pool started with faultInjection): at the first batch event of the run,
 * `corrupt-native` overwrites the wasm backend's linear memory (the engine's state is then really
 * broken: its next kernel traps, like the fault seen in the field); `spin` busy-loops forever inside
 * the training call (like a kernel that never returns), ignoring the stop flag; `exhaust-heap`
 * allocates JS arrays until V8's heap limit (TRAINING_HEAP_LIMIT_MB) kills the thread.
 */
export type InjectedFault = 'corrupt-native' | 'spin' | 'exhaust-heap';

export interface BackendReport {
  name: string;
  /** Regula, tfjs and backend versions, recorded on every run the thread trains. */
  versions: RuntimeVersions;
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
  /** Test-only, see InjectedFault. */
  fault?: InjectedFault;
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
  /**
   * `fault`: the failure came from the engine's native side (a wasm trap, memory exhausted): the
   * thread's backend can no longer be trusted, so the pool terminates and replaces the thread, and
   * the failure is unrecoverable for that spec. `unrecoverable` without a fault: bad data or a
   * spec that does not build.
   */
  | { type: 'failed'; runId: string; message: string; unrecoverable: boolean; fault: NativeFault | null };

/** A failure of the engine's native side: a trap (wasm or a native kernel) or memory exhausted. */
export type NativeFault = 'trap' | 'out-of-memory';

/**
 * Classifies an error thrown by the engine. WebAssembly traps surface as WebAssembly.RuntimeError
 * (or their message once re-thrown by tfjs); memory exhaustion as a RangeError from an allocation,
 * a failed wasm memory growth (Emscripten's abort) or V8's heap limit.
 */
export function classifyFault(err: unknown): NativeFault | null {
  const message = err instanceof Error ? err.message : String(err);
  if (
    /out of memory|\bOOM\b|Array buffer allocation failed|Cannot enlarge memory|Invalid typed array length|Invalid array buffer length|allocation failed|heap limit/i.test(
      message,
    )
  ) {
    return 'out-of-memory';
  }
  if (err instanceof Error && err.name === 'RuntimeError') return 'trap'; // WebAssembly.RuntimeError
  if (
    /memory access out of bounds|null function|function signature mismatch|unreachable (?:code|executed)|table index is out of bounds|indirect call|Aborted\(/i.test(
      message,
    )
  )
    return 'trap';
  return null;
}
