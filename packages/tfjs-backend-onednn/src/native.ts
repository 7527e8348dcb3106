/**
 * Loads the oneDNN N-API addon (build/Release/tfjs_onednn.node) and describes
 * its functions. All array arguments are passed by reference (no copies):
 * the addon reads and writes the typed arrays' memory directly.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Activation codes understood by convForward and matmul. */
export const ACT = { linear: 0, relu: 1, relu6: 2, elu: 3, leakyrelu: 4, sigmoid: 5 } as const;

/** Binary op codes understood by `binary`. */
export const BINARY = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  max: 4,
  min: 5,
  squaredDifference: 6,
  pow: 7,
} as const;

/** Unary op codes understood by `unary`. */
export const UNARY = {
  relu: 0,
  relu6: 1,
  step: 2,
  sqrt: 3,
  square: 4,
  exp: 5,
  log: 6,
  neg: 7,
  floor: 8,
  abs: 9,
  sigmoid: 10,
  tanh: 11,
  rsqrt: 12,
  reciprocal: 13,
  leakyRelu: 14,
  elu: 15,
  clip: 16,
  ceil: 17,
  sign: 18,
  log1p: 19,
  expm1: 20,
  softplus: 21,
} as const;

/** Reduction codes understood by `reduce`. */
export const REDUCE = { sum: 0, mean: 1, max: 2, min: 3 } as const;

/**
 * Convolution parameter block (Int32Array of 19):
 * [N, H, W, IC, OC, KH, KW, OH, OW, SH, SW, DH, DW, padTop, padLeft,
 *  padBottom, padRight, hasBias, activation]
 */
export const CONV_PARAMS = 19;
/**
 * Pooling parameter block (Int32Array of 15):
 * [N, H, W, C, OH, OW, KH, KW, SH, SW, padTop, padLeft, padBottom, padRight, alg (0 max, 1 avg over in-bounds elements, 2 avg over the full window)]
 */
export const POOL_PARAMS = 15;

export interface NativeAddon {
  setThreads(n: number): number;
  getThreads(): number;
  info(): string;
  describe(): string;
  convForward(x: Float32Array, filter: Float32Array, bias: Float32Array | null, out: Float32Array, params: Int32Array, alpha: number): void;
  convBackwardData(dy: Float32Array, filter: Float32Array, dx: Float32Array, params: Int32Array): void;
  convBackwardWeights(x: Float32Array, dy: Float32Array, dw: Float32Array, params: Int32Array): void;
  poolForward(x: Float32Array, y: Float32Array, params: Int32Array, workspace: Uint8Array | null): void;
  poolBackward(dy: Float32Array, workspace: Uint8Array | null, dx: Float32Array, params: Int32Array): void;
  poolWorkspaceSize(params: Int32Array): number;
  /** params: [batchA, batchB, M, N, K, transposeA, transposeB] */
  matmul(a: Float32Array, b: Float32Array, out: Float32Array, params: Int32Array, bias: Float32Array | null, activation: number, alpha: number): void;
  binary(a: Float32Array, aShape: Int32Array, b: Float32Array, bShape: Int32Array, out: Float32Array, op: number): void;
  unary(x: Float32Array, out: Float32Array, op: number, alpha: number, beta: number): void;
  reduce(x: Float32Array, out: Float32Array, outer: number, reduced: number, inner: number, op: number): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /**
   * One tfjs Adam step, op for op in float32. scalars: [beta1, 1-beta1, beta2,
   * 1-beta2, 1-accBeta1, 1-accBeta2, epsilon, -learningRate], float32-rounded.
   */
  adam(
    value: Float32Array,
    m: Float32Array,
    v: Float32Array,
    grad: Float32Array,
    outValue: Float32Array,
    outM: Float32Array,
    outV: Float32Array,
    scalars: Float32Array,
  ): void;
  /** out[o, j, :] = x[o, indices[j], :] for float32 or int32 data. */
  gather(x: Float32Array | Int32Array, indices: Int32Array, out: Float32Array | Int32Array, outer: number, dim: number, inner: number): void;
  /** dx = dy * step(y) (y: relu output); dbias = sum of dx per channel (last axis). */
  reluGrad(dy: Float32Array, y: Float32Array, dx: Float32Array, dbias: Float32Array | null, channels: number): void;
  addN(out: Float32Array, ...xs: Float32Array[]): void;
  /** state: [c, s0, s1, s2] of seedrandom's Alea; advanced in place. */
  dropoutMask(out: Float32Array, state: Float64Array, keepProb: number): void;
  uniform(out: Float32Array, state: Float64Array, min: number, range: number): void;
  /** dropoutMask in segments generated in parallel; states[4t..4t+3] starts segment t at offsets[t]. */
  dropoutMaskSegments(out: Float32Array, states: Float64Array, offsets: Int32Array, keepProb: number): void;
  /** A whole-step plan (STEP_ROW numbers per layer, see src/step.ts) → an opaque handle. */
  stepCreate(plan: Float64Array): object;
  /**
   * Forward, loss and backward of one batch; grads[k] receives the gradient of weights[k].
   * keys[i]: dropout key of layer i (uint32). out: [dataLoss, kernelPenalty, biasPenalty, activityPenalty, correct].
   */
  stepRun(
    handle: object,
    x: Float32Array,
    labels: Float32Array,
    batch: number,
    weights: Float32Array[],
    grads: Float32Array[],
    keys: Float64Array,
    out: Float64Array,
  ): void;
  /** Per-layer process CPU ms per step (when created with ONEDNN_STEP_PROFILE=1). */
  stepProfile(handle: object): string;
  /** The Conv2D layers that run fused with the max pooling (and Dropout) after them (conv-pool.h), with the layout of the last run's output. */
  stepFused(handle: object): Array<{ layer: number; output: 'nhwc' | 'nChw8c' | 'nChw16c' }>;
  /** Regula's seeded dropout: out[i] = mix32(key ^ mix32(i)) >= threshold ? x[i] * scale : 0. */
  seededDropout(x: Float32Array, out: Float32Array, key: number, threshold: number, scale: number): void;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The built addon; ONEDNN_ADDON_PATH overrides it (e.g. a sanitizer build). */
export const ADDON_PATH = process.env.ONEDNN_ADDON_PATH || path.join(packageRoot, 'build', 'Release', 'tfjs_onednn.node');

const ENV_ADDON_PATH = path.join(packageRoot, 'build', 'Release', 'tfjs_onednn_env.node');

let cached: NativeAddon | undefined;

/**
 * libgomp's default wait policy spins idle threads for a while; on a shared
 * or busy machine the spinning workers steal the cores the other threads
 * need and a step can become 5x slower. Unless the user chose a policy,
 * make idle OpenMP threads sleep. Must run before libgomp is loaded (with
 * the main addon), through setenv: a worker thread's process.env is a copy.
 */
function preferPassiveOpenMp(require: NodeRequire): void {
  if (process.env.OMP_WAIT_POLICY !== undefined || process.env.GOMP_SPINCOUNT !== undefined) return;
  try {
    const envAddon = require(ENV_ADDON_PATH) as { setDefault(name: string, value: string): string };
    envAddon.setDefault('OMP_WAIT_POLICY', 'passive');
  } catch {
    process.env.OMP_WAIT_POLICY = 'passive'; // effective on the main thread
  }
}

/** Turns a dlopen failure into a message that says which package to install. */
export function explainLoadError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  if (/libdnnl[^\s/]*\.so/.test(text)) {
    return `libdnnl.so.2 not found (${text.split('\n')[0]}): apt-get install libdnnl-dev (Debian/Ubuntu; the runtime is libdnnl2)`;
  }
  if (/libgomp\.so/.test(text)) {
    return `libgomp.so.1 not found (${text.split('\n')[0]}): apt-get install libgomp1`;
  }
  return text.split('\n')[0] ?? text;
}

/** Loads the addon once; throws an Error that says how to fix a missing build or library. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH)) {
    throw new Error(
      `The oneDNN addon is not built (${ADDON_PATH} is missing): ` + 'apt-get install libdnnl-dev, then run `npm run build` in packages/tfjs-backend-onednn',
    );
  }
  const require = createRequire(import.meta.url);
  preferPassiveOpenMp(require);
  try {
    cached = require(ADDON_PATH) as NativeAddon;
  } catch (err) {
    throw new Error(`The oneDNN addon could not be loaded: ${explainLoadError(err)}`);
  }
  return cached;
}
