/**
 * RegulaSeededDropout: Keras inverted dropout with Regula's seeded masks (src/engine/dropout.ts in
 * the service): element i is kept when mix32(key ^ mix32(i)) >= floor(rate · 2^32), and kept values
 * are multiplied by fround(1 / (1 − rate)) (dropped ones by 0: −x gives −0, as x times the JS mask
 * does). The same kernel serves the gradient (dy, same key).
 * Native: one OpenMP pass (the hash vectorises); the fallback is the same arithmetic in JS.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { allocF32, input, type KernelArgs, type NativeKernel, type OnednnBackend } from '../backend.js';

export const SEEDED_DROPOUT = 'RegulaSeededDropout';

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

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

function seededDropout({ inputs, backend, attrs }: KernelArgs) {
  const x = input(inputs, 'x');
  const xv = backend.f32(x);
  const p = params(attrs);
  if (!xv || !p) return null;
  const out = allocF32(xv.length);
  backend.native.seededDropout(xv, out, p.key, dropoutThreshold(p.rate), dropoutScale(p.rate));
  return backend.output(out, x.shape);
}

/** The same masks in JS (used when the native kernel declines, e.g. for a non-float32 input). */
const seededDropoutJs: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x as TensorInfo;
  const b = backend as OnednnBackend;
  const p = params((attrs ?? {}) as KernelArgs['attrs']);
  if (!p) throw new Error(`${SEEDED_DROPOUT}: rate must be in [0, 1) and key a uint32`);
  const values = b.data.get(x.dataId).values as ArrayLike<number>;
  const threshold = dropoutThreshold(p.rate);
  const scale = dropoutScale(p.rate);
  const out = new Float32Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(values[i]! * (mix32(p.key ^ mix32(i)) >= threshold ? scale : 0));
  return b.output(out, x.shape);
};

export const seededDropoutKernels: NativeKernel[] = [
  { kernelName: SEEDED_DROPOUT, kernelFunc: seededDropout, fallback: () => seededDropoutJs },
];
