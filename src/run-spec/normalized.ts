/**
 * The normalized spec: every default applied, every size a pair, every regularizer explicit.
 * This is what is stored on a run, what the worker trains and what shape inference reads.
 */
import type { Activation, DatasetName } from './schema.js';

export type Pair = [number, number];
export type Padding = 'valid' | 'same';

/** A regularizer with both factors explicit (a factor of 0 is off). `type` keeps the user's Keras name. */
export interface NormalizedRegularizer {
  type: 'l1' | 'l2' | 'l1_l2';
  l1: number;
  l2: number;
}

export interface RegularizerSlots {
  kernelRegularizer: NormalizedRegularizer | null;
  biasRegularizer: NormalizedRegularizer | null;
  activityRegularizer: NormalizedRegularizer | null;
}

export interface NormalizedConv2D extends RegularizerSlots {
  type: 'Conv2D';
  filters: number;
  kernelSize: Pair;
  strides: Pair;
  padding: Padding;
  activation: Activation;
  useBias: boolean;
}

export interface NormalizedMaxPooling2D {
  type: 'MaxPooling2D';
  poolSize: Pair;
  strides: Pair;
  padding: Padding;
}

export interface NormalizedDropout {
  type: 'Dropout';
  rate: number;
}

export interface NormalizedFlatten {
  type: 'Flatten';
}

export interface NormalizedDense extends RegularizerSlots {
  type: 'Dense';
  units: number;
  activation: Activation;
  useBias: boolean;
}

export type NormalizedLayer = NormalizedConv2D | NormalizedMaxPooling2D | NormalizedDropout | NormalizedFlatten | NormalizedDense;

export type OptimizerType = 'adam' | 'sgd' | 'rmsprop';

export interface NormalizedTraining {
  epochs: number;
  batchSize: number;
  validationSplit: number;
  optimizer: { type: OptimizerType; learningRate: number };
  shuffle: boolean;
  seed: number;
  /** Null when off. `mode` is resolved (auto → max for accuracy, min for loss). */
  earlyStopping: {
    monitor: 'val_loss' | 'val_accuracy' | 'loss' | 'accuracy';
    patience: number;
    minDelta: number;
    restoreBestWeights: boolean;
    mode: 'min' | 'max';
    baseline: number | null;
    startFromEpoch: number;
  } | null;
}

export interface IdxFilePair {
  images: string;
  labels: string;
}

export type NormalizedDataset =
  | { name: DatasetName; limit: number | null; seed: number }
  | {
      name: 'idx';
      train: IdxFilePair;
      test: IdxFilePair | null;
      testFraction: number;
      transposed: boolean;
      classNames: string[] | null;
      limit: number | null;
      seed: number;
    };

export interface NormalizedSpec {
  name: string | null;
  /** The tutorial configuration the layers came from, if any. */
  preset: string | null;
  model: { layers: NormalizedLayer[] };
  training: NormalizedTraining;
  dataset: NormalizedDataset;
  /** From the dataset: the model's input and output sizes. */
  input: { shape: [number, number, number]; numClasses: number };
}
