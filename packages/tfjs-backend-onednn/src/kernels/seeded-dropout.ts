/**
 * RegulaSeededDropout: Keras inverted dropout with Regula's seeded masks (src/engine/dropout.ts in
 * the service): element i is kept when mix32(key ^ mix32(i)) >= floor(rate · 2^32), and kept values
 * are multiplied by fround(1 / (1 − rate)) (dropped ones by 0: −x gives −0, as x times the JS mask
 * does). The same kernel serves the gradient (dy, same key).
 * Native: one OpenMP pass (the hash vectorises). The hash has one JS definition, the service's
 * (src/engine/dropout.ts), which the tests compare this kernel with bit for bit; here it is only
 * native, and an input the kernel declines (not float32) goes through the same pass on a float32
 * copy, as f32() already does for integer data labelled float32.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { allocF32, input, type KernelArgs, type NativeKernel, type OnednnBackend } from '../backend.js';

export const SEEDED_DROPOUT = 'RegulaSeededDropout';

export function dropoutThreshold(rate: number): number {
  return Math.min(0xffffffff, Math.floor(rate * 2 ** 32));
}

export function dropoutScale(rate: number): number {
  return Math.fround(1 / (1 - rate));
}

function params(attrs: KernelArgs['attrs']): { key: number; rate: number } | null {
  const key = Number(attrs.key);
  const rate = Number(attrs.rate);
  if (!Number.isFinite(key) || !Number.isFinite(rate) || rate < 0 || rate >= 1) return null;
  return { key: key >>> 0, rate };
}

function masked(backend: OnednnBackend, x: TensorInfo, xv: Float32Array, p: { key: number; rate: number }): TensorInfo {
  const out = allocF32(xv.length);
  backend.native.seededDropout(xv, out, p.key, dropoutThreshold(p.rate), dropoutScale(p.rate));
  return backend.output(out, x.shape);
}

function seededDropout({ inputs, backend, attrs }: KernelArgs) {
  const x = input(inputs, 'x');
  const xv = backend.f32(x);
  const p = params(attrs);
  if (!xv || !p) return null;
  return masked(backend, x, xv, p);
}

/** Where the native kernel declines (a non-float32 input): the same pass on a float32 copy. */
const seededDropoutOnCopy: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x as TensorInfo;
  const b = backend as OnednnBackend;
  const p = params((attrs ?? {}) as KernelArgs['attrs']);
  if (!p) throw new Error(`${SEEDED_DROPOUT}: rate must be in [0, 1) and key a uint32`);
  return masked(b, x, Float32Array.from(b.data.get(x.dataId).values as ArrayLike<number>), p);
};

export const seededDropoutKernels: NativeKernel[] = [{ kernelName: SEEDED_DROPOUT, kernelFunc: seededDropout, fallback: () => seededDropoutOnCopy }];
