/**
 * Checkpoints and resume through train():
 *  - a run resumed from its epoch-k checkpoint ends exactly where the uninterrupted run ends
 *    (same later epoch reports, same test metrics, same artifact bytes) for Adam, RMSprop and SGD,
 *    on the cpu and the wasm backend — no Dropout, so the whole computation is deterministic;
 *  - the optimizer state really is restored: zeroing Adam's moments in the checkpoint changes the result;
 *  - early stopping's counters and best weights survive a resume, and a checkpoint taken at the
 *    stopping epoch resumes straight into the test evaluation;
 *  - tf.memory().numTensors is the same before and after (no leak through checkpoints or restores);
 *  - a checkpoint that does not fit the model is a TrainingSetupError.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backends/index.js';
import { TrainingSetupError } from '../../src/engine/errors.js';
import { train } from '../../src/engine/train.js';
import type { TrainingCheckpoint, TrainingEvent, TrainingResult } from '../../src/engine/types.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import { bandData } from '../support/band-data.js';
import { noDropoutLayers } from '../support/client.js';
import type { RunRequest } from '../../src/run-spec/schema.js';

const C = 3;

/** Learnable data: each class lights its own band of rows, over seeded noise. */
const d = bandData({ classes: C, train: 200, test: 48, seed: 23, noise: 0.4, signal: 0.5, stride: 7 });

type Training = NonNullable<RunRequest['training']>;

function spec(training: Training) {
  return normalizeSpec(
    {
      model: { layers: noDropoutLayers(2, 8, C) },
      training: { batchSize: 32, validationSplit: 0.2, seed: 9, shuffle: true, ...training },
    },
    { numClasses: C, seed: 9 },
  ).spec;
}

interface Run {
  result: TrainingResult & { status: 'completed' };
  events: TrainingEvent[];
  checkpoints: TrainingCheckpoint[];
}

async function run(training: Training, resume?: TrainingCheckpoint): Promise<Run> {
  const events: TrainingEvent[] = [];
  const checkpoints: TrainingCheckpoint[] = [];
  const result = await train(spec(training), d, {
    checkpoints: true,
    ...(resume ? { resume } : {}),
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'epoch' && e.checkpoint) checkpoints.push(e.checkpoint);
    },
  });
  if (result.status !== 'completed') throw new Error('not completed');
  return { result, events, checkpoints };
}

/** Epoch reports without their timings (the only fields that may differ between two runs). */
function reports(r: Run) {
  return r.result.epochs.map(({ durationMs: _d, samplesPerSec: _s, ...rest }) => rest);
}

function expectSameEnd(resumed: Run, full: Run, fromEpoch: number) {
  expect(resumed.result.epochs.map((e) => e.epoch)).toEqual(full.result.epochs.filter((e) => e.epoch >= fromEpoch).map((e) => e.epoch));
  expect(reports(resumed)).toEqual(reports(full).filter((e) => e.epoch >= fromEpoch));
  expect(resumed.result.test).toEqual(full.result.test);
  expect(resumed.result.artifact.sha256).toBe(full.result.artifact.sha256);
  expect(resumed.result.stoppedEarly).toEqual(full.result.stoppedEarly);
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`resume from a checkpoint (${backend})`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    for (const optimizer of ['adam', 'rmsprop', 'sgd'] as const) {
      it(`${optimizer}: resuming after epoch 2 of 4 ends exactly like the uninterrupted run, without leaking tensors`, async () => {
        const training: Training = { epochs: 4, optimizer: { type: optimizer, learningRate: optimizer === 'sgd' ? 0.05 : 0.005 } };
        const before = tf.memory().numTensors;
        const full = await run(training);
        expect(full.checkpoints.map((c) => c.epoch)).toEqual([1, 2, 3, 4]);
        const cp = full.checkpoints[1]!;
        const batches = Math.ceil(160 / 32);
        expect(cp.specs.iterations).toBe(2 * batches);
        expect(cp.specs.shuffle).toEqual({ seed: 9, nextEpoch: 3 });
        expect(cp.specs.optimizerWeights[0]).toEqual({ name: 'iter', shape: [], dtype: 'int32' });
        // Adam and RMSprop: two slots per trainable variable (4 weighted layers' kernels and biases = 6).
        expect(cp.specs.optimizerWeights).toHaveLength(optimizer === 'sgd' ? 1 : 1 + 2 * 6);

        const resumed = await run(training, cp);
        expect(resumed.events[0]!.type).toBe('started');
        expectSameEnd(resumed, full, 3);
        // The resumed run's own checkpoints continue the count.
        expect(resumed.checkpoints.map((c) => c.epoch)).toEqual([3, 4]);
        expect(resumed.checkpoints[1]!.specs.iterations).toBe(4 * batches);
        expect(Buffer.from(resumed.checkpoints[1]!.optimizer).equals(Buffer.from(full.checkpoints[3]!.optimizer))).toBe(true);
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  });
}

describe('resume details (cpu)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it("uses the stored optimizer state: zeroing Adam's moments in the checkpoint changes the outcome", async () => {
    const training: Training = { epochs: 3, optimizer: { type: 'adam', learningRate: 0.005 } };
    const full = await run(training);
    const cp = full.checkpoints[0]!;
    const zeroed: TrainingCheckpoint = { ...cp, optimizer: new Uint8Array(cp.optimizer.byteLength) };
    new DataView(zeroed.optimizer.buffer).setInt32(0, cp.specs.iterations, true); // keep 'iter'
    const tampered = await run(training, zeroed);
    expect(tampered.result.artifact.sha256).not.toBe(full.result.artifact.sha256);
    const resumed = await run(training, cp);
    expectSameEnd(resumed, full, 2);
  });

  it('early stopping: counters and best weights survive a resume; a checkpoint of the stopping epoch goes straight to the test', async () => {
    // mode max on a falling val_loss: epoch 1 is the best, patience 2 stops at epoch 3 and restores epoch 1.
    const training: Training = {
      epochs: 10,
      optimizer: { type: 'adam', learningRate: 0.005 },
      earlyStopping: { monitor: 'val_loss', mode: 'max', patience: 2, restoreBestWeights: true },
    };
    const before = tf.memory().numTensors;
    const full = await run(training);
    expect(full.result.stoppedEarly).toMatchObject({ epoch: 3, bestEpoch: 1 });
    expect(full.checkpoints.map((c) => c.epoch)).toEqual([1, 2, 3]);
    expect(full.checkpoints[1]!.specs.bestWeights).not.toBeNull();
    expect(full.checkpoints[1]!.specs.earlyStopping).toMatchObject({ wait: 1, bestEpoch: 1, hasSnapshot: true });

    const fromEpoch2 = await run(training, full.checkpoints[1]!);
    expectSameEnd(fromEpoch2, full, 3);
    expect(fromEpoch2.events.map((e) => e.type).filter((t) => t !== 'batch')).toEqual(['started', 'epoch', 'early-stopped']);

    const atStop = full.checkpoints[2]!;
    expect(atStop.specs.stoppedEarly).toEqual(full.result.stoppedEarly);
    const fromStop = await run(training, atStop);
    expect(fromStop.result.epochs).toEqual([]);
    expect(fromStop.result.test).toEqual(full.result.test);
    expect(fromStop.result.artifact.sha256).toBe(full.result.artifact.sha256);
    expect(fromStop.result.stoppedEarly).toEqual(full.result.stoppedEarly);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a checkpoint that does not fit the model (TrainingSetupError, nothing leaked)', async () => {
    const full = await run({ epochs: 1, optimizer: { type: 'adam', learningRate: 0.005 } });
    const cp = full.checkpoints[0]!;
    const before = tf.memory().numTensors;
    const other = { epochs: 2, optimizer: { type: 'sgd' as const, learningRate: 0.05 } };
    await expect(run(other, cp)).rejects.toThrow(TrainingSetupError);
    await expect(run(other, cp)).rejects.toThrow(/written by a adam optimizer, the spec trains with sgd/);
    const shape = structuredClone(cp);
    shape.specs.weights[0]!.shape = [3, 3, 1, 3];
    await expect(run({ epochs: 2, optimizer: { type: 'adam', learningRate: 0.005 } }, shape)).rejects.toThrow(/shape \[3, 3, 1, 3\]/);
    const short = { ...cp, weights: cp.weights.slice(0, 100) };
    await expect(run({ epochs: 2, optimizer: { type: 'adam', learningRate: 0.005 } }, short)).rejects.toThrow(/too short/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
