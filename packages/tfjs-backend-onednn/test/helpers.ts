/**
 * Differential-test helpers: run the same computation on tfjs' cpu backend
 * and on onednn, and compare within a tolerance.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { onednnKernelStats, registerOnednnBackend } from '../src/index.js';
import { loadNative } from '../src/native.js';
import { mulberry32 } from '../../../src/engine/data/random.js';

/**
 * Whether the addon loads. Without libdnnl the suites are skipped with a
 * warning, unless ONEDNN_REQUIRED=1 (CI with libdnnl-dev installed) makes
 * them run and fail.
 */
export const nativeAvailable: boolean = (() => {
  if (process.env.ONEDNN_REQUIRED === '1') return true;
  try {
    loadNative();
    return true;
  } catch (err) {
    console.warn(`[onednn tests] skipped: ${err instanceof Error ? err.message : String(err)}`);
    return false;
  }
})();

export const BACKEND = 'onednn';

export async function setup(threads = 2): Promise<void> {
  await registerOnednnBackend({ threads, strict: true });
  tf.env().set('IS_TEST', true); // silences tfjs' "already registered" warnings in tests
}

/** mulberry32, the service's seeded PRNG (src/engine/data/random.ts), for test data. */
export const rng = mulberry32;

export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface Result {
  values: Float32Array;
  shape: number[];
}

/** Runs `f` on a backend; returns every output's values and shape. */
export async function runOn(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await tf.setBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const results = list.map((t) => ({ values: Float32Array.from(t.dataSync()), shape: t.shape.slice() }));
  tf.dispose(list);
  return results;
}

/** max |a - b| / (atol + rtol * |b|) over all elements: <= 1 passes. */
export function worstRatio(a: Float32Array, b: Float32Array, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const av = a[i]!;
    const bv = b[i]!;
    if (Number.isNaN(av) || Number.isNaN(bv)) {
      if (Number.isNaN(av) !== Number.isNaN(bv)) return Infinity;
      continue;
    }
    if (av === bv) continue; // also equal infinities
    const r = Math.abs(av - bv) / (atol + rtol * Math.abs(bv));
    if (!(r <= worst)) worst = r;
  }
  return worst;
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

export const FP32: Tolerance = { atol: 1e-5, rtol: 1e-5 };
/** Long dot products (convolutions, matmuls) accumulate in a different order. */
export const ACCUM: Tolerance = { atol: 1e-4, rtol: 1e-4 };

/**
 * Runs f on cpu and onednn, asserts equal shapes and values within tol, and
 * that `kernel` ran natively (not through the cpu fallback) at least once.
 */
export async function expectSame(f: () => tf.Tensor | tf.Tensor[], tol: Tolerance, kernel?: string | string[]): Promise<void> {
  const expected = await runOn('cpu', f);
  onednnKernelStats(true);
  const actual = await runOn(BACKEND, f);
  const stats = onednnKernelStats();
  for (const k of kernel === undefined ? [] : Array.isArray(kernel) ? kernel : [kernel]) {
    expect(stats[k]?.native ?? 0, `${k} should run natively`).toBeGreaterThan(0);
    expect(stats[k]?.fallback ?? 0, `${k} should not fall back`).toBe(0);
  }
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(actual[i]!.shape).toEqual(expected[i]!.shape);
    const ratio = worstRatio(actual[i]!.values, expected[i]!.values, tol.atol, tol.rtol);
    expect(ratio, `output ${i}: worst error / tolerance`).toBeLessThanOrEqual(1);
  }
}

export function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): tf.Tensor {
  return tf.engine().runKernel(name, inputs as never, attrs as never) as tf.Tensor;
}
