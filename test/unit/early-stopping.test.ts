/**
 * Early stopping with tf.keras 2.12–2.15 EarlyStopping semantics:
 *  - the pure state machine against sequences worked out by hand from Keras' rules
 *    (wait += 1 each monitored epoch; reset on an improvement that also beats the baseline;
 *    an improving epoch never stops; stop when wait >= patience and k > 0; signed min_delta);
 *  - the spec: defaults, auto mode, val_* without validation data;
 *  - through train(): a flat val_loss stops after patience + 1 epochs, and restoreBestWeights puts
 *    back exactly the best epoch's weights (compared with an independent run of that many epochs).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EarlyStopping, type EarlyStoppingConfig } from '../../src/engine/early-stopping.js';
import { train } from '../../src/engine/train.js';
import type { TrainingEvent, TrainingResult } from '../../src/engine/types.js';
import { SpecError } from '../../src/run-spec/errors.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import type { RunRequest } from '../../src/run-spec/schema.js';
import { bandData } from '../support/band-data.js';

const base: EarlyStoppingConfig = {
  monitor: 'val_loss',
  patience: 0,
  minDelta: 0,
  restoreBestWeights: false,
  mode: 'min',
  baseline: null,
  startFromEpoch: 0,
};

interface Trace {
  /** 1-based epoch that stopped, or null if the sequence ran out. */
  stoppedAt: number | null;
  waits: number[];
  snapshots: number[];
  restored: boolean;
  best: number;
  bestEpoch: number;
}

function drive(config: Partial<EarlyStoppingConfig>, values: (number | null)[]): Trace {
  const es = new EarlyStopping({ ...base, ...config });
  const waits: number[] = [];
  const snapshots: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const epoch = i + 1;
    const step = es.onEpochEnd(epoch, values[i]!);
    waits.push(es.wait);
    if (step.snapshot) snapshots.push(epoch);
    if (step.stop) {
      expect(es.stoppedEpoch).toBe(epoch);
      return { stoppedAt: epoch, waits, snapshots, restored: step.restore, best: es.best, bestEpoch: es.bestEpoch };
    }
    expect(step.restore).toBe(false);
  }
  expect(es.stoppedEpoch).toBe(0);
  return { stoppedAt: null, waits, snapshots, restored: false, best: es.best, bestEpoch: es.bestEpoch };
}

describe('EarlyStopping (Keras 2.12–2.15 rules, hand-worked sequences)', () => {
  it("min mode, patience 3 (Keras' docstring example: a rising loss runs 4 epochs)", () => {
    // e1 improves on +inf (wait 0); e2, e3, e4 do not: wait 1, 2, 3 → 3 >= 3 stops at e4.
    const t = drive({ monitor: 'loss', patience: 3 }, [1, 2, 3, 4, 5, 6]);
    expect(t).toMatchObject({ stoppedAt: 4, waits: [0, 1, 2, 3], best: 1, bestEpoch: 1 });
  });

  it('patience 0: an improving epoch never stops (2.12+); the first non-improving one does', () => {
    const t = drive({ patience: 0 }, [1.0, 0.9, 0.8, 0.85, 0.7]);
    expect(t).toMatchObject({ stoppedAt: 4, waits: [0, 0, 0, 1], best: 0.8, bestEpoch: 3 });
  });

  it('never stops after the first epoch (k > 0), even with patience 0 and a NaN value', () => {
    // NaN < x is false: no improvement. e1: wait 1 >= 0 but k = 0; e2: stops.
    const t = drive({ patience: 0 }, [NaN, NaN, 1]);
    expect(t).toMatchObject({ stoppedAt: 2, waits: [1, 2], best: Infinity, bestEpoch: 0 });
  });

  it('min mode with minDelta: an improvement needs current + minDelta < best', () => {
    // best 1.0 (e1); e2 0.95+0.1 = 1.05 ≮ 1.0 (wait 1); e3 0.89+0.1 = 0.99 < 1.0 → best 0.89, wait 0;
    // e4 0.85+0.1 = 0.95 ≮ 0.89 (wait 1); e5 0.80+0.1 = 0.90 ≮ 0.89 (wait 2 >= 2) → stop.
    const t = drive({ patience: 2, minDelta: 0.1 }, [1.0, 0.95, 0.89, 0.85, 0.8, 0.1]);
    expect(t).toMatchObject({ stoppedAt: 5, waits: [0, 1, 0, 1, 2], best: 0.89, bestEpoch: 3 });
  });

  it('max mode with minDelta: an improvement needs current - minDelta > best, strictly (exact binary fractions)', () => {
    // e1 0.5 (best); e2 0.625-0.125 = 0.5 ≯ 0.5 (wait 1); e3 0.75-0.125 = 0.625 > 0.5 → best 0.75, wait 0;
    // e4 0.75 (wait 1); e5 0.875-0.125 = 0.75 ≯ 0.75 (wait 2 >= 2) → stop.
    const t = drive({ monitor: 'val_accuracy', mode: 'max', patience: 2, minDelta: 0.125 }, [0.5, 0.625, 0.75, 0.75, 0.875, 1]);
    expect(t).toMatchObject({ stoppedAt: 5, waits: [0, 1, 0, 1, 2], best: 0.75, bestEpoch: 3 });
  });

  it('baseline not reached: improvements keep training going but do not reset the wait', () => {
    // baseline 0.5, patience 2. e1..e4 each improve on best (so never stop) but not on the baseline:
    // wait 1, 2, 3, 4. e5 does not improve: wait 5 >= 2 → stop.
    const t = drive({ patience: 2, baseline: 0.5 }, [0.9, 0.8, 0.7, 0.6, 0.65, 0.1]);
    expect(t).toMatchObject({ stoppedAt: 5, waits: [1, 2, 3, 4, 5], best: 0.6, bestEpoch: 4 });
  });

  it('baseline never reached with a flat value stops after patience epochs', () => {
    // e1 improves on +inf but not on 0.5: wait 1; e2 no improvement: wait 2 >= 2 → stop.
    const t = drive({ patience: 2, baseline: 0.5 }, [0.9, 0.9, 0.9]);
    expect(t).toMatchObject({ stoppedAt: 2, waits: [1, 2], best: 0.9, bestEpoch: 1 });
  });

  it('baseline beaten: the wait resets as without a baseline', () => {
    // e1 wait 1 (0.9 ≮ 0.5); e2 0.4 < 0.5: wait 0; e3 wait 1; e4 wait 2 >= 2 → stop.
    const t = drive({ patience: 2, baseline: 0.5 }, [0.9, 0.4, 0.45, 0.46, 0.1]);
    expect(t).toMatchObject({ stoppedAt: 4, waits: [1, 0, 1, 2], best: 0.4, bestEpoch: 2 });
  });

  it('startFromEpoch skips the first epochs entirely (no wait, no best, no snapshot)', () => {
    // k = 0, 1 < 2 are skipped; e3 (k = 2) improves on +inf; e4 does not: wait 1 >= 0 → stop.
    const t = drive({ patience: 0, startFromEpoch: 2, restoreBestWeights: true }, [5, 6, 1, 2, 0]);
    expect(t).toMatchObject({ stoppedAt: 4, waits: [0, 0, 0, 1], best: 1, bestEpoch: 3, snapshots: [3], restored: true });
  });

  it('a missing value (null) is skipped, as Keras skips an unavailable monitor', () => {
    const t = drive({ patience: 0 }, [null, 1, 2]);
    expect(t).toMatchObject({ stoppedAt: 3, waits: [0, 0, 1], best: 1, bestEpoch: 2 });
  });

  it('restoreBestWeights: snapshots the first monitored epoch and every improvement, restores on stop', () => {
    const t = drive({ patience: 2, restoreBestWeights: true }, [3, 2, 2.5, 1.5, 1.6, 1.7, 0]);
    expect(t).toMatchObject({ stoppedAt: 6, snapshots: [1, 2, 4], restored: true, best: 1.5, bestEpoch: 4 });
    // Without restoreBestWeights nothing is snapshotted or restored.
    const u = drive({ patience: 2 }, [3, 2, 2.5, 1.5, 1.6, 1.7, 0]);
    expect(u).toMatchObject({ stoppedAt: 6, snapshots: [], restored: false, bestEpoch: 4 });
  });

  it("restoreBestWeights with no improvement after the first epoch keeps the first epoch's weights", () => {
    const t = drive({ mode: 'max', monitor: 'val_accuracy', patience: 1, restoreBestWeights: true }, [0.5, 0.4, 0.9]);
    expect(t).toMatchObject({ stoppedAt: 2, snapshots: [1], restored: true, best: 0.5, bestEpoch: 1 });
  });

  it('a NaN first value under restoreBestWeights still snapshots that epoch (the weights restored are from bestEpoch)', () => {
    const t = drive({ patience: 1, restoreBestWeights: true }, [NaN, NaN]);
    expect(t).toMatchObject({ stoppedAt: 2, snapshots: [1], restored: true, bestEpoch: 1, best: Infinity });
  });

  it('running out of epochs is not a stop (tf.keras 2.x restores nothing then)', () => {
    const t = drive({ patience: 5, restoreBestWeights: true }, [1, 2, 3]);
    expect(t).toMatchObject({ stoppedAt: null, restored: false, bestEpoch: 1 });
  });
});

describe('earlyStopping in the spec', () => {
  const layers: RunRequest['model'] = { layers: [{ type: 'Flatten' }, { type: 'Dense', units: 3, activation: 'softmax' }] };
  const ctx = { numClasses: 3, seed: 1 };

  it('is null when absent and gets Keras defaults when present, mode resolved', () => {
    expect(normalizeSpec({ model: layers }, ctx).spec.training.earlyStopping).toBeNull();
    expect(normalizeSpec({ model: layers, training: { earlyStopping: {} } }, ctx).spec.training.earlyStopping).toEqual(base);
    const acc = normalizeSpec({ model: layers, training: { earlyStopping: { monitor: 'accuracy', baseline: 0.9, startFromEpoch: 2 } } }, ctx);
    expect(acc.spec.training.earlyStopping).toMatchObject({ monitor: 'accuracy', mode: 'max', baseline: 0.9, startFromEpoch: 2 });
    expect(normalizeSpec({ model: layers, training: { earlyStopping: { monitor: 'val_accuracy', mode: 'min' } } }, ctx).spec.training.earlyStopping?.mode).toBe(
      'min',
    );
    expect(normalizeSpec({ model: layers, training: { earlyStopping: { monitor: 'loss', mode: 'auto' } } }, ctx).spec.training.earlyStopping?.mode).toBe('min');
  });

  it('refuses a val_* monitor without validation data, at /training/earlyStopping/monitor', () => {
    for (const earlyStopping of [{}, { monitor: 'val_accuracy' as const }]) {
      let err: unknown;
      try {
        normalizeSpec({ model: layers, training: { validationSplit: 0, earlyStopping } }, ctx);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SpecError);
      expect((err as SpecError).pointer).toBe('/training/earlyStopping/monitor');
    }
    expect(
      normalizeSpec({ model: layers, training: { validationSplit: 0, earlyStopping: { monitor: 'loss' } } }, ctx).spec.training.earlyStopping?.monitor,
    ).toBe('loss');
  });
});

describe('early stopping through train()', () => {
  const C = 3;
  /** Learnable data: each class lights its own band of rows, over seeded noise. */
  const d = bandData({ classes: C, train: 240, test: 60, seed: 17, noise: 0.3, signal: 0.7, stride: 1 });

  function spec(training: NonNullable<RunRequest['training']>) {
    return normalizeSpec(
      {
        model: {
          layers: [
            { type: 'Flatten' },
            { type: 'Dense', units: 8, activation: 'relu', kernelRegularizer: { type: 'l1', l1: 0.001 } },
            { type: 'Dense', units: C, activation: 'softmax' },
          ],
        },
        training: { batchSize: 30, validationSplit: 0.25, seed: 4, optimizer: { type: 'sgd', learningRate: 0.01 }, ...training },
      },
      { numClasses: C, seed: 4 },
    ).spec;
  }

  async function run(training: NonNullable<RunRequest['training']>, mutate?: (s: ReturnType<typeof spec>) => void) {
    const s = spec(training);
    mutate?.(s);
    const events: TrainingEvent[] = [];
    const result = await train(s, d, { onEvent: (e) => events.push(e) });
    if (result.status !== 'completed') throw new Error('not completed');
    return { result, events };
  }

  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('a flat val_loss (learning rate 0) stops after patience + 1 epochs', async () => {
    const { result, events } = await run({ epochs: 20, earlyStopping: { patience: 2 } }, (s) => {
      s.training.optimizer.learningRate = 0;
    });
    expect(result.epochs).toHaveLength(3);
    const vals = result.epochs.map((e) => e.val!.loss);
    expect(new Set(vals).size).toBe(1);
    expect(result.stoppedEarly).toEqual({ epoch: 3, bestEpoch: 1, best: vals[0] });
    const types = events.map((e) => e.type).filter((t) => t !== 'batch');
    expect(types).toEqual(['started', 'epoch', 'epoch', 'epoch', 'early-stopped']);
    expect(events.at(-1)).toEqual({ type: 'early-stopped', epoch: 3, bestEpoch: 1, best: vals[0], monitor: 'val_loss', restoredBestWeights: false });
  });

  it("restoreBestWeights puts back exactly the best epoch's weights: artifact and test metrics equal a 1-epoch run", async () => {
    // mode max on a falling val_loss makes epoch 1 the best; patience 2 stops at epoch 3 and restores epoch 1.
    const before = tf.memory().numTensors;
    const a = await run({ epochs: 10, earlyStopping: { monitor: 'val_loss', mode: 'max', patience: 2, restoreBestWeights: true } });
    const b = await run({ epochs: 1 });
    expect(tf.memory().numTensors).toBe(before);
    const vals = a.result.epochs.map((e) => e.val!.loss);
    expect(vals[1]!).toBeLessThan(vals[0]!); // precondition: the run really moved away from epoch 1
    expect(vals[2]!).toBeLessThan(vals[0]!);
    expect(a.result.stoppedEarly).toEqual({ epoch: 3, bestEpoch: 1, best: vals[0] });
    expect(a.events.at(-1)).toMatchObject({ type: 'early-stopped', restoredBestWeights: true });
    // Independent reference: the same seed trained for exactly 1 epoch (deterministic on cpu, no dropout).
    expect(b.result.epochs[0]!.val).toEqual(a.result.epochs[0]!.val);
    expect(a.result.artifact.sha256).toBe(b.result.artifact.sha256);
    expect(a.result.test).toEqual(b.result.test);
    // The final stats describe the restored model: epoch 1's, not epoch 3's.
    expect(a.result.weights).toEqual(a.result.epochs[0]!.weights);
    expect(a.result.weights).not.toEqual(a.result.epochs[2]!.weights);
  });

  it('without a stop nothing is restored (tf.keras 2.x): the artifact is the last epoch', async () => {
    const a = await run({ epochs: 3, earlyStopping: { monitor: 'val_loss', mode: 'max', patience: 10, restoreBestWeights: true } });
    const b = await run({ epochs: 3 });
    expect(a.result.stoppedEarly).toBeNull();
    expect(a.events.some((e) => e.type === 'early-stopped')).toBe(false);
    expect(a.result.artifact.sha256).toBe(b.result.artifact.sha256);
    expect(a.result.weights).toEqual(a.result.epochs[2]!.weights);
  });

  it('a result without early stopping says so', async () => {
    const { result } = await run({ epochs: 1 });
    expect(result.stoppedEarly).toBeNull();
    const r: TrainingResult = result;
    expect(r.status).toBe('completed');
  });
});
