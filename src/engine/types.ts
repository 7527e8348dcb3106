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

export interface EpochReport {
  epoch: number;
  epochs: number;
  durationMs: number;
  samplesPerSec: number;
  train: LossParts;
  /** Null when validationSplit is 0. */
  val: LossParts | null;
}

export type TrainingEvent =
  | {
      type: 'started';
      trainCount: number;
      valCount: number;
      testCount: number;
      batchesPerEpoch: number;
      epochs: number;
    }
  | { type: 'batch'; epoch: number; batch: number; batches: number; loss: number; accuracy: number; samplesPerSec: number }
  | ({ type: 'epoch' } & EpochReport);

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
  | { status: 'completed'; test: LossParts; artifact: ModelArtifact; epochs: EpochReport[] }
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
