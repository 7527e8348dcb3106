/**
 * The whole-step native path (OnednnSequentialStep) against tfjs autodiff on the cpu backend:
 * the same stack written with tfjs ops (conv, relu, max pool, seeded dropout masks, flatten,
 * dense, cross-entropy from logits, Keras' weight and activity penalties with sign(0) = 0),
 * differentiated by tf.variableGrads. Loss parts and every gradient must agree; and the
 * RegulaSeededDropout kernel must reproduce the JS masks bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { onednnKernelStats, OnednnSequentialStep, SEEDED_DROPOUT, type PenaltyFactors, type SequentialLayer } from '../src/index.js';
// The JS definition of a seeded dropout mask is the service's: the native kernel must match it bit for bit.
import { dropoutMultipliers as multipliers, mix32 } from '../../../src/engine/dropout.js';
import { nativeAvailable, randomArray, rng, setup, worstRatio } from './helpers.js';

beforeAll(async () => {
  if (nativeAvailable) await setup(2);
});

const sumAbs = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return { value: tf.sum(tf.abs(x)), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.sign(saved[0]!)) };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Scalar;

function penalty(p: PenaltyFactors | null | undefined, x: tf.Tensor): tf.Scalar {
  let t: tf.Scalar = tf.scalar(0);
  if (!p) return t;
  if (p.l1 > 0) t = tf.add(t, tf.mul(p.l1, sumAbs(x)));
  if (p.l2 > 0) t = tf.add(t, tf.mul(p.l2, tf.sum(tf.square(x))));
  return t;
}

interface Case {
  name: string;
  input: [number, number, number];
  batch: number;
  classes: number;
  layers: (w: (shape: number[], seed: number) => tf.Variable) => SequentialLayer[];
  /** Images (batch indices) whose pixels at even (row, column) all have one value. */
  tieImages?: number[];
  /** The Conv2D layers the native step fuses with their max pooling, and their output layout (default: the tutorial stack's first, NHWC). */
  fused?: Array<{ layer: number; output: 'nhwc' | 'nChw8c' | 'nChw16c' }>;
}

const l1: PenaltyFactors = { l1: 0.01, l2: 0 };
const l2: PenaltyFactors = { l1: 0, l2: 0.01 };
const en: PenaltyFactors = { l1: 0.01, l2: 0.01 };

function tutorial(slots: { kernel?: PenaltyFactors; bias?: PenaltyFactors; activity?: PenaltyFactors }, classes: number) {
  const pen = { kernelPenalty: slots.kernel ?? null, biasPenalty: slots.bias ?? null, activityPenalty: slots.activity ?? null };
  return (w: (shape: number[], seed: number) => tf.Variable): SequentialLayer[] => [
    { type: 'conv2d', kernel: w([3, 3, 1, 8], 1), bias: w([8], 2), strides: [1, 1], padding: 'valid', activation: 'relu', ...pen },
    { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
    { type: 'dropout', rate: 0.25 },
    { type: 'conv2d', kernel: w([3, 3, 8, 16], 3), bias: w([16], 4), strides: [1, 1], padding: 'valid', activation: 'relu', ...pen },
    { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
    { type: 'dropout', rate: 0.25 },
    { type: 'flatten' },
    { type: 'dense', kernel: w([64, 32], 5), bias: w([32], 6), activation: 'relu', ...pen },
    { type: 'dense', kernel: w([32, classes], 7), bias: w([classes], 8), activation: 'softmax', ...pen },
  ];
}

/** The kernel [2, 2, in, out] with every weight but the top-left one of each filter set to 0 (in place). */
function topLeftOnly(k: tf.Variable): tf.Variable {
  const [kh, kw, ci, co] = k.shape as [number, number, number, number];
  const mask = tf.buffer([kh, kw, ci, co]);
  for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) mask.set(1, 0, 0, i, o);
  tf.tidy(() => k.assign(tf.mul(k, mask.toTensor())));
  return k;
}

const CASES: Case[] = [
  { name: 'baseline', input: [14, 14, 1], batch: 9, classes: 10, layers: tutorial({}, 10) },
  { name: 'l1 kernel + bias', input: [14, 14, 1], batch: 9, classes: 10, layers: tutorial({ kernel: l1, bias: l1 }, 10) },
  { name: 'l2 kernel + bias', input: [14, 14, 1], batch: 9, classes: 10, layers: tutorial({ kernel: l2, bias: l2 }, 10) },
  { name: 'l1 activity', input: [14, 14, 1], batch: 9, classes: 10, layers: tutorial({ activity: l1 }, 10) },
  { name: 'l2 activity 0.1', input: [14, 14, 1], batch: 9, classes: 10, layers: tutorial({ activity: { l1: 0, l2: 0.1 } }, 10) },
  { name: 'elastic net everywhere', input: [14, 14, 1], batch: 9, classes: 10, layers: tutorial({ kernel: en, bias: en, activity: en }, 10) },
  {
    name: 'same padding, strides 2, linear conv, no bias, 3 channels',
    input: [9, 11, 3],
    batch: 5,
    classes: 7,
    layers: (w) => [
      { type: 'conv2d', kernel: w([3, 3, 3, 6], 11), bias: null, strides: [2, 2], padding: 'same', activation: 'linear', activityPenalty: en },
      { type: 'conv2d', kernel: w([2, 2, 6, 5], 12), bias: w([5], 13), strides: [1, 1], padding: 'same', activation: 'relu', kernelPenalty: l2 },
      { type: 'maxPooling2d', poolSize: [3, 3], strides: [2, 2], padding: 'same' },
      { type: 'flatten' },
      { type: 'dropout', rate: 0.5 },
      { type: 'dense', kernel: w([45, 12], 14), bias: null, activation: 'linear', activityPenalty: l1 },
      { type: 'dense', kernel: w([12, 7], 15), bias: w([7], 16), activation: 'softmax' },
    ],
  },
  {
    // 16 -> 32 channels, 3x3, stride 1: the layer runs Winograd F(4x4, 3x3) by default.
    name: 'a Winograd-eligible layer (16 -> 32 channels, 3x3 stride 1), with activity penalties',
    input: [12, 12, 2],
    batch: 6,
    classes: 5,
    layers: (w) => [
      { type: 'conv2d', kernel: w([3, 3, 2, 16], 21), bias: w([16], 22), strides: [1, 1], padding: 'same', activation: 'relu' },
      { type: 'conv2d', kernel: w([3, 3, 16, 32], 23), bias: w([32], 24), strides: [1, 1], padding: 'valid', activation: 'relu', activityPenalty: en },
      { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
      { type: 'dropout', rate: 0.25 },
      { type: 'flatten' },
      { type: 'dense', kernel: w([800, 5], 25), bias: w([5], 26), activation: 'softmax' },
    ],
  },
  {
    // The fused Conv2D+ReLU+max pooling kernel (conv-pool.h) on edges: 'same' padding, 2 input
    // channels, 16 output channels, an odd output (15x15) whose last row and column no pooling
    // window covers (they reach the loss only through the activity penalty).
    name: 'fused conv + pool: same padding, uncovered edges, 16 channels, elastic net activity',
    input: [15, 15, 2],
    batch: 6,
    classes: 4,
    layers: (w) => [
      { type: 'conv2d', kernel: w([3, 3, 2, 16], 31), bias: w([16], 32), strides: [1, 1], padding: 'same', activation: 'relu', activityPenalty: en },
      { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
      { type: 'flatten' },
      { type: 'dense', kernel: w([7 * 7 * 16, 4], 33), bias: w([4], 34), activation: 'softmax' },
    ],
    fused: [{ layer: 0, output: 'nhwc' }],
  },
  {
    // Ties that change the gradient: the kernel sees only the top-left pixel of its 2x2 patch (the
    // other weights are 0), and in the tie images those pixels are all equal while the others are
    // not, so every 3x3 window ties and the gradients of the zero weights show which position got
    // the pooling's gradient (the first maximum, in row-major order, as tfjs' cpu kernel chooses).
    name: 'fused conv + pool: 3x3 pooling windows, strides 2, no bias, ties, no penalty',
    input: [13, 13, 1],
    batch: 5,
    classes: 3,
    tieImages: [0, 2, 3],
    layers: (w) => [
      { type: 'conv2d', kernel: topLeftOnly(w([2, 2, 1, 8], 41)), bias: null, strides: [2, 2], padding: 'valid', activation: 'relu' },
      { type: 'maxPooling2d', poolSize: [3, 3], strides: [3, 3], padding: 'valid' },
      { type: 'flatten' },
      { type: 'dense', kernel: w([2 * 2 * 8, 3], 42), bias: w([3], 43), activation: 'softmax', kernelPenalty: l2 },
    ],
    fused: [{ layer: 0, output: 'nhwc' }],
  },
  {
    // The tutorial's stack with 16 and 32 channels: the second convolution runs Winograd in oneDNN's
    // blocked layout, which the fused kernel writes directly (after the dropout) and whose input
    // gradient it reads in that layout.
    name: 'fused conv + pool + dropout into a blocked Winograd convolution, elastic net everywhere',
    input: [14, 14, 1],
    batch: 7,
    classes: 6,
    layers: (w) => [
      {
        type: 'conv2d',
        kernel: w([3, 3, 1, 16], 51),
        bias: w([16], 52),
        strides: [1, 1],
        padding: 'valid',
        activation: 'relu',
        activityPenalty: en,
        kernelPenalty: en,
      },
      { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
      { type: 'dropout', rate: 0.25 },
      { type: 'conv2d', kernel: w([3, 3, 16, 32], 53), bias: w([32], 54), strides: [1, 1], padding: 'valid', activation: 'relu', activityPenalty: en },
      { type: 'maxPooling2d', poolSize: [2, 2], strides: [2, 2], padding: 'valid' },
      { type: 'dropout', rate: 0.25 },
      { type: 'flatten' },
      { type: 'dense', kernel: w([2 * 2 * 32, 6], 55), bias: w([6], 56), activation: 'softmax' },
    ],
    fused: [{ layer: 0, output: 'nChw16c' }],
  },
];

/**
 * Seeded random Conv2D -> MaxPooling2D -> [Dropout] -> Flatten -> Dense stacks around the fused
 * kernel's conditions (channel counts on and off its multiples of 8, patches of 1..36 values, strides,
 * 'same' padding, overlapping and non-overlapping pooling, odd outputs), each with the layers it must
 * fuse: only where the fused kernel's conditions hold, and then the same math as the reference.
 */
function generatedCases(n: number, seed: number): Case[] {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const out: Case[] = [];
  while (out.length < n) {
    const [h, w, ch] = [int(7, 15), int(7, 15), int(1, 4)];
    const [kh, kw, stride] = [int(1, 3), int(1, 3), int(1, 2)];
    const convPad = pick(['valid', 'same'] as const);
    const filters = pick([8, 16, 24, 32, 40, 64, 12, 72]);
    const activation = pick(['relu', 'relu', 'relu', 'linear'] as const);
    const oh = convPad === 'same' ? Math.ceil(h / stride) : Math.floor((h - kh) / stride) + 1;
    const ow = convPad === 'same' ? Math.ceil(w / stride) : Math.floor((w - kw) / stride) + 1;
    const pool = int(1, 3);
    const poolStride = pick([pool, pool, Math.max(1, pool - 1)]);
    const poolPad = pick(['valid', 'valid', 'same'] as const);
    const ph = poolPad === 'same' ? Math.ceil(oh / poolStride) : Math.floor((oh - pool) / poolStride) + 1;
    const pw = poolPad === 'same' ? Math.ceil(ow / poolStride) : Math.floor((ow - pool) / poolStride) + 1;
    if (oh < 1 || ow < 1 || ph < 1 || pw < 1) continue;
    const dropout = r() < 0.5;
    const activity = pick([null, l1, l2, en]);
    const bias = r() < 0.8;
    const classes = int(3, 5);
    const i = out.length;
    // 'same' pooling that needs no padding (e.g. 1x1 windows) is the unpadded pooling the kernel takes.
    const unpadded = poolPad === 'valid' || ((ph - 1) * poolStride + pool <= oh && (pw - 1) * poolStride + pool <= ow);
    const fuses = activation === 'relu' && filters % 8 === 0 && filters <= 64 && poolStride === pool && unpadded;
    out.push({
      name: `generated ${i}: ${h}x${w}x${ch}, conv ${kh}x${kw}/${stride} ${convPad} ${activation} -> ${filters}, pool ${pool}/${poolStride} ${poolPad}${dropout ? ', dropout' : ''}${activity ? ', activity' : ''}${fuses ? ' (fused)' : ''}`,
      input: [h, w, ch],
      batch: int(2, 6),
      classes,
      layers: (wt) => [
        {
          type: 'conv2d',
          kernel: wt([kh, kw, ch, filters], 60 + 10 * i),
          bias: bias ? wt([filters], 61 + 10 * i) : null,
          strides: [stride, stride],
          padding: convPad,
          activation,
          activityPenalty: activity,
        },
        { type: 'maxPooling2d', poolSize: [pool, pool], strides: [poolStride, poolStride], padding: poolPad },
        ...(dropout ? [{ type: 'dropout' as const, rate: 0.3 }] : []),
        { type: 'flatten' },
        { type: 'dense', kernel: wt([ph * pw * filters, classes], 62 + 10 * i), bias: wt([classes], 63 + 10 * i), activation: 'softmax' },
      ],
      fused: fuses ? [{ layer: 0, output: 'nhwc' }] : [],
    });
  }
  return out;
}
CASES.push(...generatedCases(24, 2026));

/** The reference: tfjs ops on the cpu backend, differentiated by tfjs. */
function reference(layers: SequentialLayer[], x: tf.Tensor4D, y: tf.Tensor2D, keys: number[]) {
  const B = x.shape[0];
  const vars: tf.Variable[] = [];
  for (const L of layers) {
    if (L.type === 'conv2d' || L.type === 'dense') {
      vars.push(L.kernel as tf.Variable);
      if (L.bias) vars.push(L.bias as tf.Variable);
    }
  }
  const parts = { dataLoss: 0, kernel: 0, bias: 0, activity: 0, correct: 0 };
  const { grads } = tf.variableGrads(() => {
    let h: tf.Tensor = x;
    let kernel: tf.Scalar = tf.scalar(0);
    let bias: tf.Scalar = tf.scalar(0);
    let activity: tf.Scalar = tf.scalar(0);
    let logits: tf.Tensor2D | null = null;
    layers.forEach((L, i) => {
      switch (L.type) {
        case 'conv2d':
        case 'dense': {
          let z =
            L.type === 'conv2d'
              ? tf.conv2d(h as tf.Tensor4D, L.kernel as tf.Tensor4D, L.strides, L.padding)
              : tf.matMul(h as tf.Tensor2D, L.kernel as tf.Tensor2D);
          if (L.bias) z = tf.add(z, L.bias);
          kernel = tf.add(kernel, penalty(L.kernelPenalty, L.kernel));
          if (L.bias) bias = tf.add(bias, penalty(L.biasPenalty, L.bias));
          if (L.activation === 'softmax') {
            logits = z as tf.Tensor2D;
            h = tf.softmax(z);
          } else {
            h = L.activation === 'relu' ? tf.relu(z) : z;
          }
          activity = tf.add(activity, tf.div(penalty(L.activityPenalty, h), B));
          break;
        }
        case 'maxPooling2d':
          h = tf.maxPool(h as tf.Tensor4D, L.poolSize, L.strides, L.padding);
          break;
        case 'dropout':
          h = tf.mul(h, tf.tensor(multipliers(h.size, L.rate, keys[i]!), h.shape));
          break;
        case 'flatten':
          h = tf.reshape(h, [B, -1]);
          break;
      }
    });
    const z = logits as unknown as tf.Tensor2D;
    const dataLoss = tf.mean(tf.sum(tf.mul(y, tf.sub(tf.logSumExp(z, 1, true), z)), 1)) as tf.Scalar;
    const correct = tf.sum(tf.cast(tf.equal(tf.argMax(z, -1), tf.argMax(y, -1)), 'float32'));
    parts.dataLoss = dataLoss.dataSync()[0]!;
    parts.kernel = kernel.dataSync()[0]!;
    parts.bias = bias.dataSync()[0]!;
    parts.activity = activity.dataSync()[0]!;
    parts.correct = correct.dataSync()[0]!;
    return tf.addN([dataLoss, kernel, bias, activity]) as tf.Scalar;
  }, vars);
  return { parts, grads: vars.map((v) => grads[v.name]!) };
}

describe.skipIf(!nativeAvailable)('OnednnSequentialStep vs tfjs autodiff on cpu', () => {
  // Each case with the fused Conv2D+ReLU+max pooling kernel where it applies, and without it.
  for (const c of CASES.flatMap((c) => [
    { ...c, fuse: true },
    { ...c, fuse: false },
  ])) {
    it(`${c.name}${c.fuse ? '' : ' (ONEDNN_STEP_FUSE=0)'}`, async () => {
      const [h, w, ch] = c.input;
      const r = rng(99);
      const xv = randomArray(c.batch * h * w * ch, 5, 0, 1);
      for (const b of c.tieImages ?? []) {
        for (let i = 0; i < h; i += 2) for (let j = 0; j < w; j += 2) xv.fill(0.5, ((b * h + i) * w + j) * ch, ((b * h + i) * w + j + 1) * ch);
      }
      const yv = new Float32Array(c.batch * c.classes);
      for (let b = 0; b < c.batch; b++) yv[b * c.classes + Math.floor(r() * c.classes)] = 1;
      const make = (shape: number[], seed: number) =>
        tf.variable(
          tf.tensor(
            randomArray(
              shape.reduce((a, b) => a * b, 1),
              100 + seed,
              -0.4,
              0.4,
            ),
            shape,
          ),
        );
      const keys = Array.from({ length: 12 }, (_, i) => mix32(1234 + i));

      await tf.setBackend('cpu');
      const cpuLayers = c.layers(make);
      // A zero in a biased weight checks sign(0) = 0 under L1.
      const ref = tf.tidy(() => reference(cpuLayers, tf.tensor4d(xv, [c.batch, h, w, ch]), tf.tensor2d(yv, [c.batch, c.classes]), keys));
      const refGrads = ref.grads.map((g) => Float32Array.from(g.dataSync()));
      const values = cpuLayers
        .flatMap((L) => (L.type === 'conv2d' || L.type === 'dense' ? [L.kernel, ...(L.bias ? [L.bias] : [])] : []))
        .map((v) => Float32Array.from(v.dataSync()));
      tf.dispose(ref.grads);

      await tf.setBackend('onednn');
      let k = 0;
      const layers = c.layers((shape) => tf.variable(tf.tensor(values[k++]!, shape)));
      const step = OnednnSequentialStep.plan(c.input, layers);
      if (typeof step === 'string') throw new Error(step);
      const x = tf.tensor4d(xv, [c.batch, h, w, ch]);
      const fuseBefore = process.env.ONEDNN_STEP_FUSE;
      process.env.ONEDNN_STEP_FUSE = c.fuse ? '1' : '0';
      const y = tf.tensor2d(yv, [c.batch, c.classes]);
      const before = tf.memory().numTensors;
      let firstRun: Float32Array[] = [];
      for (let rep = 0; rep < 2; rep++) {
        // Twice: the second run reuses the cached primitives and buffers, and must be bit-identical.
        const res = step.run(x, y, keys);
        if (rep === 0) {
          if (fuseBefore === undefined) delete process.env.ONEDNN_STEP_FUSE;
          else process.env.ONEDNN_STEP_FUSE = fuseBefore;
          const tutorialStack = layers[0]?.type === 'conv2d' && layers[1]?.type === 'maxPooling2d' && layers[0].activation === 'relu';
          const expected = c.fused ?? (tutorialStack ? [{ layer: 0, output: 'nhwc' }] : []);
          expect(step.fusedLayers(), 'fused convolutions').toEqual(c.fuse ? expected : []);
        }
        const bits = res.grads.map((g) => Float32Array.from(g.dataSync()));
        if (rep === 0) firstRun = bits;
        else bits.forEach((b, i) => expect(Buffer.from(b.buffer).equals(Buffer.from(firstRun[i]!.buffer)), `gradient ${i} differs between runs`).toBe(true));
        expect(res.grads.length).toBe(refGrads.length);
        const rel = (a: number, b: number) => Math.abs(a - b) / (1e-6 + Math.abs(b));
        expect(rel(res.dataLoss, ref.parts.dataLoss), 'data loss').toBeLessThan(1e-5);
        expect(rel(res.kernelPenalty, ref.parts.kernel), 'kernel penalty').toBeLessThan(1e-5);
        expect(rel(res.biasPenalty, ref.parts.bias), 'bias penalty').toBeLessThan(1e-5);
        expect(rel(res.activityPenalty, ref.parts.activity), 'activity penalty').toBeLessThan(1e-5);
        expect(res.correct).toBe(ref.parts.correct);
        res.grads.forEach((g, i) => {
          expect(g.shape).toEqual([...step.variables[i]!.shape]);
          expect(worstRatio(Float32Array.from(g.dataSync()), refGrads[i]!, 1e-5, 1e-4), `gradient ${i}`).toBeLessThanOrEqual(1);
        });
        tf.dispose(res.grads);
      }
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, y, ...step.variables]);
    });
  }

  it('declines what it does not implement, with the reason', () => {
    const k = tf.zeros([3, 3, 1, 4]);
    const d = tf.zeros([4 * 26 * 26, 5]);
    expect(OnednnSequentialStep.plan([28, 28, 1], [{ type: 'conv2d', kernel: k, bias: null, strides: [1, 1], padding: 'valid', activation: 'tanh' }])).toMatch(
      /activation 'tanh'/,
    );
    expect(
      OnednnSequentialStep.plan(
        [28, 28, 1],
        [
          { type: 'conv2d', kernel: k, bias: null, strides: [1, 1], padding: 'valid', activation: 'relu' },
          { type: 'dense', kernel: d, bias: null, activation: 'softmax' },
        ],
      ),
    ).toMatch(/no Flatten/);
    expect(
      OnednnSequentialStep.plan([28, 28, 1], [{ type: 'flatten' }, { type: 'dense', kernel: tf.zeros([784, 5]), bias: null, activation: 'relu' }]),
    ).toMatch(/not Dense \+ softmax/);
    tf.dispose([k, d]);
  });
});

describe.skipIf(!nativeAvailable)('RegulaSeededDropout', () => {
  it('reproduces the JS masks bit for bit, forward and on a gradient', async () => {
    await tf.setBackend('onednn');
    for (const [size, rate, key] of [
      [1, 0.25, 0],
      [1000, 0.25, 0xdeadbeef],
      [300_001, 0.5, 12345],
      [70_000, 0.999, 7],
      [5000, 0, 99],
    ] as const) {
      const xv = randomArray(size, size, -2, 2);
      const x = tf.tensor1d(xv);
      onednnKernelStats(true);
      const y = tf.engine().runKernel(SEEDED_DROPOUT, { x } as never, { key, rate } as never) as tf.Tensor;
      // The reference is x times the JS mask, as the service's JS path computes it (−0 where a negative is dropped).
      expect(onednnKernelStats()[SEEDED_DROPOUT]).toEqual({ native: 1, fallback: 0 });
      const m = multipliers(size, rate, key);
      const expected = new Float32Array(size);
      for (let i = 0; i < size; i++) expected[i] = Math.fround(xv[i]! * m[i]!);
      const got = y.dataSync() as Float32Array;
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(expected.buffer))).toBe(true);
      tf.dispose([x, y]);
    }
  });
});
