/**
 * Backend selection for Regula's tfjs engine.
 *
 * `auto` prefers the native TensorFlow bindings (GPU, then CPU), then Regula's
 * oneDNN backend (packages/tfjs-backend-onednn, built against Debian's
 * libdnnl), then the wasm backend with Regula's training kernels, then the
 * pure-JS cpu backend.
 * The native packages are optional dependencies and are imported
 * dynamically, so this module works (and type-checks) without them.
 *
 * Threads: tfjs-backend-wasm disables its multi-threaded (pthreads) build in
 * Node (`WASM_HAS_MULTITHREAD_SUPPORT` is hard-wired to false there, see
 * tensorflow/tfjs#3830), so the wasm backend always runs XNNPACK on the
 * calling thread and `setThreadsCount` has no effect. Parallelism therefore
 * comes from running several worker processes, one training job each.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { REGULA_VERSION } from '../../version.js';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { BackendPreference } from './preferences.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

export { registerWasmTrainingKernels } from './wasm-kernels.js';
export type { BackendPreference } from './preferences.js';

export interface BackendOptions {
  /** Threads for the onednn backend (default: all cores). */
  threads?: number;
}

export interface BackendFallback {
  /** The preference that was tried and failed (e.g. 'tensorflow-gpu'). */
  backend: string;
  /** Why it failed, e.g. the import error's message. */
  reason: string;
}

export interface BackendInfo {
  /** The active tfjs backend name (`tf.getBackend()`): 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  requested: BackendPreference;
  /** Candidates tried before `name`, in order, with the reason each failed. */
  fallbacks: BackendFallback[];
}

type ConcretePreference = Exclude<BackendPreference, 'auto'>;

const AUTO_ORDER: readonly ConcretePreference[] = ['tensorflow-gpu', 'tensorflow', 'onednn', 'wasm', 'cpu'];

const NATIVE_PACKAGES: Readonly<Record<'tensorflow-gpu' | 'tensorflow', string>> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  // Node's module-not-found messages append a long "Require stack"; keep line 1.
  return text.split('\n')[0] ?? text;
}

async function activate(name: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (err) {
    throw new Error(`tf.setBackend('${name}') failed: ${message(err)}`);
  }
  if (!ok || tf.getBackend() !== name) {
    throw new Error(`tf.setBackend('${name}') failed to initialize the backend`);
  }
}

async function useNative(pref: 'tensorflow-gpu' | 'tensorflow'): Promise<void> {
  const pkg = NATIVE_PACKAGES[pref];
  try {
    // A string variable keeps tsc from resolving the optional package's types.
    const specifier: string = pkg;
    await import(specifier);
  } catch (err) {
    throw new Error(`${pkg} could not be loaded: ${message(err)}`);
  }
  // Both packages register their backend under the name 'tensorflow'.
  await activate('tensorflow');
}

let wasmPathsSet = false;

/**
 * Points the wasm backend at the .wasm binaries in the installed package.
 * The package's Node bundle finds them next to itself (`__dirname`) by
 * default; setting the prefix explicitly keeps that working when Regula's
 * code is bundled or run from another directory. Must run before the wasm
 * backend is first initialized.
 */
function configureWasmPaths(): void {
  if (wasmPathsSet) return;
  wasmPathsSet = true;
  const require = createRequire(import.meta.url);
  const main = require.resolve('@tensorflow/tfjs-backend-wasm'); // <pkg>/dist/tf-backend-wasm.node.js
  try {
    setWasmPaths(path.dirname(main) + path.sep);
  } catch {
    // Throws only after a failed initialization; the backend keeps its paths.
  }
}

async function useWasm(): Promise<void> {
  configureWasmPaths();
  registerWasmTrainingKernels();
  await activate('wasm');
}

/** The weights and configuration of one layer, as the onednn whole-step planner takes them. */
export type NativeStepLayer =
  | {
      type: 'conv2d';
      kernel: tf.Tensor;
      bias: tf.Tensor | null;
      strides: [number, number];
      padding: 'valid' | 'same';
      activation: string;
      kernelPenalty: NativePenalty | null;
      biasPenalty: NativePenalty | null;
      activityPenalty: NativePenalty | null;
    }
  | { type: 'maxPooling2d'; poolSize: [number, number]; strides: [number, number]; padding: 'valid' | 'same' }
  | { type: 'dropout'; rate: number }
  | { type: 'flatten' }
  | {
      type: 'dense';
      kernel: tf.Tensor;
      bias: tf.Tensor | null;
      activation: string;
      kernelPenalty: NativePenalty | null;
      biasPenalty: NativePenalty | null;
      activityPenalty: NativePenalty | null;
    };

export interface NativePenalty {
  l1: number;
  l2: number;
}

/** A whole training step (forward, loss, backward) in one native call: see packages/tfjs-backend-onednn/src/step.ts. */
export interface NativeSequentialStep {
  /** The weights whose gradients run() returns, in that order. */
  readonly variables: readonly tf.Tensor[];
  run(
    x: tf.Tensor,
    labels: tf.Tensor,
    dropoutKeys: ArrayLike<number>,
  ): { grads: tf.Tensor[]; dataLoss: number; kernelPenalty: number; biasPenalty: number; activityPenalty: number; correct: number };
}

interface OnednnModule {
  registerOnednnBackend(options?: { threads?: number }): Promise<{ name: string; threads: number; info?: string }>;
  OnednnSequentialStep?: {
    plan(inputShape: [number, number, number], layers: readonly NativeStepLayer[], backendName?: string): NativeSequentialStep | string;
  };
}

/** The onednn package once initBackend has loaded it (its native step planner lives there). */
let onednnModule: { module: OnednnModule; backend: string; info: string | null } | null = null;

/**
 * Plans a native whole step for the active backend; null when the active backend is not the
 * onednn one, or the reason (a string) when it cannot run this stack.
 */
export function planNativeStep(inputShape: [number, number, number], layers: readonly NativeStepLayer[]): NativeSequentialStep | string | null {
  if (!onednnModule || tf.getBackend() !== onednnModule.backend) return null;
  const planner = onednnModule.module.OnednnSequentialStep;
  if (!planner) return 'this build of the onednn backend has no native step';
  return planner.plan(inputShape, layers, onednnModule.backend);
}

/** What a run records to be rerun: the code and library versions behind its numbers. */
export interface RuntimeVersions {
  regula: string;
  tfjs: string;
  /** The active tfjs backend. */
  backend: string;
  /** The backend's own build, where it says (oneDNN version, threading runtime and CPU ISA). */
  backendDetail: string | null;
  node: string;
}

export function runtimeVersions(): RuntimeVersions {
  const backend = tf.getBackend();
  return {
    regula: REGULA_VERSION,
    tfjs: tf.version.tfjs,
    backend,
    backendDetail: onednnModule && onednnModule.backend === backend ? onednnModule.info : null,
    node: process.version,
  };
}

async function useOnednn(options: BackendOptions): Promise<void> {
  let mod: OnednnModule;
  try {
    const specifier: string = '@regula/tfjs-backend-onednn';
    mod = (await import(specifier)) as OnednnModule;
  } catch (err) {
    throw new Error(`@regula/tfjs-backend-onednn could not be loaded: ${message(err)}`);
  }
  const { name, info } = await mod.registerOnednnBackend(options.threads !== undefined ? { threads: options.threads } : {});
  await activate(name);
  onednnModule = { module: mod, backend: name, info: info ?? null };
}

async function tryPreference(pref: ConcretePreference, options: BackendOptions): Promise<void> {
  switch (pref) {
    case 'tensorflow-gpu':
    case 'tensorflow':
      return useNative(pref);
    case 'onednn':
      return useOnednn(options);
    case 'wasm':
      return useWasm();
    case 'cpu':
      return activate('cpu');
  }
}

/**
 * Activates a tfjs backend. `auto` walks tensorflow-gpu → tensorflow → onednn →
 * wasm → cpu and records every failure in `fallbacks`; an explicit preference that
 * cannot be activated throws an Error naming the reason.
 */
export async function initBackend(pref: BackendPreference, log: (msg: string) => void = () => {}, options: BackendOptions = {}): Promise<BackendInfo> {
  const candidates: readonly ConcretePreference[] = pref === 'auto' ? AUTO_ORDER : [pref];
  const fallbacks: BackendFallback[] = [];
  for (const candidate of candidates) {
    try {
      await tryPreference(candidate, options);
    } catch (err) {
      const reason = message(err);
      if (pref !== 'auto') {
        throw new Error(`Backend '${pref}' is not available: ${reason}`);
      }
      fallbacks.push({ backend: candidate, reason });
      log(`backend '${candidate}' unavailable (${reason}); trying the next one`);
      continue;
    }
    const info: BackendInfo = { name: tf.getBackend(), requested: pref, fallbacks };
    log(`tfjs backend: ${info.name} (requested ${pref})`);
    return info;
  }
  throw new Error(`No tfjs backend could be initialized: ${fallbacks.map((f) => `${f.backend}: ${f.reason}`).join('; ')}`);
}

/** The active tfjs backend's name (`tf.getBackend()`). */
export function backendName(): string {
  return tf.getBackend();
}
