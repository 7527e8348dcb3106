/**
 * RunRequest (validated by the schema) → NormalizedSpec: the tutorial's defaults, Keras' regularizer
 * factors made explicit, sizes as pairs. Then shape inference rejects what cannot be built.
 */
import { SpecError } from './errors.js';
import type { Dataset, Layer, Regularizer, RunRequest } from './schema.js';
import type { NormalizedDataset, NormalizedLayer, NormalizedRegularizer, NormalizedSpec, NormalizedTraining, OptimizerType, Pair } from './normalized.js';
import { inferShapes, type ShapeReport } from './shapes.js';
import { PRESETS } from './presets.js';

/** The tutorial's settings: batch 250, 25 epochs, validation split 0.2, Adam. */
export const DEFAULTS = {
  epochs: 25,
  batchSize: 250,
  validationSplit: 0.2,
  optimizer: 'adam' as OptimizerType,
  dataset: 'emnist-balanced' as const,
  testFraction: 0.15,
};

/** Keras' default learning rates. */
export const DEFAULT_LEARNING_RATE: Record<OptimizerType, number> = { adam: 0.001, sgd: 0.01, rmsprop: 0.001 };

/** Keras' l1()/l2() default factor. */
const KERAS_DEFAULT_FACTOR = 0.01;

export interface NormalizeContext {
  /** Classes and image shape of the dataset, resolved by the caller (the dataset registry or the label file). */
  numClasses: number;
  inputShape?: [number, number, number];
  /** Seed to use when the request has none (recorded in the normalized spec, so the run is reproducible). */
  seed: number;
}

export interface Normalized {
  spec: NormalizedSpec;
  shapes: ShapeReport;
}

const pair = (v: number | number[] | undefined, fallback: Pair): Pair => {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return [v, v];
  return [v[0] ?? fallback[0], v[1] ?? fallback[1]];
};

export function normalizeRegularizer(r: Regularizer | undefined, pointer: string): NormalizedRegularizer | null {
  if (r === undefined) return null;
  switch (r.type) {
    case 'l1':
      if (r.l2 !== undefined) throw new SpecError(`${pointer}/l2`, 'an l1 regularizer takes no l2 factor: use type "l1_l2"');
      return { type: 'l1', l1: r.l1 ?? KERAS_DEFAULT_FACTOR, l2: 0 };
    case 'l2':
      if (r.l1 !== undefined) throw new SpecError(`${pointer}/l1`, 'an l2 regularizer takes no l1 factor: use type "l1_l2"');
      return { type: 'l2', l1: 0, l2: r.l2 ?? KERAS_DEFAULT_FACTOR };
    case 'l1_l2':
      // Unlike tf.regularizers.l1l2 in tfjs (which silently sets a missing l2 to 0.01), a missing factor is 0.
      return { type: 'l1_l2', l1: r.l1 ?? 0, l2: r.l2 ?? 0 };
  }
}

function normalizeLayer(layer: Layer, i: number): NormalizedLayer {
  const at = `/model/layers/${i}`;
  switch (layer.type) {
    case 'Conv2D':
      return {
        type: 'Conv2D',
        filters: layer.filters,
        kernelSize: pair(layer.kernelSize, [3, 3]),
        strides: pair(layer.strides, [1, 1]),
        padding: layer.padding ?? 'valid',
        activation: layer.activation ?? 'linear',
        useBias: layer.useBias ?? true,
        kernelRegularizer: normalizeRegularizer(layer.kernelRegularizer, `${at}/kernelRegularizer`),
        biasRegularizer: normalizeBias(layer.biasRegularizer, layer.useBias ?? true, at),
        activityRegularizer: normalizeRegularizer(layer.activityRegularizer, `${at}/activityRegularizer`),
      };
    case 'Dense':
      return {
        type: 'Dense',
        units: layer.units,
        activation: layer.activation ?? 'linear',
        useBias: layer.useBias ?? true,
        kernelRegularizer: normalizeRegularizer(layer.kernelRegularizer, `${at}/kernelRegularizer`),
        biasRegularizer: normalizeBias(layer.biasRegularizer, layer.useBias ?? true, at),
        activityRegularizer: normalizeRegularizer(layer.activityRegularizer, `${at}/activityRegularizer`),
      };
    case 'MaxPooling2D': {
      const poolSize = pair(layer.poolSize, [2, 2]);
      return { type: 'MaxPooling2D', poolSize, strides: pair(layer.strides, poolSize), padding: layer.padding ?? 'valid' };
    }
    case 'Dropout':
      return { type: 'Dropout', rate: layer.rate };
    case 'Flatten':
      return { type: 'Flatten' };
  }
}

function normalizeBias(r: Regularizer | undefined, useBias: boolean, at: string): NormalizedRegularizer | null {
  if (r !== undefined && !useBias) throw new SpecError(`${at}/biasRegularizer`, 'a bias regularizer needs useBias: true');
  return normalizeRegularizer(r, `${at}/biasRegularizer`);
}

/** The request's dataset (default: the tutorial's emnist-balanced) with its sampling seed. */
export function normalizeDataset(dataset: Dataset | undefined, seed: number): NormalizedDataset {
  const d: Dataset = dataset ?? { name: DEFAULTS.dataset };
  if (d.name === 'idx') {
    if (d.test && d.testFraction !== undefined) {
      throw new SpecError('/dataset/testFraction', 'testFraction applies only when no test files are given');
    }
    return {
      name: 'idx',
      train: { images: d.train.images, labels: d.train.labels },
      test: d.test ? { images: d.test.images, labels: d.test.labels } : null,
      testFraction: d.test ? 0 : (d.testFraction ?? DEFAULTS.testFraction),
      transposed: d.transposed ?? true,
      classNames: d.classNames ?? null,
      limit: d.limit ?? null,
      seed,
    };
  }
  return { name: d.name, limit: d.limit ?? null, seed };
}

function layersOf(req: RunRequest): Layer[] {
  if (req.preset !== undefined && req.model !== undefined) {
    throw new SpecError('/model', `give either a model or a preset, not both (preset "${req.preset}" defines the layers)`);
  }
  if (req.preset !== undefined) return PRESETS[req.preset].layers;
  if (req.model === undefined) throw new SpecError('/model', 'a model (or a preset) is required');
  return req.model.layers;
}

function normalizeEarlyStopping(t: NonNullable<RunRequest['training']>, validationSplit: number): NormalizedTraining['earlyStopping'] {
  const es = t.earlyStopping;
  if (es === undefined) return null;
  const monitor = es.monitor ?? 'val_loss';
  if (monitor.startsWith('val_') && validationSplit === 0) {
    throw new SpecError(
      '/training/earlyStopping/monitor',
      `${es.monitor === undefined ? 'the default monitor ' : ''}"${monitor}" needs validation data but validationSplit is 0: monitor "${monitor.slice(4)}" or set a validationSplit`,
    );
  }
  // Keras: auto is max for names ending in acc/accuracy/auc, min otherwise.
  const mode = es.mode === undefined || es.mode === 'auto' ? (monitor.endsWith('accuracy') ? 'max' : 'min') : es.mode;
  return {
    monitor,
    patience: es.patience ?? 0,
    minDelta: Math.abs(es.minDelta ?? 0),
    restoreBestWeights: es.restoreBestWeights ?? false,
    mode,
    baseline: es.baseline ?? null,
    startFromEpoch: es.startFromEpoch ?? 0,
  };
}

export function normalizeSpec(req: RunRequest, ctx: NormalizeContext): Normalized {
  const t = req.training ?? {};
  const optimizerType = t.optimizer?.type ?? DEFAULTS.optimizer;
  const seed = t.seed ?? ctx.seed;
  const spec: NormalizedSpec = {
    name: req.name ?? null,
    preset: req.preset ?? null,
    model: { layers: layersOf(req).map(normalizeLayer) },
    training: {
      epochs: t.epochs ?? DEFAULTS.epochs,
      batchSize: t.batchSize ?? DEFAULTS.batchSize,
      validationSplit: t.validationSplit ?? DEFAULTS.validationSplit,
      optimizer: { type: optimizerType, learningRate: t.optimizer?.learningRate ?? DEFAULT_LEARNING_RATE[optimizerType] },
      shuffle: t.shuffle ?? true,
      seed,
      earlyStopping: normalizeEarlyStopping(t, t.validationSplit ?? DEFAULTS.validationSplit),
    },
    dataset: normalizeDataset(req.dataset, seed),
    input: { shape: ctx.inputShape ?? [28, 28, 1], numClasses: ctx.numClasses },
  };
  return { spec, shapes: inferShapes(spec) };
}
