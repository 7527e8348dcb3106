/**
 * Bit-for-bit reruns, Dropout included, on every backend available here:
 *  - the same spec with the same seed gives identical epoch metrics, test metrics and weights;
 *  - another seed gives other masks (so the first check is not vacuous);
 *  - a run resumed from its epoch-2 checkpoint ends exactly like the uninterrupted one.
 * Dropout masks are a function of (seed, epoch, step, layer) (src/engine/dropout.ts). onednn is
 * required where ONEDNN_REQUIRED=1 (CI), otherwise tested when its addon loads.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backends/index.js';
import { dropoutKey, dropoutMultipliers, seededDropout } from '../../src/engine/dropout.js';
import { train } from '../../src/engine/train.js';
import type { TrainingCheckpoint, TrainingResult } from '../../src/engine/types.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import { bandData } from '../support/band-data.js';
import { onednnAvailable } from '../support/onednn.js';

const C = 3;

const d = bandData({ classes: C, train: 160, test: 40, seed: 41, noise: 0.5, signal: 0.4, stride: 5 });

function spec(seed: number) {
  return normalizeSpec(
    {
      model: {
        layers: [
          { type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu' },
          { type: 'MaxPooling2D', poolSize: 2 },
          { type: 'Dropout', rate: 0.25 },
          { type: 'Flatten' },
          { type: 'Dense', units: 16, activation: 'relu', activityRegularizer: { type: 'l1', l1: 0.001 } },
          { type: 'Dropout', rate: 0.5 },
          { type: 'Dense', units: C, activation: 'softmax' },
        ],
      },
      training: { epochs: 4, batchSize: 32, validationSplit: 0.2, seed, shuffle: true, optimizer: { type: 'adam', learningRate: 0.01 } },
    },
    { numClasses: C, seed },
  ).spec;
}

interface Run {
  result: TrainingResult & { status: 'completed' };
  checkpoints: TrainingCheckpoint[];
}

async function run(seed: number, resume?: TrainingCheckpoint): Promise<Run> {
  const checkpoints: TrainingCheckpoint[] = [];
  const result = await train(spec(seed), d, {
    checkpoints: true,
    ...(resume ? { resume } : {}),
    onEvent: (e) => {
      if (e.type === 'epoch' && e.checkpoint) checkpoints.push(e.checkpoint);
    },
  });
  if (result.status !== 'completed') throw new Error('not completed');
  return { result, checkpoints };
}

const reports = (r: Run) => r.result.epochs.map(({ durationMs: _d, samplesPerSec: _s, ...rest }) => rest);

const backends = ['cpu', 'wasm', ...((await onednnAvailable()) ? ['onednn' as const] : [])] as const;

describe('seeded dropout masks', () => {
  it('are a pure function of the key, keep about 1 − rate of the elements and differ between keys', () => {
    const k = dropoutKey(7, 1, 0, 2);
    const a = dropoutMultipliers(100_000, 0.25, k);
    const b = dropoutMultipliers(100_000, 0.25, k);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    const kept = a.reduce((n, v) => n + (v > 0 ? 1 : 0), 0) / a.length;
    expect(kept).toBeGreaterThan(0.74);
    expect(kept).toBeLessThan(0.76);
    expect(a.find((v) => v > 0)).toBe(Math.fround(1 / 0.75));
    for (const other of [dropoutKey(7, 1, 1, 2), dropoutKey(7, 2, 0, 2), dropoutKey(7, 1, 0, 5), dropoutKey(8, 1, 0, 2)]) {
      const c = dropoutMultipliers(100_000, 0.25, other);
      expect(Buffer.from(c.buffer).equals(Buffer.from(a.buffer))).toBe(false);
    }
  });
});

for (const backend of backends) {
  describe(`bit-for-bit reruns with Dropout (${backend})`, () => {
    beforeAll(async () => {
      const info = await initBackend(backend);
      expect(info.name).toBe(backend);
    });

    it('gives the backend the same masks as the reference definition', () => {
      const x = tf.ones([3, 5, 5, 4]);
      const key = dropoutKey(3, 2, 1, 0);
      const y = seededDropout(x, 0.3, key);
      expect(Array.from(y.dataSync())).toEqual(Array.from(dropoutMultipliers(x.size, 0.3, key)));
      tf.dispose([x, y]);
    });

    it('the same seed gives identical metrics and weights; another seed does not; a resume after epoch 2 ends identically', async () => {
      const before = tf.memory().numTensors;
      const a = await run(5);
      const b = await run(5);
      expect(reports(b)).toEqual(reports(a));
      expect(b.result.test).toEqual(a.result.test);
      expect(b.result.artifact.sha256).toBe(a.result.artifact.sha256);

      const other = await run(6);
      expect(other.result.artifact.sha256).not.toBe(a.result.artifact.sha256);

      const resumed = await run(5, a.checkpoints[1]);
      expect(reports(resumed)).toEqual(reports(a).filter((e) => e.epoch >= 3));
      expect(resumed.result.test).toEqual(a.result.test);
      expect(resumed.result.artifact.sha256).toBe(a.result.artifact.sha256);
      expect(tf.memory().numTensors).toBe(before);
    }, 180_000);
  });
}
