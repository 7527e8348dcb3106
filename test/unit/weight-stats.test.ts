/**
 * Per-layer weight statistics:
 *  - on a tiny model with weights set by hand, every figure equals plain float64 arithmetic;
 *  - train() measures them on the fixed probe (the first images of the validation tail, or of the
 *    training data without validation) every epoch and on the final model;
 *  - the tutorial's claim, as a property: L1 leaves far more weights near zero than L2.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildModel } from '../../src/engine/model.js';
import { train } from '../../src/engine/train.js';
import type { LayerStats, TensorStats, TrainingData, TrainingEvent } from '../../src/engine/types.js';
import { layerStats, NEAR_ZERO } from '../../src/engine/weight-stats.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import type { RunRequest } from '../../src/run-spec/schema.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  });
}

/** The stats of a list of numbers, in float64. */
function hand(xs: ArrayLike<number>): TensorStats {
  let l1 = 0;
  let sq = 0;
  let maxAbs = 0;
  let near = 0;
  for (let i = 0; i < xs.length; i++) {
    const a = Math.abs(xs[i]!);
    l1 += a;
    sq += a * a;
    maxAbs = Math.max(maxAbs, a);
    if (a < NEAR_ZERO) near++;
  }
  return { count: xs.length, nearZero: near / xs.length, l1, l2: Math.sqrt(sq), maxAbs };
}

function expectStats(actual: TensorStats | null, expected: TensorStats, label: string) {
  if (!actual) throw new Error(`${label}: no stats`);
  expect(actual.count, `${label}.count`).toBe(expected.count);
  expect(actual.nearZero, `${label}.nearZero`).toBeCloseTo(expected.nearZero, 6);
  expect(actual.l1, `${label}.l1`).toBeCloseTo(expected.l1, 5);
  expect(actual.l2, `${label}.l2`).toBeCloseTo(expected.l2, 5);
  expect(actual.maxAbs, `${label}.maxAbs`).toBeCloseTo(expected.maxAbs, 6);
}

describe('layerStats on hand-set weights', () => {
  // 4x4x1 input → Conv2D(2, 3x3, relu) → 2x2x2 → Flatten(8) → Dense(4, linear, no bias) → Dense(3, softmax)
  const { spec } = normalizeSpec(
    {
      model: {
        layers: [
          { type: 'Conv2D', filters: 2, kernelSize: 3, activation: 'relu' },
          { type: 'Dropout', rate: 0.5 },
          { type: 'Flatten' },
          { type: 'Dense', units: 4, activation: 'linear', useBias: false },
          { type: 'Dense', units: 3, activation: 'softmax' },
        ],
      },
      training: { seed: 5 },
    },
    { numClasses: 3, seed: 5, inputShape: [4, 4, 1] },
  );

  // Conv kernel [3,3,1,2] (row-major: ((di*3 + dj)*1 + 0)*2 + f): zeros, ±5e-4 (near zero) and larger values.
  const K = [0, 0.2, 5e-4, -0.3, 0.1, 0, -5e-4, 0.4, 0.25, -0.15, 0, 0.05, 0.3, 5e-4, -0.2, 0.35, 0.15, -0.1];
  const KB = [0.05, -0.02];
  const W = Array.from({ length: 8 * 4 }, (_, i) => (i % 5 === 0 ? 0 : ((i * 7) % 11) / 10 - 0.5)); // [8,4]
  const W2 = Array.from({ length: 4 * 3 }, (_, i) => ((i * 3) % 7) / 7 - 0.4); // [4,3]
  const B2 = [0.1, 0, -0.1];
  const N = 3;
  const X = Array.from(seeded(N * 16, 7), (v) => v - 0.3); // [3,4,4,1], some negative pixels

  let stats: LayerStats[];
  let leaked: number;

  beforeAll(async () => {
    const built = buildModel(spec);
    const [conv, , , dense, out] = built.layers;
    conv!.kernel!.assign(tf.tensor4d(K, [3, 3, 1, 2]));
    conv!.bias!.assign(tf.tensor1d(KB));
    dense!.kernel!.assign(tf.tensor2d(W, [8, 4]));
    out!.kernel!.assign(tf.tensor2d(W2, [4, 3]));
    out!.bias!.assign(tf.tensor1d(B2));
    const probe = tf.tensor4d(X, [N, 4, 4, 1]);
    const before = tf.memory().numTensors;
    stats = await layerStats(built, probe);
    leaked = tf.memory().numTensors - before;
    probe.dispose();
    built.dispose();
  });

  it('names every Conv2D and Dense layer in order, and no other layer', () => {
    expect(stats.map((s) => [s.layer, s.type])).toEqual([
      ['conv2d', 'Conv2D'],
      ['dense', 'Dense'],
      ['dense_1', 'Dense'],
    ]);
    expect(leaked).toBe(0);
  });

  it('kernel and bias stats equal hand arithmetic (count, near-zero fraction, Σ|w|, L2 norm, max|w|)', () => {
    const [conv, dense, out] = stats;
    // 3 exact zeros and 3 weights of ±5e-4 among the 18 conv weights.
    expect(conv!.kernel.nearZero).toBeCloseTo(6 / 18, 6);
    expectStats(conv!.kernel, hand(K), 'conv2d.kernel');
    expect(conv!.kernel.maxAbs).toBeCloseTo(0.4, 6);
    expectStats(conv!.bias, hand(KB), 'conv2d.bias');
    expectStats(dense!.kernel, hand(W), 'dense.kernel');
    expect(dense!.bias).toBeNull();
    expectStats(out!.kernel, hand(W2), 'dense_1.kernel');
    expectStats(out!.bias, hand(B2), 'dense_1.bias');
    // The L2 norm, not the squared sum Keras' l2 penalty uses.
    expect(conv!.bias!.l2).toBeCloseTo(Math.sqrt(0.05 ** 2 + 0.02 ** 2), 6);
  });

  it('activationMeanAbs is mean |output| of each layer on the probe, dropout off', () => {
    let convAbs = 0;
    let denseAbs = 0;
    for (let n = 0; n < N; n++) {
      const flat: number[] = [];
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 2; j++) {
          for (let f = 0; f < 2; f++) {
            let s = KB[f]!;
            for (let di = 0; di < 3; di++) for (let dj = 0; dj < 3; dj++) s += X[n * 16 + (i + di) * 4 + (j + dj)]! * K[(di * 3 + dj) * 2 + f]!;
            const a = Math.max(0, s); // relu
            convAbs += a;
            flat.push(a); // Flatten of NHWC: (i*2 + j)*2 + f
          }
        }
      }
      for (let u = 0; u < 4; u++) {
        let s = 0;
        for (let k = 0; k < 8; k++) s += flat[k]! * W[k * 4 + u]!;
        denseAbs += Math.abs(s); // linear, no bias; dropout (rate 0.5) is off
      }
    }
    expect(stats[0]!.activationMeanAbs).toBeCloseTo(convAbs / (N * 8), 6);
    expect(stats[1]!.activationMeanAbs).toBeCloseTo(denseAbs / (N * 4), 6);
    // Softmax rows sum to 1: mean |p| over 3 classes is 1/3.
    expect(stats[2]!.activationMeanAbs).toBeCloseTo(1 / 3, 6);
  });
});

const C = 3;
const D = 784;

function randomData(count: number, seed: number): TrainingData {
  const labels = Int32Array.from(seeded(count, seed + 1), (v) => Math.floor(v * C));
  return {
    train: { images: seeded(count * D, seed), labels, count },
    test: { images: seeded(40 * D, seed + 2), labels: Int32Array.from({ length: 40 }, (_, i) => i % C), count: 40 },
    numClasses: C,
  };
}

describe('train() reports weight stats on the fixed probe', () => {
  const request = (validationSplit: number): RunRequest => ({
    model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units: 8, activation: 'relu' }, { type: 'Dense', units: C, activation: 'softmax' }] },
    training: { epochs: 2, batchSize: 50, validationSplit, seed: 11, optimizer: { type: 'sgd', learningRate: 0.05 } },
  });

  /** Stats of the run's initial weights (same seed → same initialisation) on `images[from, to)`. */
  async function initialStats(validationSplit: number, data: TrainingData, from: number, to: number): Promise<LayerStats[]> {
    const { spec } = normalizeSpec(request(validationSplit), { numClasses: C, seed: 11 });
    const built = buildModel(spec);
    const probe = tf.tensor4d(data.train.images.slice(from * D, to * D), [to - from, 28, 28, 1]);
    const s = await layerStats(built, probe);
    probe.dispose();
    built.dispose();
    return s;
  }

  it('uses the first images of the validation tail, the same every epoch', async () => {
    const data = randomData(400, 3);
    const zeroLr = normalizeSpec(request(0.25), { numClasses: C, seed: 11 }).spec;
    zeroLr.training.optimizer.learningRate = 0; // weights stay the initial ones
    const events: TrainingEvent[] = [];
    const before = tf.memory().numTensors;
    const result = await train(zeroLr, data, { onEvent: (e) => events.push(e) });
    expect(tf.memory().numTensors).toBe(before);
    const epochs = events.flatMap((e) => (e.type === 'epoch' ? [e] : []));
    expect(epochs).toHaveLength(2);
    // Validation tail: images 300..399 (100 < 256 of them).
    const expected = await initialStats(0.25, data, 300, 400);
    for (const e of epochs) expect(e.weights).toEqual(expected);
    if (result.status !== 'completed') throw new Error('not completed');
    expect(result.weights).toEqual(expected);
    // Not the first training images.
    const other = await initialStats(0.25, data, 0, 100);
    expect(other[0]!.activationMeanAbs).not.toBeCloseTo(expected[0]!.activationMeanAbs, 6);
  });

  it('uses the first 256 training images when validationSplit is 0', async () => {
    const data = randomData(300, 4);
    const zeroLr = normalizeSpec(request(0), { numClasses: C, seed: 11 }).spec;
    zeroLr.training.optimizer.learningRate = 0;
    const result = await train(zeroLr, data);
    if (result.status !== 'completed') throw new Error('not completed');
    expect(result.epochs[1]!.weights).toEqual(await initialStats(0, data, 0, 256));
  });
});

describe('L1 drives weights to zero, L2 only shrinks them', () => {
  async function run(reg: { type: 'l1'; l1: number } | { type: 'l2'; l2: number }) {
    const { spec } = normalizeSpec(
      {
        model: {
          layers: [
            { type: 'Flatten' },
            { type: 'Dense', units: 16, activation: 'relu', kernelRegularizer: reg },
            { type: 'Dense', units: C, activation: 'softmax' },
          ],
        },
        training: { epochs: 5, batchSize: 10, validationSplit: 0, seed: 21, optimizer: { type: 'sgd', learningRate: 0.02 } },
      },
      { numClasses: C, seed: 21 },
    );
    const result = await train(spec, randomData(200, 9));
    if (result.status !== 'completed') throw new Error('not completed');
    return result;
  }

  it('ends with a much larger near-zero fraction of the regularized kernel under L1 (λ = 0.1) than under L2 (λ = 0.1)', async () => {
    const l1 = await run({ type: 'l1', l1: 0.1 });
    const l2 = await run({ type: 'l2', l2: 0.1 });
    const nearZero = (w: LayerStats[]) => w.find((s) => s.layer === 'dense')!.kernel.nearZero;
    const l1Curve = l1.epochs.map((e) => nearZero(e.weights));
    const l2Curve = l2.epochs.map((e) => nearZero(e.weights));
    expect(nearZero(l1.weights)).toBeGreaterThan(0.2);
    expect(nearZero(l1.weights)).toBeGreaterThan(5 * nearZero(l2.weights));
    // The L1 curve climbs as the weights reach zero.
    expect(l1Curve[l1Curve.length - 1]!).toBeGreaterThan(l1Curve[0]!);
    // Both shrink the kernel; the unregularized output layer keeps its scale.
    const l1Norm = (w: LayerStats[]) => w.find((s) => s.layer === 'dense')!.kernel.l1;
    expect(l1Norm(l1.weights)).toBeLessThan(l1Norm(l1.epochs[0]!.weights));
    expect(l2Curve.every((v) => v < 0.2)).toBe(true);
  });
});
