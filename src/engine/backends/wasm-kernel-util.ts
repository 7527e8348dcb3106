/**
 * Helpers shared by Regula's wasm kernels: calling the wasm backend's own
 * kernels directly on TensorInfos, releasing intermediates, and overriding a
 * registered kernel while keeping the stock one callable.
 */
import * as tf from '@tensorflow/tfjs';
// Side effect: registers the 'wasm' backend and its stock kernels.
import '@tensorflow/tfjs-backend-wasm';

export type TensorInfo = tf.TensorInfo;
export type Backend = tf.KernelBackend;
export type Attrs = tf.NamedAttrMap;
export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: Attrs };
export type KernelImpl = (args: KernelArgs) => TensorInfo | TensorInfo[];

export const WASM = 'wasm';

/**
 * Calls a kernel of the wasm backend directly (no engine bookkeeping, no
 * tape); the caller owns the result and must `backend.disposeData` it.
 */
export function runWasm(name: string, backend: Backend, inputs: Record<string, TensorInfo>, attrs: Attrs = {}): TensorInfo {
  const config = tf.getKernel(name, WASM);
  if (config === undefined) {
    throw new Error(`wasm kernel '${name}' is not registered`);
  }
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) {
    throw new Error(`wasm kernel '${name}' returned several outputs`);
  }
  return out;
}

/**
 * Collects the intermediates of one kernel call so that all of them are
 * released in a `finally`; `keep` exempts the result.
 */
export class Scratch {
  private readonly items: TensorInfo[] = [];
  constructor(private readonly backend: Backend) {}
  track(t: TensorInfo): TensorInfo {
    this.items.push(t);
    return t;
  }
  run(name: string, inputs: Record<string, TensorInfo>, attrs: Attrs = {}): TensorInfo {
    return this.track(runWasm(name, this.backend, inputs, attrs));
  }
  keep(t: TensorInfo): TensorInfo {
    const i = this.items.indexOf(t);
    if (i >= 0) this.items.splice(i, 1);
    return t;
  }
  release(): void {
    for (const t of this.items) this.backend.disposeData(t.dataId);
    this.items.length = 0;
  }
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Stock wasm kernel configs replaced by `overrideWasmKernel`, by kernel name. */
const stockKernels = new Map<string, tf.KernelConfig | null>();

/**
 * Registers `kernelFunc` for `kernelName` on the wasm backend, replacing the
 * stock kernel (if any). The stock `setupFunc`/`disposeFunc` are kept on the
 * new config, so the stock kernel function stays usable (it is returned).
 * Idempotent: a second call with the same function changes nothing.
 */
export function overrideWasmKernel(kernelName: string, kernelFunc: KernelImpl): tf.KernelConfig | null {
  const current = tf.getKernel(kernelName, WASM);
  if (!stockKernels.has(kernelName)) {
    stockKernels.set(kernelName, current ?? null);
  }
  const stock = stockKernels.get(kernelName) ?? null;
  if (current?.kernelFunc === kernelFunc) return stock;
  if (current !== undefined) tf.unregisterKernel(kernelName, WASM);
  const config: tf.KernelConfig = { kernelName, backendName: WASM, kernelFunc };
  if (stock?.setupFunc !== undefined) config.setupFunc = stock.setupFunc;
  if (stock?.disposeFunc !== undefined) config.disposeFunc = stock.disposeFunc;
  tf.registerKernel(config);
  return stock;
}

/** The stock kernel replaced by `overrideWasmKernel`, if any. */
export function stockWasmKernel(kernelName: string): tf.KernelConfig | null {
  return stockKernels.get(kernelName) ?? tf.getKernel(kernelName, WASM) ?? null;
}

let cpuFallbacks = 0;

/** How many kernel calls were computed by `fallbackOnCpu` (for tests and diagnostics). */
export function cpuFallbackCount(): number {
  return cpuFallbacks;
}

/**
 * Computes a kernel with the cpu backend's reference implementation on a copy
 * of the data and returns the result as a wasm tensor. Slow, but exact: used
 * for configurations the fast paths do not cover.
 */
export function fallbackOnCpu(kernelName: string, backend: Backend, inputs: Record<string, TensorInfo>, attrs: Attrs): TensorInfo {
  const cpu = tf.findBackend('cpu') as Backend | null;
  const kernel = tf.getKernel(kernelName, 'cpu');
  if (cpu === null || kernel === undefined) {
    throw new Error(`${kernelName}: no cpu fallback available for this configuration`);
  }
  cpuFallbacks++;
  const owned: TensorInfo[] = [];
  try {
    const cpuInputs: Record<string, TensorInfo> = {};
    for (const [key, t] of Object.entries(inputs)) {
      const copy: TensorInfo = {
        dataId: cpu.write(backend.readSync(t.dataId), t.shape, t.dtype),
        shape: t.shape,
        dtype: t.dtype,
      };
      owned.push(copy);
      cpuInputs[key] = copy;
    }
    const res = kernel.kernelFunc({ inputs: cpuInputs, backend: cpu, attrs });
    if (Array.isArray(res)) throw new Error(`${kernelName}: unexpected multiple outputs`);
    owned.push(res);
    const values = cpu.readSync(res.dataId);
    return { dataId: backend.write(values, res.shape, res.dtype), shape: res.shape, dtype: res.dtype };
  } finally {
    for (const t of owned) cpu.disposeData(t.dataId);
  }
}
