/**
 * The training step as one native call, where the active backend offers one (the onednn backend:
 * packages/tfjs-backend-onednn/src/step.ts). Same math as the tfjs step in step.ts — loss from the
 * softmax's logits, Keras' weight and activity penalties, the same seeded Dropout masks — checked
 * against it by test/unit/native-step.test.ts; only the summation order differs.
 *
 * Why: through tfjs a step of the tutorial CNN is ~60 kernels plus tape bookkeeping, several ms of
 * serial JS beside the convolutions, and an activity penalty adds four passes over the largest
 * activation. Natively the whole forward/backward is one call; the optimizer stays tfjs' (the
 * gradients come back as tensors keyed by variable name, in `built.trainable` order, exactly as
 * tf.variableGrads gives them — so Adam's slots and checkpoints are the same on either path).
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedRegularizer, NormalizedSpec } from '../run-spec/normalized.js';
import { planNativeStep, type NativePenalty, type NativeStepLayer } from './backends/index.js';
import { dropoutKey } from './dropout.js';
import type { BuiltModel } from './model.js';
import type { TrainStep } from './step.js';

function factors(r: NormalizedRegularizer | null): NativePenalty | null {
  return r && (r.l1 > 0 || r.l2 > 0) ? { l1: r.l1, l2: r.l2 } : null;
}

/** The spec's layers with their weights, as the native planner takes them. */
export function nativeLayers(spec: NormalizedSpec, built: BuiltModel): NativeStepLayer[] {
  return spec.model.layers.map((s, i): NativeStepLayer => {
    const b = built.layers[i];
    switch (s.type) {
      case 'Conv2D':
      case 'Dense': {
        if (!b?.kernel) throw new Error(`layer ${i} has no kernel`);
        const common = {
          kernel: b.kernel,
          bias: b.bias,
          activation: s.activation,
          kernelPenalty: factors(s.kernelRegularizer),
          biasPenalty: factors(s.biasRegularizer),
          activityPenalty: factors(s.activityRegularizer),
        };
        return s.type === 'Conv2D' ? { type: 'conv2d', strides: s.strides, padding: s.padding, ...common } : { type: 'dense', ...common };
      }
      case 'MaxPooling2D':
        return { type: 'maxPooling2d', poolSize: s.poolSize, strides: s.strides, padding: s.padding };
      case 'Dropout':
        return { type: 'dropout', rate: s.rate };
      case 'Flatten':
        return { type: 'flatten' };
    }
  });
}

/**
 * The native step for this model on the active backend, or null (with the reason in `why`) when
 * there is none: another backend, or a layer the native path does not implement.
 */
export function nativeTrainStep(built: BuiltModel, optimizer: tf.Optimizer, spec: NormalizedSpec, why?: (reason: string) => void): TrainStep | null {
  const step = planNativeStep(spec.input.shape, nativeLayers(spec, built));
  if (step === null) return null;
  if (typeof step === 'string') {
    why?.(step);
    return null;
  }
  // Gradients go to the optimizer keyed by name in built.trainable's order (Adam's slots follow it).
  const names = new Map<tf.Tensor, string>();
  step.variables.forEach((v) => {
    const variable = built.trainable.find((t) => t === v);
    if (variable) names.set(v, variable.name);
  });
  if (names.size !== built.trainable.length || step.variables.length !== built.trainable.length) {
    why?.('the native step does not cover exactly the trainable variables');
    return null;
  }
  const dropouts = spec.model.layers.flatMap((l, i) => (l.type === 'Dropout' ? [i] : []));
  const keys = new Float64Array(spec.model.layers.length);
  const clock = built.dropoutClock;
  return {
    async run(xs, ys) {
      for (const i of dropouts) keys[i] = dropoutKey(clock.seed, clock.epoch, clock.step, i);
      const r = step.run(xs, ys, keys);
      const byVariable = new Map<tf.Tensor, tf.Tensor>();
      r.grads.forEach((g, i) => byVariable.set(step.variables[i]!, g));
      const grads: tf.NamedTensorMap = {};
      for (const v of built.trainable) grads[v.name] = byVariable.get(v)!;
      try {
        optimizer.applyGradients(grads);
      } finally {
        tf.dispose(r.grads);
      }
      return { dataLoss: r.dataLoss, kernel: r.kernelPenalty, bias: r.biasPenalty, activity: r.activityPenalty, correct: r.correct };
    },
  };
}
