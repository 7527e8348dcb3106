/**
 * The tutorial CNN (Conv32-Pool-Dropout-Conv64-Pool-Dropout-Dense256-Dense47,
 * categorical crossentropy, Adam), seeded initializers and dropout, trained
 * for a few steps on cpu and on onednn: the loss curves and final weights
 * must agree within tolerance, and no tensor may leak.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { installFusedAdam, uninstallFusedAdam } from '../src/adam.js';
import { uninstallFastDropout } from '../src/dropout.js';
import { uninstallFusedConv } from '../src/fused.js';
import { onednnKernelStats } from '../src/index.js';
import { randomArray, rng, setup, worstRatio, nativeAvailable } from './helpers.js';

beforeAll(async () => {
  if (nativeAvailable) await setup(2);
});

function tutorialCnn(): tf.Sequential {
  let seed = 1;
  const init = () => tf.initializers.glorotUniform({ seed: seed++ });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.dropout({ rate: 0.25, seed: 11 }),
      tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.dropout({ rate: 0.25, seed: 12 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init() }),
      tf.layers.dense({ units: 47, activation: 'softmax', kernelInitializer: init() }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

const BATCH = 12;
const STEPS = 5;

function batches(): Array<{ x: Float32Array; y: Float32Array }> {
  const r = rng(2024);
  return Array.from({ length: STEPS }, (_, s) => {
    const y = new Float32Array(BATCH * 47);
    for (let i = 0; i < BATCH; i++) y[i * 47 + Math.floor(r() * 47)] = 1;
    return { x: randomArray(BATCH * 28 * 28, 3000 + s, 0, 1), y };
  });
}

interface Run {
  losses: number[];
  weights: Float32Array[];
  leaked: number;
}

async function train(backend: string): Promise<Run> {
  await tf.setBackend(backend);
  const model = tutorialCnn();
  const data = batches();
  let before = 0;
  const losses: number[] = [];
  for (const [step, b] of data.entries()) {
    // The first step creates Adam's moment variables (2 per weight).
    if (step === 1) before = tf.memory().numTensors;
    const xs = tf.tensor4d(b.x, [BATCH, 28, 28, 1]);
    const ys = tf.tensor2d(b.y, [BATCH, 47]);
    const out = (await model.trainOnBatch(xs, ys)) as number[];
    losses.push(out[0]!);
    tf.dispose([xs, ys]);
  }
  const leaked = tf.memory().numTensors - before;
  const weights = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
  model.dispose();
  return { losses, weights, leaked };
}

function expectSameRun(actual: Run, expected: Run): void {
  console.log('cpu losses   ', expected.losses.map((l) => l.toFixed(6)).join(' '));
  console.log('onednn losses', actual.losses.map((l) => l.toFixed(6)).join(' '));
  for (let i = 0; i < STEPS; i++) {
    expect(Math.abs(actual.losses[i]! - expected.losses[i]!)).toBeLessThanOrEqual(1e-4 * Math.abs(expected.losses[i]!) + 1e-5);
  }
  expect(actual.weights.length).toBe(expected.weights.length);
  for (let i = 0; i < expected.weights.length; i++) {
    expect(worstRatio(actual.weights[i]!, expected.weights[i]!, 1e-4, 1e-3), `weight ${i}`).toBeLessThanOrEqual(1);
  }
  expect(expected.leaked).toBe(0);
  expect(actual.leaked).toBe(0);
}

function expectNative(kernels: string[]): void {
  const stats = onednnKernelStats();
  for (const k of kernels) expect(stats[k]?.native ?? 0, `${k} native`).toBeGreaterThan(0);
  for (const [k, c] of Object.entries(stats)) expect(c.fallback, `${k} fallbacks`).toBe(0);
}

describe.skipIf(!nativeAvailable)('inference with the tutorial CNN', () => {
  it('model.predict agrees with cpu', async () => {
    const x = randomArray(16 * 28 * 28, 77, 0, 1);
    const outs: Float32Array[] = [];
    for (const backend of ['cpu', 'onednn']) {
      await tf.setBackend(backend);
      const model = tutorialCnn();
      outs.push(tf.tidy(() => Float32Array.from((model.predict(tf.tensor4d(x, [16, 28, 28, 1])) as tf.Tensor).dataSync())));
      model.dispose();
    }
    expect(worstRatio(outs[1]!, outs[0]!, 1e-5, 1e-4)).toBeLessThanOrEqual(1);
  });
});

describe.skipIf(!nativeAvailable)('training the tutorial CNN', () => {
  let cpu: Run;
  beforeAll(async () => {
    cpu = await train('cpu'); // tfjs' JS convolutions: slow, above all on a busy machine
  }, 600_000);

  it('gives the same loss curve and weights on onednn (fused conv path, native dropout) as on cpu', async () => {
    onednnKernelStats(true);
    const onednn = await train('onednn');
    expectNative(['_OnednnConv2D', '_OnednnReluGrad', '_OnednnAdam', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPool', 'MaxPoolGrad', 'BatchMatMul']);
    expectSameRun(onednn, cpu);
  });

  it("fused Adam is bit-identical to tfjs' AdamOptimizer on the same backend", async () => {
    const fused = await train('onednn');
    uninstallFusedAdam();
    try {
      onednnKernelStats(true);
      const plain = await train('onednn');
      expect(onednnKernelStats()._OnednnAdam?.native ?? 0).toBe(0);
      expect(plain.losses).toEqual(fused.losses);
      for (let i = 0; i < plain.weights.length; i++) {
        expect(Buffer.from(fused.weights[i]!.buffer).equals(Buffer.from(plain.weights[i]!.buffer)), `weight ${i}`).toBe(true);
      }
    } finally {
      installFusedAdam('onednn');
    }
  });

  it("gives the same loss curve with tfjs' own fused.conv2d, dropout and Adam (kernel path only)", async () => {
    uninstallFusedConv();
    uninstallFastDropout();
    uninstallFusedAdam();
    onednnKernelStats(true);
    const onednn = await train('onednn');
    expectNative(['Conv2D', 'Relu', 'Step', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPool', 'MaxPoolGrad', 'BatchMatMul']);
    expectSameRun(onednn, cpu);
  });
});
