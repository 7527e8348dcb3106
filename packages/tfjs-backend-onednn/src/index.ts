/**
 * @regula/tfjs-backend-onednn — a native CPU backend for TensorFlow.js.
 *
 *   const { name, threads } = await registerOnednnBackend({ threads: 2 });
 *   await tf.setBackend(name);
 *
 * The backend is tfjs' cpu backend (same tensor storage, every cpu kernel
 * available) with the training hot paths replaced by oneDNN primitives and
 * OpenMP loops: convolutions and their gradients, pooling, matmul,
 * element-wise ops, reductions, softmax, and (optionally) dropout's noise.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { OnednnBackend, type KernelArgs, type NativeKernel } from './backend.js';
import { adamKernels, installFusedAdam } from './adam.js';
import { installFastDropout } from './dropout.js';
import { installFusedConv } from './fused.js';
import { fusedKernels } from './kernels/fused.js';
import { convKernels } from './kernels/conv.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { matmulKernels } from './kernels/matmul.js';
import { poolKernels } from './kernels/pool.js';
import { reduceKernels } from './kernels/reduce.js';
import { seededDropoutKernels } from './kernels/seeded-dropout.js';
import { loadNative, type NativeAddon } from './native.js';
import { bufferPool } from './buffer-pool.js';

export { OnednnBackend } from './backend.js';
export { loadNative } from './native.js';
export { OnednnSequentialStep, STEP_ROW, type PenaltyFactors, type SequentialLayer, type SequentialStepResult } from './step.js';
export { SEEDED_DROPOUT } from './kernels/seeded-dropout.js';

export interface OnednnOptions {
  /** Backend name for tf.setBackend (default 'onednn'). */
  name?: string;
  /** OpenMP threads for oneDNN and the native loops (default: ONEDNN_THREADS, else the CPU count). */
  threads?: number;
  /** tfjs backend priority (default 0: registering does not change tfjs' automatic choice). */
  priority?: number;
  /** Replace tf.dropout's JS noise generation with the bit-identical native one (default true). */
  fastDropout?: boolean;
  /** Run tf.train.adam's update as one bit-identical native kernel per variable (default true). */
  fusedAdam?: boolean;
  /** Route tf.fused.conv2d (tf.layers.conv2d) through one fused conv+bias+relu kernel while training (default true). */
  fusedConv?: boolean;
  /** Bytes of freed kernel buffers kept for reuse (default 512 MiB). */
  poolBytes?: number;
  /**
   * Rethrow native kernel errors instead of falling back to the cpu kernel
   * (default: true when ONEDNN_STRICT=1). Tests use this.
   */
  strict?: boolean;
}

export interface OnednnRegistration {
  name: string;
  threads: number;
  /** oneDNN version, threading runtime and CPU ISA in use. */
  info: string;
  /** Native kernel names registered for the backend. */
  kernels: string[];
  fastDropout: boolean;
  fusedConv: boolean;
  fusedAdam: boolean;
}

export const nativeKernels: readonly NativeKernel[] = [
  ...convKernels,
  ...poolKernels,
  ...matmulKernels,
  ...elementwiseKernels,
  ...reduceKernels,
  ...fusedKernels,
  ...adamKernels,
  ...seededDropoutKernels,
];

const registered = new Map<string, OnednnRegistration>();
/** Per kernel: calls served natively / by the cpu fallback. */
const stats = new Map<string, { native: number; fallback: number }>();
let strictMode = process.env.ONEDNN_STRICT === '1';
const warned = new Set<string>();

function defaultThreads(): number {
  const env = Number(process.env.ONEDNN_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

function wrapKernel(k: NativeKernel, fallback: KernelFunc | undefined): KernelFunc {
  let counts = stats.get(k.kernelName);
  if (!counts) {
    counts = { native: 0, fallback: 0 };
    stats.set(k.kernelName, counts);
  }
  const c = counts;
  return (params) => {
    const args = params as unknown as KernelArgs;
    try {
      const out = k.kernelFunc({ inputs: args.inputs, backend: args.backend, attrs: args.attrs ?? {} });
      if (out) {
        c.native++;
        return out;
      }
    } catch (err) {
      if (strictMode || !fallback) throw err;
      if (!warned.has(k.kernelName)) {
        warned.add(k.kernelName);
        const text = err instanceof Error ? err.message : String(err);
        console.warn(`[onednn] ${k.kernelName} fell back to the cpu kernel: ${text}`);
      }
    }
    if (!fallback) throw new Error(`[onednn] ${k.kernelName}: case not supported natively and no cpu kernel`);
    c.fallback++;
    return fallback(params) as TensorInfo | TensorInfo[];
  };
}

function registerKernels(name: string): string[] {
  for (const config of tf.getKernelsForBackend('cpu')) {
    if (tf.getKernel(config.kernelName, name)) continue;
    const copy: KernelConfig = { ...config, backendName: name };
    tf.registerKernel(copy);
  }
  const names: string[] = [];
  // ONEDNN_DISABLE=Kernel,Kernel leaves those kernels to the cpu backend (diagnostics).
  const disabled = new Set((process.env.ONEDNN_DISABLE ?? '').split(',').filter(Boolean));
  for (const k of nativeKernels) {
    if (disabled.has(k.kernelName)) continue;
    const fallback = k.fallback ? k.fallback() : tf.getKernel(k.kernelName, 'cpu')?.kernelFunc;
    if (tf.getKernel(k.kernelName, name)) tf.unregisterKernel(k.kernelName, name);
    tf.registerKernel({ kernelName: k.kernelName, backendName: name, kernelFunc: wrapKernel(k, fallback) });
    names.push(k.kernelName);
  }
  return names;
}

/**
 * Registers the oneDNN backend with tfjs (idempotent; a later call only
 * updates the thread count). Throws a clear Error when the native addon or
 * libdnnl cannot be loaded. Activate it with `tf.setBackend(name)`.
 */
export async function registerOnednnBackend(options: OnednnOptions = {}): Promise<OnednnRegistration> {
  const native: NativeAddon = loadNative();
  const name = options.name ?? 'onednn';
  if (options.strict !== undefined) strictMode = options.strict;
  const threads = native.setThreads(options.threads ?? defaultThreads());
  if (options.poolBytes !== undefined) bufferPool.capBytes = options.poolBytes;
  const existing = registered.get(name);
  if (existing) {
    existing.threads = threads;
    existing.info = native.info();
    return { ...existing };
  }
  // Fail here rather than at setBackend if the tfjs cpu backend is unusable.
  if (tf.getKernelsForBackend('cpu').length === 0) {
    throw new Error('tfjs cpu kernels are not registered (is @tensorflow/tfjs-backend-cpu installed?)');
  }
  tf.registerBackend(name, () => new OnednnBackend(native), options.priority ?? 0);
  const kernels = registerKernels(name);
  const fastDropout = options.fastDropout === false ? false : installFastDropout(native, name);
  const fusedConv = options.fusedConv === false ? false : installFusedConv(name);
  const fusedAdam = options.fusedAdam === false ? false : installFusedAdam(name);
  const reg: OnednnRegistration = { name, threads, info: native.info(), kernels, fastDropout, fusedConv, fusedAdam };
  registered.set(name, reg);
  return { ...reg };
}

/** Changes the OpenMP thread count used by the backend; returns the count applied. */
export function setOnednnThreads(threads: number): number {
  return loadNative().setThreads(threads);
}

/** How often each native kernel ran natively or fell back to the cpu kernel (since the last reset). */
export function onednnKernelStats(reset = false): Record<string, { native: number; fallback: number }> {
  const out: Record<string, { native: number; fallback: number }> = {};
  for (const [name, c] of stats) {
    out[name] = { ...c };
    if (reset) {
      c.native = 0;
      c.fallback = 0;
    }
  }
  return out;
}

/** Buffer pool counters (reuse hits/misses, bytes held free, live buffers). */
export function onednnPoolStats(): ReturnType<typeof bufferPool.stats> {
  return bufferPool.stats();
}

/** The oneDNN implementation chosen for each primitive created so far (diagnostics). */
export function describeOnednnPrimitives(): string {
  return loadNative().describe();
}
