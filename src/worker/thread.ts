/**
 * A training thread: owns one tfjs backend and trains one run at a time, so the worker host's
 * event loop stays free for BullMQ's lock renewal however long a synchronous kernel runs.
 * Imports the engine only.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend, runtimeVersions } from '../engine/backends/index.js';
import { loadDataset } from '../engine/data/load.js';
import { DatasetError } from '../engine/data/errors.js';
import { TrainingSetupError } from '../engine/errors.js';
import type { LoadedDataset } from '../engine/data/types.js';
import { toDatasetSpec } from '../engine/dataset-spec.js';
import { train } from '../engine/train.js';
import { classifyFault, type InjectedFault, type ThreadInit, type ThreadMessage, type TrainRequest } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('worker/thread.ts must run in a worker thread');
const init = workerData as ThreadInit;
const post = (m: ThreadMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

/** The last dataset loaded, kept for the next run that asks for the same data (studies, retries). */
let cached: { key: string; data: LoadedDataset } | undefined;

async function dataFor(req: TrainRequest): Promise<LoadedDataset> {
  const spec = toDatasetSpec(req.spec.dataset);
  const key = JSON.stringify([req.dataDir, spec]);
  if (cached?.key === key) return cached.data;
  cached = undefined;
  const t0 = performance.now();
  const data = await loadDataset(spec, req.dataDir);
  post({ type: 'data-loaded', runId: req.runId, source: data.source, ms: Math.round(performance.now() - t0) });
  cached = { key, data };
  return data;
}

/**
 * Test-only fault injection (see InjectedFault), around the engine call: the engine itself is not
 * touched. Returns the hook to run at the first batch event.
 */
function injector(fault: InjectedFault | undefined): () => void {
  if (!fault || !init.faultInjection) return () => {};
  let fired = false;
  return () => {
    if (fired) return;
    fired = true;
    if (fault === 'spin') {
      // A kernel that never returns: synchronous, so the stop flag is never read again.
      for (;;) Atomics.load(spinFlag, 0);
    }
    if (fault === 'exhaust-heap') {
      const hog: number[][] = [];
      for (;;) hog.push(new Array<number>(1 << 20).fill(hog.length));
    }
    const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
    if (!wasm?.HEAPU8) throw new Error('fault injection: corrupt-native needs the wasm backend');
    // Garbage over the whole linear memory (allocator metadata, tensors, XNNPACK operator state):
    // the next kernel call traps for real, and every later one would too.
    wasm.HEAPU8.fill(0xa5);
  };
}
const spinFlag = new Int32Array(new SharedArrayBuffer(4));

async function handle(req: TrainRequest): Promise<void> {
  const flag = new Int32Array(req.cancel);
  const fault = injector(req.fault);
  try {
    const data = await dataFor(req);
    const result = await train(req.spec, data, {
      progressIntervalMs: req.progressIntervalMs,
      shouldStop: () => Atomics.load(flag, 0) !== 0,
      checkpoints: true,
      ...(req.resume ? { resume: req.resume } : {}),
      onEvent: (event) => {
        // A checkpoint's buffers move to the main thread instead of being copied.
        const transfer = event.type === 'epoch' && event.checkpoint ? [event.checkpoint.weights.buffer, event.checkpoint.optimizer.buffer] : [];
        post({ type: 'event', runId: req.runId, event }, transfer as ArrayBuffer[]);
        if (event.type === 'batch') fault(); // after the event: a test can wait for it
      },
    });
    post({ type: 'done', runId: req.runId, result, numTensors: tf.memory().numTensors });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // A trap or exhausted memory (even while the model builds): this spec does it again on any
    // worker, and this thread's backend is broken (the pool replaces the thread).
    const fault = classifyFault(err);
    // Bad data or a spec that cannot build: the same on any worker, at any attempt.
    const setup = fault === null && (err instanceof DatasetError || err instanceof TrainingSetupError);
    post({ type: 'failed', runId: req.runId, message, unrecoverable: setup || fault !== null, fault });
  }
}

try {
  const info = await initBackend(init.backend, () => {}, { threads: init.threads });
  const note = info.fallbacks.length ? info.fallbacks.map((f) => `${f.backend}: ${f.reason}`).join('; ') : null;
  post({ type: 'ready', backend: { name: info.name, note, versions: runtimeVersions() } });
} catch (err) {
  post({ type: 'init-failed', message: err instanceof Error ? err.message : String(err) });
}

let busy: Promise<void> = Promise.resolve();
port.on('message', (req: TrainRequest) => {
  busy = busy.then(() => handle(req));
});
