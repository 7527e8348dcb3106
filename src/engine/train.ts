/**
 * The training loop: Keras' fit() semantics with Regula's own loss accounting.
 *
 *  - validation: the last `validationSplit` of the training arrays, before shuffling (Keras);
 *  - each epoch shuffles the rest with a seeded permutation;
 *  - each step minimises  mean CE (from the softmax's logits) + Σ weight penalties + Σ activity penalties / batch size,
 *    with tf.keras' Adam (optimizers.ts);
 *  - train/val/test figures include the penalties (Keras' loss/val_loss) and report each part;
 *  - after every epoch, per-layer weight/activation statistics on a fixed probe batch (weight-stats.ts);
 *  - optional early stopping with tf.keras 2.12–2.15 EarlyStopping semantics (early-stopping.ts),
 *    restoring the best epoch's weights before the test evaluation and the export when asked.
 *
 * The loop checks `shouldStop()` before every batch, so a cancel lands within one batch.
 *
 * Checkpoints (`checkpoints: true`): after every epoch — after early stopping has decided on it —
 * the 'epoch' event carries the whole training state: model weights, optimizer state (tfjs
 * getWeights(): iterations and slot variables), early stopping's counters and best weights, and
 * the shuffle position. `resume` continues from such a checkpoint at the next epoch. The shuffle is
 * seeded per epoch from (seed, epoch) and Dropout masks from (seed, epoch, step, layer)
 * (dropout.ts), so a resumed run sees exactly the batches and masks an uninterrupted one would and
 * ends bit for bit like it on the same backend. Taking and restoring that state is checkpoint.ts';
 * the trained model's export, export.ts'.
 *
 * The step itself (forward pass, Keras' loss from logits, gradients, optimizer) is in step.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import { EarlyStopping, type EarlyStoppingConfig } from './early-stopping.js';
import { restoreCheckpoint, takeCheckpoint, type CheckpointState } from './checkpoint.js';
import { TrainingSetupError } from './errors.js';
import { exportModel } from './export.js';
import { buildModel, type BuiltModel } from './model.js';
import { mulberry32, shuffleInPlace } from './data/random.js';
import { makeOptimizer } from './optimizers.js';
import { forward, makeTrainStep, read, type StepValues } from './step.js';
import type { DataSplit, EpochReport, LossParts, StoppedEarly, TrainingCheckpoint, TrainingData, TrainingEvent, TrainingResult } from './types.js';
import { layerStats, PROBE_SIZE } from './weight-stats.js';

export interface TrainOptions {
  onEvent?: (event: TrainingEvent) => void;
  shouldStop?: () => boolean;
  /** Minimum interval between `batch` events (the last batch of an epoch always reports). */
  progressIntervalMs?: number;
  /** Attach a checkpoint of the training state to every 'epoch' event. */
  checkpoints?: boolean;
  /** Continue after the checkpoint's epoch instead of starting at epoch 1. */
  resume?: TrainingCheckpoint;
}

const PIXELS = 28 * 28;

/** The seed of an epoch's shuffle: a function of (seed, epoch) only, so any epoch can be replayed. */
function shuffleSeed(seed: number, epoch: number): number {
  return seed * 1000 + epoch;
}

/** A seeded permutation of 0..n-1. */
function permutation(n: number, seed: number): Int32Array {
  const p = range(0, n);
  shuffleInPlace(p, mulberry32(seed));
  return p;
}

class Batcher {
  private readonly x: Float32Array;
  private readonly y: Int32Array;
  constructor(
    private readonly split: DataSplit,
    private readonly numClasses: number,
    private readonly shape: [number, number, number],
    maxBatch: number,
  ) {
    this.x = new Float32Array(maxBatch * PIXELS * shape[2]);
    this.y = new Int32Array(maxBatch);
  }

  /** The batch of `indices[from, to)` as tensors (the caller disposes them). */
  batch(indices: Int32Array, from: number, to: number): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
    const size = to - from;
    const px = PIXELS * this.shape[2];
    for (let k = 0; k < size; k++) {
      const i = indices[from + k]!;
      this.x.set(this.split.images.subarray(i * px, (i + 1) * px), k * px);
      this.y[k] = this.split.labels[i]!;
    }
    const xs = tf.tensor4d(this.x.subarray(0, size * px), [size, ...this.shape]);
    const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(this.y.subarray(0, size), 'int32'), this.numClasses).toFloat() as tf.Tensor2D);
    return { xs, ys };
  }
}

/** Accumulates batch-size weighted sums of the loss parts. */
class PartsMeter {
  private n = 0;
  private sums = { dataLoss: 0, kernel: 0, bias: 0, activity: 0, correct: 0 };
  add(size: number, v: { dataLoss: number; kernel: number; bias: number; activity: number; correct: number }): void {
    this.n += size;
    this.sums.dataLoss += v.dataLoss * size;
    this.sums.kernel += v.kernel * size;
    this.sums.bias += v.bias * size;
    this.sums.activity += v.activity * size;
    this.sums.correct += v.correct;
  }
  get count(): number {
    return this.n;
  }
  parts(): LossParts {
    const n = Math.max(this.n, 1);
    const dataLoss = this.sums.dataLoss / n;
    const kernelPenalty = this.sums.kernel / n;
    const biasPenalty = this.sums.bias / n;
    const activityPenalty = this.sums.activity / n;
    return {
      loss: dataLoss + kernelPenalty + biasPenalty + activityPenalty,
      dataLoss,
      kernelPenalty,
      biasPenalty,
      activityPenalty,
      accuracy: this.sums.correct / n,
    };
  }
}

/** Keras-compatible evaluation (dropout off, penalties included) of `indices` of a split. */
async function evaluate(built: BuiltModel, batcher: Batcher, indices: Int32Array, batchSize: number): Promise<LossParts> {
  const meter = new PartsMeter();
  for (let from = 0; from < indices.length; from += batchSize) {
    const to = Math.min(from + batchSize, indices.length);
    const { xs, ys } = batcher.batch(indices, from, to);
    const t = tf.tidy(() => {
      const { total: _total, ...parts } = forward(built, xs, ys, false);
      return parts;
    });
    tf.dispose([xs, ys]);
    meter.add(to - from, await read(t));
    tf.dispose(Object.values(t));
  }
  return meter.parts();
}

/**
 * The probe batch for weight statistics: the first ≤ PROBE_SIZE images of the validation tail, or
 * of the training data when there is no validation. Fixed for the whole run.
 */
function probeBatch(split: DataSplit, shape: [number, number, number], from: number, to: number): tf.Tensor4D {
  const n = Math.min(PROBE_SIZE, to - from);
  const px = shape[0] * shape[1] * shape[2];
  return tf.tensor4d(split.images.slice(from * px, (from + n) * px), [n, ...shape]);
}

function monitored(report: EpochReport, monitor: EarlyStoppingConfig['monitor']): number | null {
  switch (monitor) {
    case 'loss':
      return report.train.loss;
    case 'accuracy':
      return report.train.accuracy;
    case 'val_loss':
      return report.val?.loss ?? null;
    case 'val_accuracy':
      return report.val?.accuracy ?? null;
  }
}

/** Copies of the model's variables (Keras' best_weights), replaced as better epochs come. */
class WeightSnapshot {
  private saved: tf.Tensor[] | null = null;
  constructor(private readonly variables: tf.Variable[]) {}
  take(): void {
    this.dispose();
    this.saved = this.variables.map((v) => tf.clone(v));
  }
  /** The copies (for a checkpoint); null when there is none. */
  get tensors(): readonly tf.Tensor[] | null {
    return this.saved;
  }
  /** Takes ownership of copies read from a checkpoint. */
  load(tensors: tf.Tensor[]): void {
    this.dispose();
    this.saved = tensors;
  }
  /** Writes the copies back (Keras' set_weights(best_weights)); false when there is none. */
  restore(): boolean {
    const saved = this.saved;
    if (!saved) return false;
    this.variables.forEach((v, i) => v.assign(saved[i]!));
    return true;
  }
  dispose(): void {
    if (this.saved) tf.dispose(this.saved);
    this.saved = null;
  }
}

/** The share of the most frequent label. */
function majorityRate(labels: Int32Array, numClasses: number): number {
  const counts = new Int32Array(numClasses);
  for (const l of labels) counts[l] = (counts[l] ?? 0) + 1;
  return labels.length > 0 ? Math.max(...counts) / labels.length : 0;
}

function range(from: number, to: number): Int32Array {
  const r = new Int32Array(Math.max(0, to - from));
  for (let i = 0; i < r.length; i++) r[i] = from + i;
  return r;
}

export async function train(spec: NormalizedSpec, data: TrainingData, opts: TrainOptions = {}): Promise<TrainingResult> {
  const { epochs, batchSize, validationSplit, shuffle, seed } = spec.training;
  const emit = opts.onEvent ?? (() => {});
  const shouldStop = opts.shouldStop ?? (() => false);
  const interval = opts.progressIntervalMs ?? 1000;

  // Keras: validation is the tail of the training arrays, taken before any shuffling.
  const splitAt = Math.floor(data.train.count * (1 - validationSplit));
  const valIdx = range(splitAt, data.train.count);
  const trainCount = splitAt;
  if (trainCount < 1) throw new TrainingSetupError(`no training samples left after the validation split (${data.train.count} samples)`);
  const batches = Math.ceil(trainCount / batchSize);

  if (spec.input.numClasses !== data.numClasses) {
    throw new TrainingSetupError(`the spec expects ${spec.input.numClasses} classes, the data has ${data.numClasses}`);
  }
  let built: BuiltModel;
  try {
    built = buildModel(spec);
  } catch (err) {
    throw new TrainingSetupError(`the model does not build: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const optimizer = makeOptimizer(spec);
  const { step: trainStep, path: stepPath, note: stepNote } = makeTrainStep(built, optimizer, spec);
  const trainBatcher = new Batcher(data.train, data.numClasses, spec.input.shape, batchSize);
  const testBatcher = new Batcher(data.test, data.numClasses, spec.input.shape, batchSize);
  const reports: EpochReport[] = [];
  const probe =
    valIdx.length > 0 ? probeBatch(data.train, spec.input.shape, splitAt, data.train.count) : probeBatch(data.train, spec.input.shape, 0, trainCount);
  const esConfig = spec.training.earlyStopping ?? null; // specs stored before early stopping have no field
  const stopper = esConfig ? new EarlyStopping(esConfig) : null;
  const snapshot = new WeightSnapshot(built.variables);
  let stoppedEarly: StoppedEarly | null = null;
  const state: CheckpointState = { spec, built, optimizer, snapshot, stopper };
  let firstEpoch = 1;

  try {
    if (opts.resume) {
      try {
        stoppedEarly = await restoreCheckpoint(state, opts.resume);
      } catch (err) {
        throw new TrainingSetupError(`cannot resume from the checkpoint of epoch ${opts.resume.epoch}: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        });
      }
      firstEpoch = opts.resume.epoch + 1;
    }
    emit({
      type: 'started',
      trainCount,
      valCount: valIdx.length,
      testCount: data.test.count,
      batchesPerEpoch: batches,
      epochs,
      step: { path: stepPath, note: stepNote },
    });
    for (let epoch = firstEpoch; epoch <= epochs && !stoppedEarly; epoch++) {
      const started = performance.now();
      const order = shuffle ? permutation(trainCount, shuffleSeed(seed, epoch)) : range(0, trainCount);
      const meter = new PartsMeter();
      let lastEmit = started;
      for (let b = 0; b < batches; b++) {
        if (shouldStop()) return { status: 'cancelled', epochs: reports };
        const from = b * batchSize;
        const to = Math.min(from + batchSize, trainCount);
        const { xs, ys } = trainBatcher.batch(order, from, to);
        built.dropoutClock.at(epoch, b);
        let v: StepValues;
        try {
          v = await trainStep.run(xs, ys);
        } finally {
          tf.dispose([xs, ys]);
        }
        meter.add(to - from, v);
        const now = performance.now();
        if (now - lastEmit >= interval || b === batches - 1) {
          lastEmit = now;
          const p = meter.parts();
          emit({
            type: 'batch',
            epoch,
            batch: b + 1,
            batches,
            loss: p.loss,
            accuracy: p.accuracy,
            samplesPerSec: meter.count / ((now - started) / 1000),
          });
        }
      }
      const trainedMs = performance.now() - started;
      const val = valIdx.length > 0 ? await evaluate(built, trainBatcher, valIdx, batchSize) : null;
      const weights = await layerStats(built, probe);
      const report: EpochReport = {
        epoch,
        epochs,
        durationMs: Math.round(performance.now() - started),
        samplesPerSec: trainCount / (trainedMs / 1000),
        train: meter.parts(),
        val,
        weights,
      };
      reports.push(report);

      let restoredBestWeights: boolean | null = null;
      if (stopper && esConfig) {
        const step = stopper.onEpochEnd(epoch, monitored(report, esConfig.monitor));
        if (step.snapshot) snapshot.take();
        if (step.stop) {
          restoredBestWeights = step.restore && snapshot.restore();
          stoppedEarly = { epoch, bestEpoch: stopper.bestEpoch, best: stopper.best };
        }
      }
      const checkpoint = opts.checkpoints ? await takeCheckpoint(state, epoch, stoppedEarly) : undefined;
      emit({ type: 'epoch', ...report, ...(checkpoint ? { checkpoint } : {}) });
      if (stoppedEarly && esConfig && restoredBestWeights !== null) {
        emit({ type: 'early-stopped', ...stoppedEarly, monitor: esConfig.monitor, restoredBestWeights });
      }
    }
    snapshot.dispose();
    if (shouldStop()) return { status: 'cancelled', epochs: reports };
    const test = {
      ...(await evaluate(built, testBatcher, range(0, data.test.count), batchSize)),
      majorityRate: majorityRate(data.test.labels, data.numClasses),
    };
    const weights = await layerStats(built, probe);
    const artifact = await exportModel(built.model);
    return { status: 'completed', test, artifact, epochs: reports, weights, stoppedEarly };
  } finally {
    snapshot.dispose();
    probe.dispose();
    optimizer.dispose();
    built.dispose();
  }
}
