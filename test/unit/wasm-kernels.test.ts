/**
 * Regula's wasm training kernels against the tfjs cpu backend (reference).
 *
 * Tolerance: max|wasm - cpu| <= 1e-5 * (1 + max|cpu|) per gradient tensor.
 * Both sides are float32; they differ only in summation order (XNNPACK's
 * blocked GEMM vs the cpu backend's loops). Observed on these shapes:
 * <= 2e-6 (relative to 1 + max|cpu|); at batch 250 on the tutorial layers
 * ~1e-5. A wrong index or padding produces errors of order 1.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuFallbackCount, registerWasmTrainingKernels, setForceCpuFallbackForTesting } from '../../src/engine/backends/wasm-kernels.js';
import { mulberry32 } from '../../src/engine/data/random.js';

const TOL = 1e-5;

function randomValues(shape: number[], rand: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() * 2 - 1;
  return out;
}

function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const b = expected[i] as number;
    if (Number.isNaN(a) !== Number.isNaN(b)) return Infinity;
    if (Number.isNaN(b)) continue;
    maxDiff = Math.max(maxDiff, Math.abs(a - b));
    maxRef = Math.max(maxRef, Math.abs(b));
  }
  return maxDiff / (1 + maxRef);
}

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

const convCases: ConvCase[] = [
  { name: 'tutorial conv1 (valid, batch 4)', x: [4, 28, 28, 1], f: [3, 3, 1, 32], strides: 1, pad: 'valid' },
  { name: 'tutorial conv2 (valid, batch 2)', x: [2, 13, 13, 32], f: [3, 3, 32, 64], strides: 1, pad: 'valid' },
  { name: 'batch 1, odd sizes, same', x: [1, 7, 9, 3], f: [3, 2, 3, 5], strides: 1, pad: 'same' },
  { name: 'odd sizes, stride 2, same', x: [3, 7, 9, 3], f: [3, 2, 3, 5], strides: 2, pad: 'same' },
  { name: 'even sizes, stride 2, same', x: [3, 8, 10, 2], f: [3, 3, 2, 4], strides: 2, pad: 'same' },
  { name: 'stride 2, valid, unused last row', x: [2, 9, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'valid' },
  { name: 'batch 1, stride 2, valid', x: [1, 11, 11, 2], f: [3, 3, 2, 3], strides: 2, pad: 'valid' },
  { name: 'strides [3,2], 5x5 same', x: [2, 10, 11, 3], f: [5, 5, 3, 4], strides: [3, 2], pad: 'same' },
  { name: 'numeric pad 1, stride 2', x: [2, 10, 11, 3], f: [3, 3, 3, 4], strides: 2, pad: 1 },
  {
    name: 'explicit pads larger than the filter',
    x: [2, 10, 11, 3],
    f: [2, 2, 3, 4],
    strides: 2,
    pad: [
      [0, 0],
      [3, 0],
      [1, 4],
      [0, 0],
    ],
  },
  { name: '1x1 filter, stride 2', x: [2, 6, 7, 4], f: [1, 1, 4, 3], strides: 2, pad: 'valid' },
];

interface Grads {
  dx: Float32Array;
  df: Float32Array;
  tensorDelta: number;
  dataIdDelta: number;
}

async function convGrads(backend: string, c: ConvCase, seed: number): Promise<Grads> {
  await tf.setBackend(backend);
  const rand = mulberry32(seed);
  const x = tf.tensor4d(randomValues(c.x, rand), c.x);
  const f = tf.tensor4d(randomValues(c.f, rand), c.f);
  const yShape = tf.tidy(() => tf.conv2d(x, f, c.strides, c.pad).shape);
  const r = tf.tensor(randomValues(yShape, rand), yShape);
  const tensorsBefore = tf.memory().numTensors;
  const idsBefore = tf.engine().backend.numDataIds();
  const loss = (a: tf.Tensor, b: tf.Tensor): tf.Scalar =>
    tf
      .conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad)
      .mul(r)
      .sum();
  const [dxT, dfT] = tf.grads(loss)([x, f]);
  if (dxT === undefined || dfT === undefined) throw new Error('missing gradient');
  const dx = (await dxT.data()) as Float32Array;
  const df = (await dfT.data()) as Float32Array;
  tf.dispose([dxT, dfT]);
  const tensorDelta = tf.memory().numTensors - tensorsBefore;
  const dataIdDelta = tf.engine().backend.numDataIds() - idsBefore;
  tf.dispose([x, f, r]);
  return { dx, df, tensorDelta, dataIdDelta };
}

beforeAll(async () => {
  registerWasmTrainingKernels();
  registerWasmTrainingKernels(); // idempotent
  expect(await tf.setBackend('wasm')).toBe(true);
});

afterAll(() => {
  setForceCpuFallbackForTesting(false);
});

describe('registerWasmTrainingKernels', () => {
  it('registers the kernels once (idempotent)', () => {
    const before = tf.getKernel(tf.Conv2DBackpropFilter, 'wasm');
    expect(before).toBeDefined();
    registerWasmTrainingKernels();
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')?.kernelFunc).toBe(before?.kernelFunc);
    for (const k of [tf.Conv2DBackpropInput, tf.BatchMatMul, tf.MaxPoolGrad]) {
      expect(tf.getKernel(k, 'wasm')).toBeDefined();
    }
  });
});

describe('Conv2D gradients on wasm match the cpu backend', () => {
  for (const c of convCases) {
    it(c.name, async () => {
      const ref = await convGrads('cpu', c, 17);
      const fallbacks = cpuFallbackCount();
      const got = await convGrads('wasm', c, 17);
      expect(cpuFallbackCount()).toBe(fallbacks); // the XNNPACK path was taken
      expect(relError(got.dx, ref.dx)).toBeLessThanOrEqual(TOL);
      expect(relError(got.df, ref.df)).toBeLessThanOrEqual(TOL);
      expect(got.tensorDelta).toBe(0);
      expect(got.dataIdDelta).toBe(0);
    });
  }

  it('cpu fallback path gives the reference numbers', async () => {
    const c = convCases[3] as ConvCase;
    const ref = await convGrads('cpu', c, 5);
    setForceCpuFallbackForTesting(true);
    try {
      const fallbacks = cpuFallbackCount();
      const got = await convGrads('wasm', c, 5);
      expect(cpuFallbackCount()).toBe(fallbacks + 2);
      expect(relError(got.dx, ref.dx)).toBe(0);
      expect(relError(got.df, ref.df)).toBe(0);
      expect(got.tensorDelta).toBe(0);
      expect(got.dataIdDelta).toBe(0);
    } finally {
      setForceCpuFallbackForTesting(false);
    }
  });
});

describe('Conv2DBackprop kernels with NCHW data', () => {
  // The wasm forward Conv2D is NHWC-only, so the NCHW path is exercised at the
  // kernel level: same attrs and data on both backends.
  async function run(backend: string): Promise<{ dW: Float32Array; dX: Float32Array; delta: number }> {
    await tf.setBackend(backend);
    const rand = mulberry32(99);
    const xShape: [number, number, number, number] = [2, 3, 9, 8]; // N C H W
    const filterShape: [number, number, number, number] = [3, 3, 3, 4];
    const dyShape: [number, number, number, number] = [2, 4, 5, 4]; // stride 2, same
    const x = tf.tensor4d(randomValues(xShape, rand), xShape);
    const dy = tf.tensor4d(randomValues(dyShape, rand), dyShape);
    const filter = tf.tensor4d(randomValues(filterShape, rand), filterShape);
    const before = tf.memory().numTensors;
    const common = { strides: 2, pad: 'same', dataFormat: 'NCHW' } as const;
    const dWT = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { ...common, filterShape }) as tf.Tensor;
    const dXT = tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter }, { ...common, inputShape: xShape }) as tf.Tensor;
    const dW = (await dWT.data()) as Float32Array;
    const dX = (await dXT.data()) as Float32Array;
    tf.dispose([dWT, dXT]);
    const delta = tf.memory().numTensors - before;
    tf.dispose([x, dy, filter]);
    return { dW, dX, delta };
  }

  it('matches the cpu backend', async () => {
    const ref = await run('cpu');
    const fallbacks = cpuFallbackCount();
    const got = await run('wasm');
    expect(cpuFallbackCount()).toBe(fallbacks);
    expect(relError(got.dW, ref.dW)).toBeLessThanOrEqual(TOL);
    expect(relError(got.dX, ref.dX)).toBeLessThanOrEqual(TOL);
    expect(got.delta).toBe(0);
  });
});

describe('BatchMatMul with transposed operands', () => {
  const cases: { a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [
    { a: [7, 5], b: [7, 3], ta: true, tb: false },
    { a: [4, 6], b: [5, 6], ta: false, tb: true },
    { a: [6, 4], b: [5, 6], ta: true, tb: true },
    { a: [1, 9, 4], b: [1, 9, 2], ta: true, tb: false },
    { a: [3, 4, 6], b: [3, 5, 6], ta: false, tb: true }, // batch > 1: stock path
    { a: [5, 8], b: [8, 3], ta: false, tb: false },
  ];
  async function run(backend: string, c: (typeof cases)[number]): Promise<{ v: Float32Array; delta: number }> {
    await tf.setBackend(backend);
    const rand = mulberry32(3);
    const a = tf.tensor(randomValues(c.a, rand), c.a);
    const b = tf.tensor(randomValues(c.b, rand), c.b);
    const before = tf.memory().numTensors;
    const idsBefore = tf.engine().backend.numDataIds();
    const y = tf.matMul(a, b, c.ta, c.tb);
    const v = (await y.data()) as Float32Array;
    y.dispose();
    const delta = tf.memory().numTensors - before + (tf.engine().backend.numDataIds() - idsBefore);
    tf.dispose([a, b]);
    return { v, delta };
  }
  for (const c of cases) {
    it(`${JSON.stringify(c.a)}${c.ta ? 'ᵀ' : ''} x ${JSON.stringify(c.b)}${c.tb ? 'ᵀ' : ''}`, async () => {
      const ref = await run('cpu', c);
      const got = await run('wasm', c);
      expect(relError(got.v, ref.v)).toBeLessThanOrEqual(TOL);
      expect(got.delta).toBe(0);
    });
  }
});

describe('MaxPoolGrad', () => {
  async function poolGrad(
    backend: string,
    xValues: Float32Array,
    xShape: [number, number, number, number],
    filterSize: number | [number, number],
    strides: number | [number, number],
    pad: 'valid' | 'same',
    seed: number,
  ): Promise<Float32Array> {
    await tf.setBackend(backend);
    const x = tf.tensor4d(xValues, xShape);
    const yShape = tf.tidy(() => tf.maxPool(x, filterSize, strides, pad).shape);
    const r = tf.tensor(randomValues(yShape, mulberry32(seed)), yShape);
    const g = tf.grad((t: tf.Tensor) =>
      tf
        .maxPool(t as tf.Tensor4D, filterSize, strides, pad)
        .mul(r)
        .sum(),
    )(x);
    const v = (await g.data()) as Float32Array;
    tf.dispose([x, r, g]);
    return v;
  }

  it('routes gradients to the first maximum, including all-negative windows, ties and NaN', async () => {
    // 1x4x4x1, 2x2 windows: all negative; ties; all zero; tie among non-first.
    const x = new Float32Array([-1, -2, 5, 5, -3, -4, 5, 1, 0, 0, 2, 3, 0, 0, 3, 1]);
    const ref = await poolGrad('cpu', x, [1, 4, 4, 1], 2, 2, 'valid', 1);
    const got = await poolGrad('wasm', x, [1, 4, 4, 1], 2, 2, 'valid', 1);
    expect(Array.from(got)).toEqual(Array.from(ref));
  });

  const shapes: { x: [number, number, number, number]; f: number | [number, number]; s: number | [number, number]; pad: 'valid' | 'same' }[] = [
    { x: [3, 26, 26, 8], f: 2, s: 2, pad: 'valid' },
    { x: [2, 11, 11, 6], f: 2, s: 2, pad: 'valid' }, // odd size: last row/col unused
    { x: [2, 9, 10, 3], f: 3, s: 2, pad: 'same' }, // overlapping windows + padding
    { x: [1, 7, 8, 2], f: [2, 3], s: [1, 2], pad: 'same' },
  ];
  for (const c of shapes) {
    it(`matches cpu for ${JSON.stringify(c)}`, async () => {
      // Quantized values produce many ties.
      const rand = mulberry32(11);
      const n = c.x.reduce((a, b) => a * b, 1);
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = Math.round(rand() * 6) - 3;
      const ref = await poolGrad('cpu', x, c.x, c.f, c.s, c.pad, 2);
      const fallbacks = cpuFallbackCount();
      const got = await poolGrad('wasm', x, c.x, c.f, c.s, c.pad, 2);
      expect(cpuFallbackCount()).toBe(fallbacks);
      expect(relError(got, ref)).toBeLessThanOrEqual(1e-6);
    });
  }
});

describe('a small CNN trains identically on wasm and cpu', () => {
  async function grads(backend: string): Promise<{ values: Float32Array[]; delta: number }> {
    await tf.setBackend(backend);
    const rand = mulberry32(2024);
    const x = tf.tensor4d(randomValues([3, 12, 12, 1], rand), [3, 12, 12, 1]);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 4], 'int32'), 5);
    const w1 = tf.variable(tf.tensor4d(randomValues([3, 3, 1, 4], rand), [3, 3, 1, 4]));
    const b1 = tf.variable(tf.tensor1d(randomValues([4], rand)));
    const w2 = tf.variable(tf.tensor4d(randomValues([3, 3, 4, 6], rand), [3, 3, 4, 6]));
    const w3 = tf.variable(tf.tensor2d(randomValues([24, 5], rand), [24, 5]));
    const before = tf.memory().numTensors;
    const { value, grads: g } = tf.variableGrads(() => {
      const h1 = tf.fused.conv2d({ x, filter: w1, strides: 1, pad: 'valid', bias: b1, activation: 'relu' }); // 10x10
      const p1 = tf.maxPool(h1, 2, 2, 'valid'); // 5x5
      const h2 = tf.relu(tf.conv2d(p1, w2, 2, 'same')); // 3x3
      const p2 = tf.maxPool(h2, 2, 2, 'same'); // 2x2x6
      const logits = tf.matMul(p2.reshape([3, 24]), w3);
      return tf.losses.softmaxCrossEntropy(labels, logits);
    });
    const names = Object.keys(g).sort();
    const values: Float32Array[] = [(await value.data()) as Float32Array];
    for (const n of names) values.push((await (g[n] as tf.Tensor).data()) as Float32Array);
    tf.dispose([value, ...Object.values(g)]);
    const delta = tf.memory().numTensors - before;
    tf.dispose([x, labels, w1, b1, w2, w3]);
    return { values, delta };
  }

  it('loss and all parameter gradients agree', async () => {
    const ref = await grads('cpu');
    const fallbacks = cpuFallbackCount();
    const got = await grads('wasm');
    expect(cpuFallbackCount()).toBe(fallbacks);
    expect(got.values.length).toBe(ref.values.length);
    ref.values.forEach((r, i) => {
      expect(relError(got.values[i] as Float32Array, r)).toBeLessThanOrEqual(TOL);
    });
    expect(got.delta).toBe(0);
  });
});
