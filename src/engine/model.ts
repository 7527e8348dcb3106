/**
 * NormalizedSpec → tfjs models.
 *
 * Regularizers are NOT handed to tfjs-layers (its activity regularization throws "not supported yet",
 * and its l1l2 silently defaults l2 to 0.01). Instead the builder records which variable or layer
 * output each regularizer watches, and the training loop (train.ts) adds Keras' penalties itself.
 *
 * Two models share one set of layers:
 *  - `model`: input → class probabilities. Saved, reloaded and used for prediction.
 *  - `trainModel`: input → [probabilities, ...outputs of layers with an activity regularizer].
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedLayer, NormalizedRegularizer, NormalizedSpec } from '../spec/normalized.js';

export interface WeightPenalty {
  kind: 'kernel' | 'bias';
  layer: string;
  variable: tf.Variable;
  regularizer: NormalizedRegularizer;
}

export interface ActivityPenalty {
  layer: string;
  /** Index into trainModel's outputs (0 is the probabilities, i.e. the last layer). */
  output: number;
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
  trainModel: tf.LayersModel;
  weightPenalties: WeightPenalty[];
  activityPenalties: ActivityPenalty[];
  /** The variables the optimizer updates. */
  trainable: tf.Variable[];
  dispose(): void;
}

function buildLayer(spec: NormalizedLayer, name: string, seed: number): tf.layers.Layer {
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
      // No seed: tfjs reuses a layer's seed for every call, which would freeze the dropout mask.
      return tf.layers.dropout({ name, rate: spec.rate });
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
  const input = tf.input({ shape: spec.input.shape, name: 'input' });
  let x: tf.SymbolicTensor = input;
  const built: { spec: NormalizedLayer; layer: tf.layers.Layer }[] = [];
  const activityOutputs: tf.SymbolicTensor[] = [];
  const activityPenalties: ActivityPenalty[] = [];

  spec.model.layers.forEach((layerSpec, i) => {
    const layer = buildLayer(layerSpec, name(layerSpec.type), spec.training.seed + i);
    x = layer.apply(x) as tf.SymbolicTensor;
    built.push({ spec: layerSpec, layer });
    if ((layerSpec.type === 'Conv2D' || layerSpec.type === 'Dense') && layerSpec.activityRegularizer) {
      // The last layer's output is output 0 already (a model cannot list one tensor twice).
      const isLast = i === spec.model.layers.length - 1;
      if (!isLast) activityOutputs.push(x);
      activityPenalties.push({ layer: layer.name, output: isLast ? 0 : activityOutputs.length, regularizer: layerSpec.activityRegularizer });
    }
  });

  const model = tf.model({ inputs: input, outputs: x, name: 'regula' });
  const trainModel = activityOutputs.length === 0 ? model : tf.model({ inputs: input, outputs: [x, ...activityOutputs] });

  const weightPenalties: WeightPenalty[] = [];
  for (const { spec: s, layer } of built) {
    if (s.type !== 'Conv2D' && s.type !== 'Dense') continue;
    if (s.kernelRegularizer) weightPenalties.push({ kind: 'kernel', layer: layer.name, variable: variableOf(layer, 'kernel'), regularizer: s.kernelRegularizer });
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
    weightPenalties,
    activityPenalties,
    trainable: model.trainableWeights.map((w) => w.read() as tf.Variable),
    dispose: () => {
      model.dispose();
    },
  };
}
