/**
 * Every native kernel against tfjs' cpu kernel, on the tutorial CNN's layer
 * shapes and on odd ones (same/valid/explicit padding, strides 1 and 2,
 * dilation, 1x1, broadcasting). Tolerances: FP32 (1e-5 abs + 1e-5 rel) for
 * element-wise ops, ACCUM (1e-4 + 1e-4 rel) for convolutions, matmuls and
 * reductions, whose summation order differs.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ACCUM, FP32, expectSame, randomArray, runKernel, setup, sizeOf, nativeAvailable } from './helpers.js';

beforeAll(async () => {
  if (nativeAvailable) await setup(2);
});

type Pad = 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
  dilations?: number;
}

const convCases: ConvCase[] = [
  { name: 'tutorial conv1', x: [8, 28, 28, 1], f: [3, 3, 1, 32], strides: 1, pad: 'valid' },
  { name: 'tutorial conv2', x: [8, 13, 13, 32], f: [3, 3, 32, 64], strides: 1, pad: 'valid' },
  { name: 'odd same s1', x: [3, 7, 9, 5], f: [3, 2, 5, 7], strides: 1, pad: 'same' },
  { name: 'odd same s2', x: [2, 9, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: 'valid s2x1', x: [2, 10, 11, 6], f: [5, 3, 6, 8], strides: [2, 1], pad: 'valid' },
  { name: 'valid s2 even', x: [2, 12, 12, 4], f: [3, 3, 4, 6], strides: 2, pad: 'valid' },
  {
    name: 'explicit pad',
    x: [2, 6, 7, 3],
    f: [3, 3, 3, 4],
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  { name: '1x1', x: [3, 5, 5, 8], f: [1, 1, 8, 16], strides: 1, pad: 'valid' },
  { name: 'dilation 2', x: [2, 9, 9, 3], f: [3, 3, 3, 5], strides: 1, pad: 'same', dilations: 2 },
];

function convOutShape(c: ConvCase): number[] {
  return tf.backend_util.computeConv2DInfo(c.x, c.f, c.strides, c.dilations ?? 1, c.pad, undefined, false, 'channelsLast').outShape;
}

describe.skipIf(!nativeAvailable)('convolution', () => {
  for (const [i, c] of convCases.entries()) {
    const xv = randomArray(sizeOf(c.x), 100 + i);
    const fv = randomArray(sizeOf(c.f), 200 + i);
    const outShape = convOutShape(c);
    const dyv = randomArray(sizeOf(outShape), 300 + i);
    const bv = randomArray(c.f[3], 400 + i);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilations ?? 1 };

    it(`Conv2D ${c.name}`, async () => {
      await expectSame(() => runKernel('Conv2D', { x: tf.tensor(xv, c.x), filter: tf.tensor(fv, c.f) }, attrs), ACCUM, 'Conv2D');
    });

    it(`FusedConv2D + bias + relu ${c.name}`, async () => {
      await expectSame(
        () => runKernel('FusedConv2D', { x: tf.tensor(xv, c.x), filter: tf.tensor(fv, c.f), bias: tf.tensor(bv, [c.f[3]]) }, { ...attrs, activation: 'relu' }),
        ACCUM,
        'FusedConv2D',
      );
    });

    if (c.dilations === undefined) {
      it(`Conv2DBackpropInput ${c.name}`, async () => {
        await expectSame(
          () =>
            runKernel(
              'Conv2DBackpropInput',
              { dy: tf.tensor(dyv, outShape), filter: tf.tensor(fv, c.f) },
              { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x },
            ),
          ACCUM,
          'Conv2DBackpropInput',
        );
      });

      it(`Conv2DBackpropFilter ${c.name}`, async () => {
        await expectSame(
          () =>
            runKernel(
              'Conv2DBackpropFilter',
              { x: tf.tensor(xv, c.x), dy: tf.tensor(dyv, outShape) },
              { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f },
            ),
          ACCUM,
          'Conv2DBackpropFilter',
        );
      });
    }
  }

  it('FusedConv2D without bias, linear and leakyrelu', async () => {
    const c = convCases[2]!;
    const xv = randomArray(sizeOf(c.x), 1);
    const fv = randomArray(sizeOf(c.f), 2);
    for (const activation of ['linear', 'leakyrelu', 'relu6', 'elu', 'sigmoid']) {
      await expectSame(
        () =>
          runKernel(
            'FusedConv2D',
            { x: tf.tensor(xv, c.x), filter: tf.tensor(fv, c.f) },
            { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1, activation, leakyreluAlpha: 0.1 },
          ),
        ACCUM,
        'FusedConv2D',
      );
    }
  });
});

interface PoolCase {
  name: string;
  x: [number, number, number, number];
  size: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same';
}

const poolCases: PoolCase[] = [
  { name: 'tutorial pool1', x: [8, 26, 26, 32], size: 2, strides: 2, pad: 'valid' },
  { name: 'tutorial pool2 (odd input)', x: [8, 11, 11, 64], size: 2, strides: 2, pad: 'valid' },
  { name: '3x3 s2 same', x: [2, 7, 9, 3], size: 3, strides: 2, pad: 'same' },
  { name: '3x2 s1 same', x: [2, 8, 8, 5], size: [3, 2], strides: 1, pad: 'same' },
  { name: '2x2 s1 valid', x: [2, 9, 7, 4], size: 2, strides: 1, pad: 'valid' },
];

describe.skipIf(!nativeAvailable)('pooling', () => {
  for (const [i, c] of poolCases.entries()) {
    // Distinct values (a shuffled ramp): max pooling has no ties to break.
    const n = sizeOf(c.x);
    const r = randomArray(n, 500 + i);
    const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => r[a]! - r[b]!);
    const xv = new Float32Array(n);
    order.forEach((k, rank) => (xv[k] = rank / n - 0.5));
    const attrs = { filterSize: c.size, strides: c.strides, pad: c.pad };
    const outShape = tf.backend_util.computePool2DInfo(c.x, c.size, c.strides, 1, c.pad).outShape;
    const dyv = randomArray(sizeOf(outShape), 600 + i);

    it(`MaxPool ${c.name}`, async () => {
      await expectSame(() => runKernel('MaxPool', { x: tf.tensor(xv, c.x) }, attrs), FP32, 'MaxPool');
    });

    it(`AvgPool ${c.name}`, async () => {
      await expectSame(() => runKernel('AvgPool', { x: tf.tensor(xv, c.x) }, attrs), FP32, 'AvgPool');
    });

    it(`MaxPoolGrad ${c.name} (workspace from the forward pass)`, async () => {
      await expectSame(
        () => {
          const x = tf.tensor(xv, c.x);
          const y = runKernel('MaxPool', { x }, attrs);
          return runKernel('MaxPoolGrad', { dy: tf.tensor(dyv, outShape), input: x, output: y }, attrs);
        },
        FP32,
        'MaxPoolGrad',
      );
    });

    it(`MaxPoolGrad ${c.name} (recomputed workspace)`, async () => {
      await expectSame(
        () => {
          const x = tf.tensor(xv, c.x);
          const y = tf.tensor(runKernel('MaxPool', { x }, attrs).dataSync(), outShape); // not a native output
          return runKernel('MaxPoolGrad', { dy: tf.tensor(dyv, outShape), input: x, output: y }, attrs);
        },
        FP32,
        'MaxPoolGrad',
      );
    });

    it(`AvgPoolGrad ${c.name}`, async () => {
      await expectSame(() => runKernel('AvgPoolGrad', { dy: tf.tensor(dyv, outShape), input: tf.tensor(xv, c.x) }, attrs), FP32, 'AvgPoolGrad');
    });
  }
});

describe.skipIf(!nativeAvailable)('matmul', () => {
  const cases: Array<{ a: number[]; b: number[]; tA: boolean; tB: boolean }> = [
    { a: [250, 1600], b: [1600, 256], tA: false, tB: false },
    { a: [250, 1600], b: [250, 256], tA: true, tB: false },
    { a: [250, 256], b: [1600, 256], tA: false, tB: true },
    { a: [1, 250, 256], b: [1, 256, 47], tA: false, tB: false },
    { a: [7, 5], b: [3, 7], tA: true, tB: true },
    { a: [3, 4, 6], b: [3, 6, 5], tA: false, tB: false },
    { a: [1, 4, 6], b: [3, 6, 5], tA: false, tB: false },
    { a: [2, 3, 6, 4], b: [2, 3, 5, 6], tA: true, tB: true },
    { a: [1, 1], b: [1, 9], tA: false, tB: false },
  ];
  for (const [i, c] of cases.entries()) {
    const av = randomArray(sizeOf(c.a), 700 + i);
    const bv = randomArray(sizeOf(c.b), 800 + i);
    it(`BatchMatMul ${JSON.stringify(c)}`, async () => {
      await expectSame(
        () => runKernel('BatchMatMul', { a: tf.tensor(av, c.a), b: tf.tensor(bv, c.b) }, { transposeA: c.tA, transposeB: c.tB }),
        ACCUM,
        'BatchMatMul',
      );
    });
  }

  it('_FusedMatMul with bias and activations', async () => {
    const av = randomArray(6 * 10, 1);
    const bv = randomArray(10 * 7, 2);
    const biasV = randomArray(7, 3);
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'leakyrelu', 'sigmoid']) {
      for (const biasShape of [[7], [1, 7], [1]]) {
        await expectSame(
          () =>
            runKernel(
              '_FusedMatMul',
              {
                a: tf.tensor(av, [1, 6, 10]),
                b: tf.tensor(bv, [1, 10, 7]),
                bias: tf.tensor(biasV.slice(0, sizeOf(biasShape)), biasShape),
              },
              { transposeA: false, transposeB: false, activation, leakyreluAlpha: 0.3 },
            ),
          ACCUM,
          '_FusedMatMul',
        );
      }
    }
  });
});

describe.skipIf(!nativeAvailable)('element-wise', () => {
  const shapes: Array<[number[], number[]]> = [
    [
      [4, 5],
      [4, 5],
    ],
    [[4, 5], []],
    [[], [4, 5]],
    [[250, 26, 26, 32], [32]],
    [
      [3, 1, 5],
      [4, 1],
    ],
    [
      [2, 3, 1, 5],
      [3, 4, 1],
    ],
    [[1600, 256], []],
    [
      [250, 47],
      [250, 1],
    ],
    [[1], [7]],
  ];
  const ops = ['Add', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'SquaredDifference', 'Pow'];
  for (const op of ops) {
    it(`${op} with broadcasting`, async () => {
      for (const [i, [sa, sb]] of shapes.entries()) {
        const positive = op === 'Pow';
        const av = randomArray(sizeOf(sa), 900 + i, positive ? 0.1 : -2, 2);
        const bv = randomArray(sizeOf(sb), 950 + i, positive ? -2 : -2, 2);
        await expectSame(() => runKernel(op, { a: tf.tensor(av, sa), b: tf.tensor(bv, sb) }), op === 'Pow' ? ACCUM : FP32, op);
      }
    });
  }

  const unary: Array<{ op: string; lo: number; hi: number; attrs?: Record<string, unknown> }> = [
    { op: 'Relu', lo: -2, hi: 2 },
    { op: 'Relu6', lo: -2, hi: 8 },
    { op: 'Step', lo: -2, hi: 2, attrs: { alpha: 0 } },
    { op: 'Step', lo: -2, hi: 2, attrs: { alpha: 0.5 } },
    { op: 'Sqrt', lo: 0, hi: 4 },
    { op: 'Square', lo: -3, hi: 3 },
    { op: 'Exp', lo: -5, hi: 5 },
    { op: 'Log', lo: 0.01, hi: 10 },
    { op: 'Neg', lo: -2, hi: 2 },
    { op: 'Floor', lo: -5, hi: 5 },
    { op: 'Ceil', lo: -5, hi: 5 },
    { op: 'Abs', lo: -2, hi: 2 },
    { op: 'Sign', lo: -2, hi: 2 },
    { op: 'Sigmoid', lo: -6, hi: 6 },
    { op: 'Tanh', lo: -3, hi: 3 },
    { op: 'Rsqrt', lo: 0.1, hi: 4 },
    { op: 'Reciprocal', lo: 0.1, hi: 4 },
    { op: 'Log1p', lo: -0.5, hi: 4 },
    { op: 'Expm1', lo: -3, hi: 3 },
    { op: 'Softplus', lo: -20, hi: 20 },
    { op: 'Elu', lo: -3, hi: 3 },
    { op: 'LeakyRelu', lo: -3, hi: 3, attrs: { alpha: 0.2 } },
    { op: 'ClipByValue', lo: -3, hi: 3, attrs: { clipValueMin: -1, clipValueMax: 0.5 } },
  ];
  for (const [i, u] of unary.entries()) {
    it(`${u.op} ${JSON.stringify(u.attrs ?? {})}`, async () => {
      for (const shape of [
        [7, 13],
        [250, 26, 26, 32],
      ]) {
        const xv = randomArray(sizeOf(shape), 1000 + i, u.lo, u.hi);
        await expectSame(() => runKernel(u.op, { x: tf.tensor(xv, shape) }, u.attrs ?? {}), FP32, u.op);
      }
    });
  }

  it('AddN', async () => {
    const xs = [0, 1, 2].map((k) => randomArray(1600 * 256, 1100 + k));
    await expectSame(() => tf.addN(xs.map((v) => tf.tensor(v, [1600, 256]))), FP32, 'AddN');
  });

  it('Softmax', async () => {
    for (const shape of [[250, 47], [3, 4, 5], [9]]) {
      const xv = randomArray(sizeOf(shape), 1200, -5, 5);
      await expectSame(() => runKernel('Softmax', { logits: tf.tensor(xv, shape) }, { dim: -1 }), FP32, 'Softmax');
    }
  });
});

describe.skipIf(!nativeAvailable)('gather', () => {
  const cases: Array<{ x: number[]; dtype: 'float32' | 'int32'; axis: number; idx: number[]; idxShape: number[] }> = [
    { x: [40, 28, 28, 1], dtype: 'float32', axis: 0, idx: [3, 0, 39, 7, 7], idxShape: [5] },
    { x: [40, 47], dtype: 'float32', axis: 0, idx: [1, 2, 3, 38], idxShape: [2, 2] },
    { x: [4, 5, 6], dtype: 'float32', axis: 1, idx: [4, 0, 2], idxShape: [3] },
    { x: [4, 5, 6], dtype: 'int32', axis: 2, idx: [5, 5, 1], idxShape: [3] },
  ];
  for (const c of cases) {
    it(`GatherV2 ${JSON.stringify(c)}`, async () => {
      const xv = randomArray(sizeOf(c.x), 1400, -50, 50);
      const data = c.dtype === 'int32' ? Int32Array.from(xv, Math.round) : xv;
      await expectSame(() => tf.gather(tf.tensor(data, c.x, c.dtype), tf.tensor(c.idx, c.idxShape, 'int32'), c.axis).toFloat(), FP32, 'GatherV2');
    });
  }

  it("GatherV2 with an out-of-range index reports tfjs' error", async () => {
    await tf.setBackend('onednn');
    expect(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([0, 3], 'int32'))).toThrow(/not in \[0, 2\]/);
  });
});

describe.skipIf(!nativeAvailable)('reductions', () => {
  const cases: Array<{ shape: number[]; axes: number[]; keepDims: boolean; native: boolean }> = [
    { shape: [250, 26, 26, 32], axes: [0, 1, 2], keepDims: false, native: true },
    { shape: [250, 47], axes: [1], keepDims: true, native: true },
    { shape: [250, 47], axes: [0], keepDims: false, native: true },
    { shape: [5, 6, 7], axes: [1], keepDims: false, native: true },
    { shape: [5, 6, 7], axes: [0, 1, 2], keepDims: false, native: true },
    { shape: [5, 1, 7], axes: [0, 1], keepDims: true, native: true },
    { shape: [5, 6, 7], axes: [0, 2], keepDims: false, native: false },
    { shape: [1600, 256], axes: [0, 1], keepDims: false, native: true },
  ];
  for (const op of ['Sum', 'Mean', 'Max', 'Min']) {
    it(op, async () => {
      for (const [i, c] of cases.entries()) {
        const xv = randomArray(sizeOf(c.shape), 1300 + i, -3, 3);
        const axisAttr = op === 'Max' ? 'reductionIndices' : 'axis';
        await expectSame(() => runKernel(op, { x: tf.tensor(xv, c.shape) }, { [axisAttr]: c.axes, keepDims: c.keepDims }), ACCUM, c.native ? op : undefined);
      }
    });
  }
});

describe.skipIf(!nativeAvailable)('buffer pool safety', () => {
  it('a contiguous slice (aliasing a pooled buffer) survives disposal of its source', async () => {
    await tf.setBackend('onednn');
    const src = tf.add(tf.tensor(randomArray(64, 1), [8, 8]), 1); // native output (pooled buffer)
    const slice = tf.slice(src, [2, 0], [3, 8]); // cpu kernel: subarray of src's buffer
    const expected = Float32Array.from(slice.dataSync());
    src.dispose();
    // Churn buffers of the same size: a wrongly recycled buffer would be overwritten.
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.mul(tf.tensor(randomArray(64, 10 + i), [8, 8]), 3).dataSync());
    expect(Array.from(slice.dataSync())).toEqual(Array.from(expected));
    slice.dispose();
  });

  it('values read with dataSync stay valid after dispose (their buffer is never recycled)', async () => {
    await tf.setBackend('onednn');
    const t = tf.add(tf.ones([16]), 1);
    const values = t.dataSync();
    t.dispose();
    for (let i = 0; i < 3; i++) tf.tidy(() => tf.add(tf.zeros([16]), 7).dataSync());
    expect(Array.from(values)).toEqual(new Array(16).fill(2));
  });
});
