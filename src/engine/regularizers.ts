/**
 * Keras' regularizer formulas (tf.keras.regularizers.L1, L2, L1L2):
 *   l1 · Σ|x|  +  l2 · Σx²
 * A factor of 0 contributes nothing (and builds no ops). Activity penalties are divided by the
 * batch size by the caller, as tf.keras 2 does in Layer._handle_activity_regularization.
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedRegularizer } from '../spec/normalized.js';

export function penalty(reg: NormalizedRegularizer, x: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    if (reg.l1 > 0) total = tf.add(total, tf.mul(reg.l1, tf.sum(tf.abs(x))));
    if (reg.l2 > 0) total = tf.add(total, tf.mul(reg.l2, tf.sum(tf.square(x))));
    return total;
  });
}
