/** What the training engine reports. Plain data: it crosses thread boundaries and goes to the store as JSON. */

/**
 * One evaluation of the Keras-compatible loss:
 *   loss = dataLoss + kernelPenalty + biasPenalty + activityPenalty
 * dataLoss: mean categorical crossentropy; kernel/bias penalties: Σ over regularized layers of
 * l1·Σ|w| + l2·Σw²; activityPenalty: Σ over regularized layers of (l1·Σ|a| + l2·Σa²) / batch size,
 * averaged over the batches weighted by their size. Over an epoch, each figure is the batch-size
 * weighted mean over its batches (what Keras reports in its History).
 */
export interface LossParts {
  loss: number;
  dataLoss: number;
  kernelPenalty: number;
  biasPenalty: number;
  activityPenalty: number;
  accuracy: number;
}

/**
 * Statistics of one weight tensor — what the tutorial argues about: L1 drives weights to exactly
 * zero, L2 only makes them small.
 */
export interface TensorStats {
  /** Number of weights. */
  count: number;
  /** Fraction of the weights with |w| < 1e-3 (NEAR_ZERO in weight-stats.ts). */
  nearZero: number;
  /** Σ|w|. */
  l1: number;
  /** sqrt(Σw²): the L2 norm (not the squared L2 penalty sum). */
  l2: number;
  /** max |w|. */
  maxAbs: number;
}

/** Weight and activation statistics of one Conv2D or Dense layer. */
export interface LayerStats {
  /** Keras-style layer name: 'conv2d', 'conv2d_1', 'dense', 'dense_1', … */
  layer: string;
  type: 'Conv2D' | 'Dense';
  kernel: TensorStats;
  /** Null when the layer has useBias: false. */
  bias: TensorStats | null;
  /**
   * mean |output| of the layer (after its activation) over the probe batch, dropout off. The probe
   * is fixed for a run: the first ≤ 256 images of the validation tail (of the training data when
   * validationSplit is 0), so the values of successive epochs are comparable.
   */
  activationMeanAbs: number;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  durationMs: number;
  samplesPerSec: number;
  train: LossParts;
  /** Null when validationSplit is 0. */
  val: LossParts | null;
  /** Every Conv2D and Dense layer, in model order, at the end of the epoch (after its last step). */
  weights: LayerStats[];
}

/** How a run ended early (tf.keras 2.12–2.15 EarlyStopping semantics; epochs are 1-based). */
export interface StoppedEarly {
  /** The last epoch trained (Keras' stopped_epoch + 1). */
  epoch: number;
  /** The epoch of the best monitored value (Keras' best_epoch + 1); 0 if no epoch ever improved on ±Infinity (NaN values). */
  bestEpoch: number;
  /** The best monitored value. */
  best: number;
}

export type TrainingEvent =
  | {
      type: 'started';
      trainCount: number;
      valCount: number;
      testCount: number;
      batchesPerEpoch: number;
      epochs: number;
      /** Which training step runs: the backend's native whole step, or tfjs autodiff (with why, when native was declined). */
      step: { path: 'native' | 'tfjs'; note: string | null };
    }
  | { type: 'batch'; epoch: number; batch: number; batches: number; loss: number; accuracy: number; samplesPerSec: number }
  /**
   * `checkpoint`: the training state after this epoch (and after early stopping's decision on it),
   * present only when train() was asked for checkpoints.
   */
  | ({ type: 'epoch'; checkpoint?: TrainingCheckpoint } & EpochReport)
  /** Emitted after the 'epoch' event of the epoch that stopped the run, before test evaluation. */
  | {
      type: 'early-stopped';
      /** The last epoch trained (see StoppedEarly). */
      epoch: number;
      bestEpoch: number;
      /** 'val_loss' | 'val_accuracy' | 'loss' | 'accuracy'. */
      monitor: string;
      best: number;
      /** True when restoreBestWeights put the best epoch's weights back (test metrics and artifact use them). */
      restoredBestWeights: boolean;
    };

/** A tfjs-layers model as `model.save()` hands it over, with the weights in one buffer. */
export interface ModelArtifact {
  format: 'tfjs-layers-model';
  modelTopology: object;
  weightSpecs: WeightSpec[];
  weightData: Uint8Array;
  sha256: string;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
}

export type TrainingResult =
  | {
      status: 'completed';
      /** With the test split's largest class share: what a model that always predicts one class scores. */
      test: LossParts & { majorityRate: number };
      artifact: ModelArtifact;
      epochs: EpochReport[];
      /** Stats of the final model (the restored weights when early stopping restored them). */
      weights: LayerStats[];
      /** Null when every epoch ran (or early stopping was off). */
      stoppedEarly: StoppedEarly | null;
    }
  | { status: 'cancelled'; epochs: EpochReport[] };

/** The minimum the engine needs of a loaded dataset (see data/load.ts). */
export interface TrainingData {
  train: DataSplit;
  test: DataSplit;
  numClasses: number;
}

export interface DataSplit {
  /** count × 28·28·1 pixels in [0, 1], upright, row-major. */
  images: Float32Array;
  /** Class indices 0..numClasses-1. */
  labels: Int32Array;
  count: number;
}

/** Name, shape and dtype of one tensor in a checkpoint buffer (its bytes follow the previous one's). */
export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
}

/** EarlyStopping's counters; non-finite `best` values as strings (JSON has no Infinity or NaN). */
export interface EarlyStoppingState {
  wait: number;
  best: number | 'Infinity' | '-Infinity' | 'NaN';
  bestEpoch: number;
  stoppedEpoch: number;
  hasSnapshot: boolean;
}

/** The JSON half of a checkpoint: what the buffers hold and the loop's small state. */
export interface CheckpointSpecs {
  format: 1;
  /** The optimizer that wrote `optimizer` ('adam' | 'sgd' | 'rmsprop'). */
  optimizer: string;
  /** Optimizer steps taken so far (also the first tensor of `optimizer`, 'iter'). */
  iterations: number;
  /** The model's weights, in BuiltModel.variables order, at the start of the weights buffer. */
  weights: TensorSpec[];
  /** Early stopping's best-weights snapshot (restoreBestWeights), after the model's weights; null when none. */
  bestWeights: TensorSpec[] | null;
  /** tfjs optimizer.getWeights(): 'iter', then the slot variables (Adam: m then v per trainable variable). */
  optimizerWeights: TensorSpec[];
  /** Adam's running β₁ᵗ and β₂ᵗ (see engine/checkpoint.ts); null for other optimizers. */
  adamBetaPowers: [number, number] | null;
  earlyStopping: EarlyStoppingState | null;
  /** Set when early stopping ended training at this epoch: a resume goes straight to the test evaluation. */
  stoppedEarly: StoppedEarly | null;
  /**
   * The shuffle's position. Each epoch's order is a permutation seeded from (seed, epoch) alone, so
   * the next epoch's order needs nothing but its number. Dropout masks are not seeded in tfjs (see
   * model.ts): they are the one part of a resumed run that differs from an uninterrupted one.
   */
  shuffle: { seed: number; nextEpoch: number };
}

/**
 * Everything needed to continue a run after `epoch` on another thread or machine. Buffers hold
 * the tensors' values back to back in the platform's byte order (little-endian everywhere tfjs runs).
 */
export interface TrainingCheckpoint {
  /** The last completed epoch (1-based). */
  epoch: number;
  weights: Uint8Array;
  optimizer: Uint8Array;
  specs: CheckpointSpecs;
}
