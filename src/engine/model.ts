/**
 * NormalizedSpec → tfjs models.
 *
 * Regularizers are NOT handed to tfjs-layers (its activity regularization throws "not supported yet",
 * and its l1l2 silently defaults l2 to 0.01). Instead the builder records which variable or layer
 * output each regularizer watches, and the training loop (train.ts) adds Keras' penalties itself.
 *
 * Two models share one set of layers:
 *  - `model`: input → class probabilities. Saved, reloaded and used for prediction.
 *  - `trainModel`: input → [softmax layer's input, ...outputs of layers with an activity regularizer];
 *    the training loop applies the softmax layer's weights itself, to take the loss from logits.
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedLayer, NormalizedRegularizer, NormalizedSpec } from '../run-spec/normalized.js';
import { DropoutClock, SeededDropout } from './dropout.js';

export interface WeightPenalty {
  kind: 'kernel' | 'bias';
  layer: string;
  variable: tf.Variable;
  regularizer: NormalizedRegularizer;
}

export interface ActivityPenalty {
  layer: string;
  /** Index into trainModel's outputs, or 'probabilities' for the softmax layer's own output. */
  output: number | 'probabilities';
  regularizer: NormalizedRegularizer;
}

/** One layer of the stack, in model order; Conv2D and Dense carry their weight variables. */
export interface BuiltLayer {
  type: NormalizedLayer['type'];
  layer: tf.layers.Layer;
  /** Conv2D and Dense only. */
  kernel: tf.Variable | null;
  /** Conv2D and Dense with useBias only. */
  bias: tf.Variable | null;
}

export interface BuiltModel {
  model: tf.LayersModel;
  /** The layers in order (input → probabilities), for layer-by-layer inspection (weight-stats.ts). */
  layers: BuiltLayer[];
  /** Every weight variable of the model (what Keras' get_weights()/set_weights() cover). */
  variables: tf.Variable[];
  /**
   * input → [features, ...outputs of hidden layers with an activity regularizer]: `features` is
   * the input of the softmax layer, whose logits the training loop computes itself from `head`
   * (Keras takes the cross-entropy of a softmax output from its logits).
   */
  trainModel: tf.LayersModel;
  /** The softmax layer's weights (the last layer is always Dense + softmax: see run-spec/shapes.ts). */
  head: { kernel: tf.Variable; bias: tf.Variable | null };
  /** The position Seeded Dropout layers draw their masks for (set before each training step). */
  dropoutClock: DropoutClock;
  weightPenalties: WeightPenalty[];
  activityPenalties: ActivityPenalty[];
  /** The variables the optimizer updates. */
  trainable: tf.Variable[];
  dispose(): void;
}

function buildLayer(spec: NormalizedLayer, name: string, seed: number, index: number, clock: DropoutClock): tf.layers.Layer {
  switch (spec.type) {
    case 'Conv2D':
      return tf.layers.conv2d({
        name,
        filters: spec.filters,
        kernelSize: spec.kernelSize,
        strides: spec.strides,
        padding: spec.padding,
        activation: spec.activation,
        useBias: spec.useBias,
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
        biasInitializer: 'zeros',
      });
    case 'Dense':
      return tf.layers.dense({
        name,
        units: spec.units,
        activation: spec.activation,
        useBias: spec.useBias,
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
        biasInitializer: 'zeros',
      });
    case 'MaxPooling2D':
      return tf.layers.maxPooling2d({ name, poolSize: spec.poolSize, strides: spec.strides, padding: spec.padding });
    case 'Dropout':
      // Not tf.layers.dropout: unseeded it cannot be replayed, seeded it freezes its mask (dropout.ts).
      return new SeededDropout({ name, rate: spec.rate, index, clock });
    case 'Flatten':
      return tf.layers.flatten({ name });
  }
}

const KERAS_NAMES: Record<NormalizedLayer['type'], string> = {
  Conv2D: 'conv2d',
  MaxPooling2D: 'max_pooling2d',
  Dropout: 'dropout',
  Flatten: 'flatten',
  Dense: 'dense',
};

/** Keras-style layer names: conv2d, conv2d_1, dense, dense_1, ... (stable across runs in one process). */
function namer(): (type: NormalizedLayer['type']) => string {
  const seen = new Map<string, number>();
  return (type) => {
    const base = KERAS_NAMES[type];
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  };
}

function variableOf(layer: tf.layers.Layer, suffix: 'kernel' | 'bias'): tf.Variable {
  const w = layer.trainableWeights.find((v) => v.originalName.endsWith(`/${suffix}`));
  if (!w) throw new Error(`layer ${layer.name} has no ${suffix}`);
  return w.read() as tf.Variable;
}

export function buildModel(spec: NormalizedSpec): BuiltModel {
  const name = namer();
  const clock = new DropoutClock(spec.training.seed);
  const input = tf.input({ shape: spec.input.shape, name: 'input' });
  let x: tf.SymbolicTensor = input;
  const built: { spec: NormalizedLayer; layer: tf.layers.Layer }[] = [];
  const last = spec.model.layers.length - 1;
  let features: tf.SymbolicTensor = input;
  // trainModel's outputs: features first, then each regularized hidden output once (a model cannot
  // list one tensor twice, and the softmax layer's input may itself carry an activity regularizer).
  const outputs: tf.SymbolicTensor[] = [];
  const outputIndex = (t: tf.SymbolicTensor): number => {
    const at = outputs.indexOf(t);
    return at >= 0 ? at : outputs.push(t) - 1;
  };
  const activityPenalties: ActivityPenalty[] = [];

  spec.model.layers.forEach((layerSpec, i) => {
    if (i === last) features = x;
    const layer = buildLayer(layerSpec, name(layerSpec.type), spec.training.seed + i, i, clock);
    x = layer.apply(x) as tf.SymbolicTensor;
    built.push({ spec: layerSpec, layer });
  });
  outputIndex(features);
  built.forEach(({ spec: s, layer }, i) => {
    if ((s.type === 'Conv2D' || s.type === 'Dense') && s.activityRegularizer) {
      const output = i === last ? 'probabilities' : outputIndex(layer.output as tf.SymbolicTensor);
      activityPenalties.push({ layer: layer.name, output, regularizer: s.activityRegularizer });
    }
  });

  const model = tf.model({ inputs: input, outputs: x, name: 'regula' });
  const trainModel = tf.model({ inputs: input, outputs });
  const headLayer = built[last];
  if (headLayer?.spec.type !== 'Dense' || headLayer.spec.activation !== 'softmax') throw new Error('the last layer must be a Dense softmax layer');

  const weightPenalties: WeightPenalty[] = [];
  for (const { spec: s, layer } of built) {
    if (s.type !== 'Conv2D' && s.type !== 'Dense') continue;
    if (s.kernelRegularizer)
      weightPenalties.push({ kind: 'kernel', layer: layer.name, variable: variableOf(layer, 'kernel'), regularizer: s.kernelRegularizer });
    if (s.biasRegularizer) weightPenalties.push({ kind: 'bias', layer: layer.name, variable: variableOf(layer, 'bias'), regularizer: s.biasRegularizer });
  }

  const layers: BuiltLayer[] = built.map(({ spec: s, layer }) => {
    const weighted = s.type === 'Conv2D' || s.type === 'Dense';
    return {
      type: s.type,
      layer,
      kernel: weighted ? variableOf(layer, 'kernel') : null,
      bias: weighted && s.useBias ? variableOf(layer, 'bias') : null,
    };
  });

  return {
    model,
    layers,
    variables: model.weights.map((w) => w.read() as tf.Variable),
    trainModel,
    head: { kernel: variableOf(headLayer.layer, 'kernel'), bias: headLayer.spec.useBias ? variableOf(headLayer.layer, 'bias') : null },
    dropoutClock: clock,
    weightPenalties,
    activityPenalties,
    trainable: model.trainableWeights.map((w) => w.read() as tf.Variable),
    dispose: () => {
      model.dispose();
    },
  };
}
