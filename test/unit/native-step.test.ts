/**
 * The onednn backend's native whole step (src/engine/native-step.ts) against the tfjs autodiff step
 * (step.ts) inside the service's own training loop: for the tutorial CNN with each kind of
 * regularizer, a few epochs of train() on each path must give the same per-epoch loss parts,
 * accuracy and final weights (float tolerance: only summation order differs; Dropout masks are the
 * same seeded ones), and the native path must really be the one that ran.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backends/index.js';
import { buildModel } from '../../src/engine/model.js';
import { nativeTrainStep } from '../../src/engine/native-step.js';
import { makeOptimizer } from '../../src/engine/optimizers.js';
import { train } from '../../src/engine/train.js';
import type { EpochReport, TrainingData } from '../../src/engine/types.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import { tutorialLayers } from '../../src/run-spec/presets.js';
import type { Layer } from '../../src/run-spec/schema.js';

let available = true;
beforeAll(async () => {
  try {
    await initBackend('onednn', () => {}, { threads: 2 });
  } catch (err) {
    if (process.env.ONEDNN_REQUIRED === '1') throw err;
    available = false;
    console.warn(`[native-step] skipped: ${err instanceof Error ? err.message : String(err)}`);
  }
});

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  });
}

const N = 60;
const CLASSES = 47;
const data: TrainingData = {
  train: { images: seeded(N * 784, 5), labels: Int32Array.from({ length: N }, (_, i) => (i * 7) % CLASSES), count: N },
  test: { images: seeded(20 * 784, 9), labels: Int32Array.from({ length: 20 }, (_, i) => i % CLASSES), count: 20 },
  numClasses: CLASSES,
};

function specOf(layers: Layer[]) {
  return normalizeSpec({ model: { layers }, training: { epochs: 2, batchSize: 16, validationSplit: 0.2, seed: 41 } }, { numClasses: CLASSES, seed: 41 }).spec;
}

const l1 = { type: 'l1' as const, l1: 0.01 };
const l2 = { type: 'l2' as const, l2: 0.01 };
const en = { type: 'l1_l2' as const, l1: 0.01, l2: 0.01 };
const CASES: Array<[string, Layer[]]> = [
  ['baseline', tutorialLayers()],
  ['l1 kernel + bias', tutorialLayers({ kernelRegularizer: l1, biasRegularizer: l1 })],
  ['l2 activity', tutorialLayers({ activityRegularizer: l2 })],
  ['elastic net activity (the softmax output too)', tutorialLayers({ activityRegularizer: en })],
];

async function run(layers: Layer[], native: boolean) {
  const before = process.env.ONEDNN_DISABLE;
  if (!native) process.env.ONEDNN_DISABLE = 'SequentialStep';
  try {
    const epochs: EpochReport[] = [];
    const result = await train(specOf(layers), data, { onEvent: (e) => (e.type === 'epoch' ? epochs.push(e) : undefined), checkpoints: true });
    if (result.status !== 'completed') throw new Error(result.status);
    return { epochs, result };
  } finally {
    if (before === undefined) delete process.env.ONEDNN_DISABLE;
    else process.env.ONEDNN_DISABLE = before;
  }
}

function close(a: number, b: number, rel: number): boolean {
  return Math.abs(a - b) <= rel * Math.max(1e-6, Math.abs(b));
}

describe('native training step (onednn) vs the tfjs step in train()', () => {
  it('is the step train() uses on onednn, and declines what it cannot run', () => {
    if (!available) return;
    const built = buildModel(specOf(tutorialLayers()));
    const opt = makeOptimizer(specOf(tutorialLayers()));
    expect(nativeTrainStep(built, opt, specOf(tutorialLayers()))).not.toBeNull();
    built.dispose();
    const tanh: Layer[] = [
      { type: 'Conv2D', filters: 4, kernelSize: [3, 3], activation: 'tanh' },
      { type: 'Flatten' },
      { type: 'Dense', units: CLASSES, activation: 'softmax' },
    ];
    const other = buildModel(specOf(tanh));
    let reason = '';
    expect(nativeTrainStep(other, opt, specOf(tanh), (r) => (reason = r))).toBeNull();
    expect(reason).toMatch(/tanh/);
    other.dispose();
    opt.dispose();
  });

  for (const [name, layers] of CASES) {
    it(name, async () => {
      if (!available) return;
      const tensors0 = tf.memory().numTensors;
      const tfjs = await run(layers, false);
      const native = await run(layers, true);
      expect(tf.memory().numTensors).toBe(tensors0);
      expect(native.epochs.length).toBe(tfjs.epochs.length);
      native.epochs.forEach((e, i) => {
        const t = tfjs.epochs[i]!;
        for (const k of ['loss', 'dataLoss', 'kernelPenalty', 'biasPenalty', 'activityPenalty'] as const) {
          expect(close(e.train[k], t.train[k], 1e-4), `epoch ${i + 1} train ${k}: ${e.train[k]} vs ${t.train[k]}`).toBe(true);
          expect(close(e.val![k], t.val![k], 1e-4), `epoch ${i + 1} val ${k}: ${e.val![k]} vs ${t.val![k]}`).toBe(true);
        }
        // Counts of correct samples: equal, or one apart where a near-tie of logits rounds the other way.
        expect(Math.abs(e.train.accuracy - t.train.accuracy) * 48, `epoch ${i + 1} train accuracy`).toBeLessThanOrEqual(1 + 1e-9);
      });
      const a = native.result.status === 'completed' ? native.result.artifact.weightData : new Uint8Array();
      const b = tfjs.result.status === 'completed' ? tfjs.result.artifact.weightData : new Uint8Array();
      const wa = new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4);
      const wb = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      expect(wa.length).toBe(wb.length);
      let worst = 0;
      for (let i = 0; i < wa.length; i++) worst = Math.max(worst, Math.abs(wa[i]! - wb[i]!) / (1e-3 + Math.abs(wb[i]!)));
      expect(worst, 'final weights, worst |a−b| / (1e-3 + |b|)').toBeLessThan(1e-2);
    });
  }
});
