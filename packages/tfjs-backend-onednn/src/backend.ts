/**
 * The 'onednn' backend: tfjs' cpu backend (JS typed-array storage, every cpu
 * kernel as a fallback) whose hot kernels run natively through oneDNN.
 */
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { backend_util, DataType, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native.js';
import { bufferPool } from './buffer-pool.js';

type DataId = object;

export class OnednnBackend extends MathBackendCPU {
  readonly native: NativeAddon;

  constructor(native: NativeAddon) {
    super();
    this.native = native;
    // MathBackendCPU prints a "use tfjs-node" banner on first use in Node.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override write(values: backend_util.BackendValues, shape: number[], dtype: DataType): DataId {
    const id = super.write(values, shape, dtype);
    bufferPool.retain(values);
    return id;
  }

  override move(dataId: DataId, values: backend_util.BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    super.move(dataId, values, shape, dtype, refCount);
    bufferPool.retain(values);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const disposed = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) bufferPool.release(values);
    return disposed;
  }

  /** Values read out (dataSync, data, bufferSync) are excluded from recycling. */
  override readSync(dataId: DataId): backend_util.BackendValues {
    const values = super.readSync(dataId);
    bufferPool.expose(values);
    return values;
  }

  /** The float32 values of a tensor, or null when it is not plain float32 data. */
  f32(t: TensorInfo): Float32Array | null {
    if (t.dtype !== 'float32') return null;
    const values = this.data.get(t.dataId).values;
    if (values instanceof Float32Array) return values;
    // The cpu Cast kernel may label other typed arrays (e.g. a bool's Uint8Array) float32.
    if (values instanceof Uint8Array || values instanceof Int32Array) return Float32Array.from(values);
    return null;
  }

  /** Wraps freshly computed values as a float32 output tensor. */
  output(values: Float32Array, shape: number[]): TensorInfo {
    return this.makeTensorInfo(shape, 'float32', values);
  }
}

/** An uninitialised Float32Array for a kernel output, recycled from the pool when possible. */
export function allocF32(n: number): Float32Array {
  return bufferPool.alloc(n);
}

/** An uninitialised Int32Array for a kernel output, recycled from the pool when possible. */
export function allocI32(n: number): Int32Array {
  return bufferPool.allocI32(n);
}

export interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: OnednnBackend;
  attrs: NamedAttrMap;
}

/** A native kernel: returns null when the case is not handled (the cpu kernel runs instead). */
export type NativeKernelFunc = (args: KernelArgs) => TensorInfo | TensorInfo[] | null;

export interface NativeKernel {
  kernelName: string;
  kernelFunc: NativeKernelFunc;
  /** Used when kernelFunc declines; defaults to the cpu kernel of the same name. */
  fallback?: () => KernelFunc | undefined;
}

export function input(inputs: NamedTensorInfoMap, name: string): TensorInfo {
  const t = inputs[name];
  if (t == null) throw new Error(`missing input '${name}'`);
  return t;
}

export function attr<T>(attrs: NamedAttrMap, name: string): T {
  return attrs[name] as unknown as T;
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
