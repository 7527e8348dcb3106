/**
 * Optimizers with tf.keras 2's update rules.
 *
 * Adam differs between the two libraries in where ε sits. tf.keras 2 (the legacy
 * ResourceApplyAdam kernel and the 2.11+ optimizer alike) updates
 *     w −= lr · sqrt(1 − β2^t) / (1 − β1^t) · m / (sqrt(v) + ε)
 * while tfjs' AdamOptimizer updates
 *     w −= lr · m̂ / (sqrt(v̂) + ε)      with m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t),
 * which is the same rule with ε replaced by ε·sqrt(1 − β2^t). Early in training that factor is small
 * (0.03 at t = 1), so tfjs takes up to ~30× larger steps on weights whose gradients are tiny — the
 * dying units of a heavily regularized network, exactly where L1 on activities balances on a knife
 * edge. KerasAdam sets tfjs' ε to ε / sqrt(1 − β2^t) before each step, which makes the two equal
 * (up to float rounding) while keeping tfjs' optimizer, its state layout (checkpoints) and the onednn
 * backend's fused kernel, which reads ε at every call.
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedSpec } from '../run-spec/normalized.js';

/** tf.keras defaults. */
export const KERAS_ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 } as const;

export class KerasAdam extends tf.AdamOptimizer {
  private readonly kerasEpsilon: number;

  constructor(learningRate: number, beta1 = KERAS_ADAM.beta1, beta2 = KERAS_ADAM.beta2, epsilon = KERAS_ADAM.epsilon) {
    super(learningRate, beta1, beta2, epsilon);
    this.kerasEpsilon = epsilon;
  }

  /** The ε tfjs must use at 1-based step t for its update to equal Keras'. */
  static tfjsEpsilon(epsilon: number, beta2: number, t: number): number {
    return epsilon / Math.sqrt(1 - beta2 ** t);
  }

  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    this.epsilon = KerasAdam.tfjsEpsilon(this.kerasEpsilon, this.beta2, this.iterations + 1);
    super.applyGradients(variableGradients);
  }
}

export function makeOptimizer(spec: NormalizedSpec): tf.Optimizer {
  const { type, learningRate } = spec.training.optimizer;
  switch (type) {
    case 'adam':
      return new KerasAdam(learningRate);
    case 'sgd':
      return tf.train.sgd(learningRate);
    case 'rmsprop':
      // tfjs: ms = ρ·ms + (1−ρ)·g²; w −= lr·g / sqrt(ms + ε) — tf.keras 2's legacy RMSprop (≤ 2.10).
      // tf.keras 2.11+ divides by sqrt(ms) + ε instead; with ε = 1e-7 the two differ only while
      // ms < ~1e-12. Not changed: the tutorial and every preset use Adam.
      return tf.train.rmsprop(learningRate, 0.9, 0, 1e-7);
  }
}
