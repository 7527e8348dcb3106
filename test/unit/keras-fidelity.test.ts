/**
 * tf.keras 2 fidelity of a training step, part by part (the l1-activity investigation,
 * bench/results/l1-activity-investigation.md):
 *  - the data loss is the cross-entropy of the softmax layer computed from its logits: no clipping of
 *    probabilities, so a confidently wrong sample's loss is not capped at −log(1e-7) and its
 *    gradient is softmax(z) − y, not 0;
 *  - Adam puts ε where tf.keras does (outside the bias correction of v);
 *  - relu'(0) = 0, |x|'(0) = 0 and MaxPool's gradient goes to the first maximum, on every backend here.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backends/index.js';
import { buildModel } from '../../src/engine/model.js';
import { KerasAdam } from '../../src/engine/optimizers.js';
import { penalty } from '../../src/engine/regularizers.js';
import { forward } from '../../src/engine/step.js';
import { train } from '../../src/engine/train.js';
import type { TrainingData } from '../../src/engine/types.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import { onednnAvailable } from '../support/onednn.js';

const C = 3;
const D = 784;
const B = 6;

function images(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n * D }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  });
}

const data: TrainingData = {
  train: { images: images(B, 5), labels: Int32Array.from([0, 1, 2, 0, 1, 2]), count: B },
  test: { images: images(B, 17), labels: Int32Array.from([2, 2, 1, 0, 0, 1]), count: B },
  numClasses: C,
};

const softmaxNet = (lr: number, seed = 4) =>
  normalizeSpec(
    {
      model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units: C, activation: 'softmax' }] },
      training: { epochs: 1, batchSize: B, validationSplit: 0, shuffle: false, seed, optimizer: { type: 'sgd', learningRate: lr } },
    },
    { numClasses: C, seed },
  ).spec;

/** Keras' categorical cross-entropy of a softmax output, in float64: mean(logsumexp(z) − z_y). */
function kerasCE(k: Float32Array, b: Float32Array, x: Float32Array, labels: Int32Array): { loss: number; minPTrue: number } {
  let loss = 0;
  let minPTrue = 1;
  for (let n = 0; n < labels.length; n++) {
    const z = Array.from({ length: C }, (_, c) => {
      let s = b[c]!;
      for (let i = 0; i < D; i++) s += x[n * D + i]! * k[i * C + c]!;
      return s;
    });
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    loss += lse - z[labels[n]!]!;
    minPTrue = Math.min(minPTrue, Math.exp(z[labels[n]!]! - lse));
  }
  return { loss: loss / labels.length, minPTrue };
}

describe('cross-entropy from logits (cpu)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('reports the loss of confidently wrong samples uncapped, as Keras does', async () => {
    // One SGD step with a huge learning rate leaves weights whose test logits are extreme.
    const result = await train(softmaxNet(400), data);
    if (result.status !== 'completed') throw new Error('not completed');
    const w = new Float32Array(result.artifact.weightData.buffer.slice(result.artifact.weightData.byteOffset), 0, D * C + C);
    const expected = kerasCE(w.subarray(0, D * C), w.subarray(D * C), data.test.images, data.test.labels);
    expect(expected.minPTrue).toBeLessThan(1e-12); // some sample is far past tfjs' 1e-7 clip
    expect(expected.loss).toBeGreaterThan(-Math.log(1e-7)); // so a clipped loss could not reach it
    expect(result.test.dataLoss).toBeCloseTo(expected.loss, 1);
    expect(Math.abs(result.test.dataLoss - expected.loss) / expected.loss).toBeLessThan(1e-4);
  });

  it('gives a confidently wrong sample the gradient softmax(z) − y on the logits, not 0', () => {
    const spec = softmaxNet(0.1);
    const built = buildModel(spec);
    try {
      // Logits z = x·K + b with b = (40, 0, −40) and K = 0: every sample is sure it is class 0.
      built.head.kernel.assign(tf.zeros(built.head.kernel.shape));
      built.head.bias!.assign(tf.tensor1d([40, 0, -40]));
      const xs = tf.tensor4d(data.train.images, [B, 28, 28, 1]);
      const ys = tf.oneHot(tf.tensor1d(data.train.labels, 'int32'), C).toFloat() as tf.Tensor2D;
      const { grads } = tf.variableGrads(() => forward(built, xs, ys, true).total, [built.head.bias!]);
      const g = Array.from(grads[built.head.bias!.name]!.dataSync());
      // p ≈ (1, e^-40, e^-80); labels 0,1,2,0,1,2 → mean of p − y = (1 − 1/3, −1/3, −1/3)
      expect(g[0]).toBeCloseTo(2 / 3, 5);
      expect(g[1]).toBeCloseTo(-1 / 3, 5);
      expect(g[2]).toBeCloseTo(-1 / 3, 5);
      tf.dispose([xs, ys, ...Object.values(grads)]);
    } finally {
      built.dispose();
    }
  });
});

describe("Adam with tf.keras' ε", () => {
  /** tf.keras 2: w −= lr·sqrt(1−β2^t)/(1−β1^t) · m/(sqrt(v)+ε), in float64. */
  function kerasAdam(w0: number[], grads: number[][], lr: number): number[] {
    const [b1, b2, eps] = [0.9, 0.999, 1e-7];
    const w = [...w0];
    const m = w.map(() => 0);
    const v = w.map(() => 0);
    grads.forEach((g, s) => {
      const t = s + 1;
      const alpha = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
      for (let i = 0; i < w.length; i++) {
        m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
        v[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
        w[i]! -= (alpha * m[i]!) / (Math.sqrt(v[i]!) + eps);
      }
    });
    return w;
  }

  // Gradients from tiny (where ε dominates: dying units) to ordinary.
  const w0 = [0.5, -0.25, 0.1, 0, 1];
  const grads = [
    [1e-9, -3e-9, 1e-8, 2e-10, 0.3],
    [2e-9, -1e-9, -1e-8, 5e-10, -0.2],
    [1e-9, 1e-9, 3e-8, -1e-10, 0.1],
  ];

  async function steps(opt: tf.Optimizer): Promise<number[]> {
    const w = tf.variable(tf.tensor1d(w0), true, 'adam_probe');
    for (const g of grads) {
      const gt = tf.tensor1d(g);
      opt.applyGradients({ adam_probe: gt });
      gt.dispose();
    }
    const out = Array.from(await w.data());
    w.dispose();
    opt.dispose();
    return out;
  }

  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('matches the Keras update to float precision, including weights with tiny gradients', async () => {
    const lr = 0.001;
    const expected = kerasAdam(w0, grads, lr);
    const got = await steps(new KerasAdam(lr));
    got.forEach((v, i) => expect(Math.abs(v - expected[i]!), `w[${i}]`).toBeLessThan(1e-7));
    // tfjs' own Adam is off by far more for the tiny-gradient weights: the check discriminates.
    const tfjs = await steps(tf.train.adam(lr, 0.9, 0.999, 1e-7));
    expect(Math.abs(tfjs[0]! - expected[0]!)).toBeGreaterThan(1e-5);
  });
});

for (const backend of ['cpu', 'wasm', ...((await onednnAvailable()) ? ['onednn'] : [])] as const) {
  describe(`gradients at exactly 0 and at ties (${backend})`, () => {
    beforeAll(async () => {
      await initBackend(backend as 'cpu');
    });

    it("relu'(0) = 0 and the L1 penalty's |x|'(0) = 0, as in TensorFlow", () => {
      const x = tf.tensor1d([-1, 0, 0, 2]);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.relu(t)))(x);
      expect(Array.from(g.dataSync())).toEqual([0, 0, 0, 1]);
      const gl1 = tf.grad((t: tf.Tensor) => penalty({ type: 'l1', l1: 1, l2: 0 }, t))(x);
      expect(Array.from(gl1.dataSync())).toEqual([-1, 0, 0, 1]);
      tf.dispose([x, g, gl1]);
    });

    it("MaxPool's gradient goes to the window's first maximum (ties and all-zero windows)", () => {
      // One 2×2 window of zeros (relu output), one with a tie at 3.
      const x = tf.tensor4d([0, 0, 3, 1, 0, 0, 2, 3], [1, 2, 4, 1]);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(x);
      expect(Array.from(g.dataSync())).toEqual([1, 0, 1, 0, 0, 0, 0, 0]);
      tf.dispose([x, g]);
    });
  });
}
