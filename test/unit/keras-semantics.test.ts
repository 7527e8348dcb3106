/**
 * Keras semantics, checked against arithmetic done by hand (float64 JS, no tfjs):
 *  - loss = mean CE + Σ kernel/bias penalties + Σ activity penalties / batch size, with l1, l2, l1_l2;
 *  - one SGD step moves every weight by -lr · ∂loss/∂w (the hand loss differentiated numerically);
 *  - evaluation (dropout off) includes the penalties, as Keras' val_loss / evaluate() do;
 *  - no tensor leaks across runs.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import { buildModel } from '../../src/engine/model.js';
import { train } from '../../src/engine/train.js';
import type { LossParts, TrainingData, TrainingEvent } from '../../src/engine/types.js';

const B = 4;
const D = 784;
const H = 2;
const C = 3;
const LR = 0.5;

const R = {
  k1: { type: 'l1' as const, l1: 0.01 },
  b1: { type: 'l2' as const, l2: 0.05 },
  a1: { type: 'l1_l2' as const, l1: 0.01, l2: 0.02 },
  k2: { type: 'l1_l2' as const, l1: 0.003, l2: 0.004 },
  b2: { type: 'l1' as const, l1: 0.02 },
  a2: { type: 'l2' as const, l2: 0.1 },
};

const { spec } = normalizeSpec(
  {
    model: {
      layers: [
        { type: 'Flatten' },
        { type: 'Dense', units: H, activation: 'linear', kernelRegularizer: R.k1, biasRegularizer: R.b1, activityRegularizer: R.a1 },
        { type: 'Dense', units: C, activation: 'softmax', kernelRegularizer: R.k2, biasRegularizer: R.b2, activityRegularizer: R.a2 },
      ],
    },
    training: { epochs: 1, batchSize: B, validationSplit: 0, shuffle: false, seed: 3, optimizer: { type: 'sgd', learningRate: LR } },
  },
  { numClasses: C, seed: 3 },
);

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  });
}

const data: TrainingData = {
  train: { images: seeded(B * D, 11), labels: Int32Array.from([0, 1, 2, 1]), count: B },
  test: { images: seeded(B * D, 29), labels: Int32Array.from([2, 0, 1, 0]), count: B },
  numClasses: C,
};

interface Weights {
  k1: Float64Array; // D×H row-major
  b1: Float64Array;
  k2: Float64Array; // H×C
  b2: Float64Array;
}

const reg = (r: { l1?: number; l2?: number }, xs: ArrayLike<number>) => {
  let a = 0;
  let q = 0;
  for (let i = 0; i < xs.length; i++) {
    a += Math.abs(xs[i]!);
    q += xs[i]! * xs[i]!;
  }
  return (r.l1 ?? 0) * a + (r.l2 ?? 0) * q;
};

/** The Keras loss, by hand. */
function handLoss(w: Weights, images: Float32Array, labels: Int32Array): LossParts {
  let ce = 0;
  let act = 0;
  let correct = 0;
  for (let n = 0; n < B; n++) {
    const h = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      let s = w.b1[j]!;
      for (let i = 0; i < D; i++) s += images[n * D + i]! * w.k1[i * H + j]!;
      h[j] = s;
    }
    const z = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let s = w.b2[c]!;
      for (let j = 0; j < H; j++) s += h[j]! * w.k2[j * C + c]!;
      z[c] = s;
    }
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    const p = e.map((v) => v / sum);
    ce += -Math.log(p[labels[n]!]!); // from the logits, as Keras: no clipping
    act += reg(R.a1, h) + reg(R.a2, p);
    if (p.indexOf(Math.max(...p)) === labels[n]) correct++;
  }
  const dataLoss = ce / B;
  const kernelPenalty = reg(R.k1, w.k1) + reg(R.k2, w.k2);
  const biasPenalty = reg(R.b1, w.b1) + reg(R.b2, w.b2);
  const activityPenalty = act / B; // Σ over the batch, divided by the batch size
  return { loss: dataLoss + kernelPenalty + biasPenalty + activityPenalty, dataLoss, kernelPenalty, biasPenalty, activityPenalty, accuracy: correct / B };
}

function initialWeights(): Weights {
  const built = buildModel(spec);
  const [k1, b1, k2, b2] = built.model.getWeights().map((t) => Float64Array.from(t.dataSync()));
  built.dispose();
  return { k1: k1!, b1: b1!, k2: k2!, b2: b2! };
}

function expectParts(actual: LossParts, expected: LossParts, digits = 5) {
  for (const k of Object.keys(expected) as (keyof LossParts)[]) expect(actual[k], k).toBeCloseTo(expected[k], digits);
}

describe('Keras loss semantics (hand-computed)', () => {
  let w0: Weights;
  let events: TrainingEvent[];
  let result: Awaited<ReturnType<typeof train>>;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    w0 = initialWeights();
    events = [];
    result = await train(spec, data, { onEvent: (e) => events.push(e), progressIntervalMs: 0 });
  });

  it('reports the training loss at the initial weights as CE + kernel + bias + activity/batch', () => {
    const epoch = events.find((e) => e.type === 'epoch');
    if (epoch?.type !== 'epoch') throw new Error('no epoch event');
    const expected = handLoss(w0, data.train.images, data.train.labels);
    expect(expected.activityPenalty).toBeGreaterThan(0);
    expect(expected.kernelPenalty).toBeGreaterThan(0);
    expectParts(epoch.train, expected);
  });

  it('moves every weight by -lr · gradient of that loss after one SGD step', () => {
    if (result.status !== 'completed') throw new Error('not completed');
    const { weightSpecs, weightData } = result.artifact;
    const all = new Float32Array(weightData.buffer, weightData.byteOffset, weightData.byteLength / 4);
    const byName = new Map<string, Float32Array>();
    let off = 0;
    for (const s of weightSpecs) {
      const size = s.shape.reduce((a, b) => a * b, 1);
      byName.set(s.name, all.subarray(off, off + size));
      off += size;
    }
    const w1 = {
      k1: byName.get('dense/kernel')!,
      b1: byName.get('dense/bias')!,
      k2: byName.get('dense_1/kernel')!,
      b2: byName.get('dense_1/bias')!,
    };
    // Central differences of the hand loss, on a sample of weights of every tensor.
    const eps = 1e-4;
    let checked = 0;
    for (const key of ['k1', 'b1', 'k2', 'b2'] as const) {
      const n = w0[key].length;
      const step = Math.max(1, Math.floor(n / 40));
      for (let i = 0; i < n; i += step) {
        const plus = structuredClone(w0);
        const minus = structuredClone(w0);
        plus[key][i]! += eps;
        minus[key][i]! -= eps;
        // At b = 0 (biases start there) |b| has no derivative: TensorFlow takes sign(0) = 0, which is
        // exactly what the symmetric difference of |b| around 0 gives.
        const grad = (handLoss(plus, data.train.images, data.train.labels).loss - handLoss(minus, data.train.images, data.train.labels).loss) / (2 * eps);
        expect(w1[key][i]!, `${key}[${i}]`).toBeCloseTo(w0[key][i]! - LR * grad, 4);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(50);

    // Evaluation at the new weights (dropout off) includes every penalty, as Keras' evaluate() does.
    const w1d: Weights = { k1: Float64Array.from(w1.k1), b1: Float64Array.from(w1.b1), k2: Float64Array.from(w1.k2), b2: Float64Array.from(w1.b2) };
    const expectedTest = handLoss(w1d, data.test.images, data.test.labels);
    expect(expectedTest.biasPenalty).toBeGreaterThan(0);
    expectParts(result.test, expectedTest);
  });

  it('leaves no tensor behind across consecutive runs', async () => {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await train(spec, data, {});
    expect(tf.memory().numTensors).toBe(before);
  });
});
