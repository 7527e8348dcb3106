/**
 * One training step, and the forward pass with every loss part that evaluation shares.
 *
 * `makeTrainStep` is the seam for faster paths: a backend that can run a whole step natively
 * returns its own TrainStep here; it must give the same numbers (float tolerance) as the tfjs
 * autodiff step below, with the same dropout masks (dropout.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import type { BuiltModel } from './model.js';
import { nativeTrainStep } from './native-step.js';
import { penalty } from './regularizers.js';

export interface StepValues {
  dataLoss: number;
  kernel: number;
  bias: number;
  activity: number;
  correct: number;
}

export interface StepTensors {
  dataLoss: tf.Scalar;
  kernel: tf.Scalar;
  bias: tf.Scalar;
  activity: tf.Scalar;
  correct: tf.Scalar;
}

/**
 * Forward pass with every loss part. `training` switches dropout on. Returns tensors the caller owns.
 *
 * The data loss is tf.keras 2's categorical cross-entropy of a softmax output: Keras finds the
 * softmax's logits and takes softmax_cross_entropy_with_logits, i.e. logsumexp(z) − z_y, with no
 * clipping of probabilities. (tfjs' categoricalCrossentropy clips p to [1e-7, 1 − 1e-7], which caps a
 * confidently wrong sample's loss at 16.1 and zeroes its gradient.) So the softmax layer is applied
 * here, from trainModel's features and the layer's own weights.
 */
export function forward(built: BuiltModel, xs: tf.Tensor4D, ys: tf.Tensor2D, training: boolean): StepTensors & { total: tf.Scalar } {
  const outs = built.trainModel.apply(xs, { training }) as tf.Tensor | tf.Tensor[];
  const all = Array.isArray(outs) ? outs : [outs];
  const features = all[0] as tf.Tensor2D;
  const batch = xs.shape[0];
  const z = built.head.bias
    ? tf.add(tf.matMul(features, built.head.kernel as tf.Tensor2D), built.head.bias)
    : tf.matMul(features, built.head.kernel as tf.Tensor2D);
  const logProbs = tf.logSoftmax(z);
  const dataLoss = tf.neg(tf.mean(tf.sum(tf.mul(ys, logProbs), -1))) as tf.Scalar;
  let kernel: tf.Scalar = tf.scalar(0);
  let bias: tf.Scalar = tf.scalar(0);
  for (const p of built.weightPenalties) {
    const v = penalty(p.regularizer, p.variable);
    if (p.kind === 'kernel') kernel = tf.add(kernel, v);
    else bias = tf.add(bias, v);
  }
  let activity: tf.Scalar = tf.scalar(0);
  for (const p of built.activityPenalties) {
    const out = p.output === 'probabilities' ? tf.softmax(z) : all[p.output]!;
    activity = tf.add(activity, tf.div(penalty(p.regularizer, out), batch));
  }
  const correct = tf.sum(tf.cast(tf.equal(tf.argMax(z, -1), tf.argMax(ys, -1)), 'float32')) as tf.Scalar;
  const total = tf.addN([dataLoss, kernel, bias, activity]) as tf.Scalar;
  return { total, dataLoss, kernel, bias, activity, correct };
}

/** Reads the five scalars of a step with one download (one sync point per batch, not five). */
export async function read(t: StepTensors): Promise<StepValues> {
  const packed = tf.stack([t.dataLoss, t.kernel, t.bias, t.activity, t.correct]);
  const v = await packed.data();
  packed.dispose();
  return { dataLoss: v[0] ?? NaN, kernel: v[1] ?? NaN, bias: v[2] ?? NaN, activity: v[3] ?? NaN, correct: v[4] ?? NaN };
}

export interface TrainStep {
  /** Trains on one batch (the caller disposes xs and ys) and returns its loss parts. */
  run(xs: tf.Tensor4D, ys: tf.Tensor2D): Promise<StepValues>;
}

/** The tfjs step: autodiff of the total loss, then the optimizer. */
export function tfjsTrainStep(built: BuiltModel, optimizer: tf.Optimizer): TrainStep {
  return {
    async run(xs, ys) {
      let parts: StepTensors | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const { total, ...rest } = forward(built, xs, ys, true);
        for (const t of Object.values(rest)) tf.keep(t);
        parts = rest;
        return total;
      }, built.trainable);
      optimizer.applyGradients(grads);
      tf.dispose([value, ...Object.values(grads)]);
      if (!parts) throw new Error('training step produced no loss parts');
      const v = await read(parts);
      tf.dispose(Object.values(parts));
      return v;
    },
  };
}

/** The step train() runs, and which path it is (recorded on the run's 'started' event). */
export function makeTrainStep(
  built: BuiltModel,
  optimizer: tf.Optimizer,
  spec: NormalizedSpec,
): { step: TrainStep; path: 'native' | 'tfjs'; note: string | null } {
  let note: string | null = null;
  const native = nativeTrainStep(built, optimizer, spec, (why) => (note = why));
  return native ? { step: native, path: 'native', note: null } : { step: tfjsTrainStep(built, optimizer), path: 'tfjs', note };
}
