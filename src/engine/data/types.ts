/**
 * Types of Regula's dataset layer. Pure data: no tfjs, no I/O.
 *
 * A dataset spec is either one of the named public datasets (read from `DATA_DIR/<name>/` with the
 * official file names, see registry.ts) or a pair/quad of IDX files below `DATA_DIR`.
 */

/** The named datasets, in the order they are documented (the API's list: src/run-spec/datasets.ts). */
export { DATASET_NAMES as NAMED_DATASETS } from '../../run-spec/datasets.js';
import type { DATASET_NAMES } from '../../run-spec/datasets.js';
export type NamedDatasetName = (typeof DATASET_NAMES)[number];

/** Options shared by every spec. */
export interface SamplingOptions {
  /**
   * Train on a seeded, stratified sample of at most `limit` training images. The test split is
   * sampled too: `min(testSize, max(ceil(limit * 0.2), numClasses))` images (see `limitedTestCount`).
   */
  limit?: number;
  /** Seed for the holdout and the `limit` sample (default 0). Same seed + same files = same split. */
  seed?: number;
}

export interface NamedDatasetSpec extends SamplingOptions {
  name: NamedDatasetName;
}

/** Two IDX files (each gzipped or not), paths relative to DATA_DIR. */
export interface IdxFilePair {
  images: string;
  labels: string;
}

export interface IdxDatasetSpec extends SamplingOptions {
  name: 'idx';
  train: IdxFilePair;
  /** When absent, a seeded stratified holdout of `testFraction` of train becomes the test split. */
  test?: IdxFilePair;
  /** Holdout fraction when `test` is absent; 0 < f < 1 (default 0.15). */
  testFraction?: number;
  /** Images are stored transposed, as in EMNIST (default true, matching the API schema). */
  transposed?: boolean;
  /** Class count; labels must lie in 0..numClasses-1. Default: max label + 1 (over train and test). */
  numClasses?: number;
}

export type DatasetSpec = NamedDatasetSpec | IdxDatasetSpec;

/** A parsed IDX file: `dims` from the header, `data` the payload (row-major, unsigned bytes). */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export interface Split {
  /** count*28*28 floats in [0,1], row-major, upright (already un-transposed). */
  images: Float32Array;
  /** count labels in 0..numClasses-1. */
  labels: Int32Array;
  count: number;
}

export interface LoadedDataset {
  train: Split;
  test: Split;
  numClasses: number;
  labelNames: string[];
  imageShape: [28, 28, 1];
  /** Human-readable description of where the data came from. */
  source: string;
}

/** What `readLabelsInfo` returns: the counts `loadDataset` would produce for the same spec. */
export interface LabelsInfo {
  numClasses: number;
  /** Training images after holdout and `limit`. */
  trainCount: number;
  /** Test images after holdout and `limit`. */
  testCount: number;
}

export interface LoadOptions {
  /** Check the sha256 of official files whose hash is known (default true). */
  verifyChecksums?: boolean;
}

export const IMAGE_ROWS = 28;
export const IMAGE_COLS = 28;
export const IMAGE_SIZE = IMAGE_ROWS * IMAGE_COLS;
export const DEFAULT_TEST_FRACTION = 0.15;
export const DEFAULT_SEED = 0;
