/**
 * Keras' regularizer formulas (tf.keras.regularizers.L1, L2, L1L2):
 *   l1 · Σ|x|  +  l2 · Σx²
 * A factor of 0 contributes nothing (and builds no ops). Activity penalties are divided by the
 * batch size by the caller, as tf.keras 2 does in Layer._handle_activity_regularization.
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedRegularizer } from '../run-spec/normalized.js';

/**
 * Σ|x| with TensorFlow's gradient, sign(x). tfjs' own Abs gradient is step(x, -1), i.e. -1 at
 * exactly 0 — which would push zero-initialised biases under an L1 penalty on the very first step,
 * where Keras leaves them alone.
 */
const sumAbs = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: tf.sum(tf.abs(x)) as tf.Scalar,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.sign(saved[0]!)),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Scalar;

export function penalty(reg: NormalizedRegularizer, x: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    if (reg.l1 > 0) total = tf.add(total, tf.mul(reg.l1, sumAbs(x)));
    if (reg.l2 > 0) total = tf.add(total, tf.mul(reg.l2, tf.sum(tf.square(x))));
    return total;
  });
}
