/**
 * Loading a dataset spec into typed arrays (no tfjs): images as floats in [0,1], upright, and
 * 0-based labels. See types.ts for the spec and result types.
 *
 * Sampling rules (all seeded by `spec.seed`, default 0, via independent sub-streams):
 * - idx spec without test files: a stratified holdout of `testFraction` (default 0.15) of train,
 *   `round(n * testFraction)` images, at least 1 and at most n-1.
 * - `limit`: a stratified sample of `min(limit, trainSize)` training images, and of
 *   `limitedTestCount(limit, testSize, numClasses)` = `min(testSize, max(ceil(limit*0.2), numClasses))`
 *   test images. Only sampled images are converted to floats.
 * - Sampled indices keep file order (ascending); shuffling is the trainer's job.
 */
import { realpath, stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { DatasetFileMissingError, DatasetPathError, DatasetSpecError, IdxFormatError } from './errors.js';
import { readIdxFile, readIdxHeader, type IdxHeader } from './idx.js';
import { resolveDataPath } from './paths.js';
import { deriveSeed, stratifiedSample, stratifiedSplit } from './random.js';
import { DATASET_FILE_ROLES, type DatasetFileRole, datasetDir, downloadHint, getDatasetInfo, isNamedDataset, officialFilePath } from './registry.js';
import {
  DEFAULT_SEED,
  DEFAULT_TEST_FRACTION,
  IMAGE_COLS,
  IMAGE_ROWS,
  IMAGE_SIZE,
  type DatasetSpec,
  type IdxDatasetSpec,
  type LabelsInfo,
  type LoadedDataset,
  type LoadOptions,
  type NamedDatasetSpec,
  type Split,
} from './types.js';

/** The share of `limit` used for the test split (with a floor of one image per class). */
export const LIMIT_TEST_RATIO = 0.2;
/** IDX labels are unsigned bytes, so at most 256 classes. */
export const MAX_CLASSES = 256;

interface FileRef {
  /** Absolute path to read. */
  path: string;
  /** Spec field / role, e.g. 'train.images'. */
  field: string;
  /** Known sha256 of the file, or null. */
  sha256: string | null;
}

interface Plan {
  source: string;
  trainImages: FileRef;
  trainLabels: FileRef;
  test: { images: FileRef; labels: FileRef } | null;
  transposed: boolean;
  labelOffset: number;
  /** Fixed for named datasets; null = infer (idx without numClasses). */
  numClasses: number | null;
  labelNames: readonly string[] | null;
  testFraction: number;
  limit: number | null;
  seed: number;
}

const ROLE_FIELD: Record<DatasetFileRole, string> = {
  trainImages: 'train.images',
  trainLabels: 'train.labels',
  testImages: 'test.images',
  testLabels: 'test.labels',
};

/** Test-split size under `limit`: min(testSize, max(ceil(limit * 0.2), numClasses)). */
export function limitedTestCount(limit: number, testSize: number, numClasses: number): number {
  return Math.min(testSize, Math.max(Math.ceil(limit * LIMIT_TEST_RATIO), numClasses));
}

/** Holdout size for `n` training images: round(n * fraction), clamped to 1..n-1. */
export function holdoutCount(n: number, fraction: number): number {
  if (n < 2) throw new DatasetSpecError(`cannot hold out a test split from ${n} training image(s); give test files`, 'testFraction');
  return Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function checkCommon(spec: DatasetSpec): { limit: number | null; seed: number } {
  const { limit, seed } = spec;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new DatasetSpecError(`dataset.limit must be a positive integer, got ${String(limit)}`, 'limit');
  }
  if (seed !== undefined && !Number.isInteger(seed)) {
    throw new DatasetSpecError(`dataset.seed must be an integer, got ${String(seed)}`, 'seed');
  }
  return { limit: limit ?? null, seed: (seed ?? DEFAULT_SEED) >>> 0 };
}

async function namedFile(dataDir: string, spec: NamedDatasetSpec, role: DatasetFileRole): Promise<FileRef> {
  const info = getDatasetInfo(spec.name);
  const official = info.files[role];
  const path = officialFilePath(dataDir, spec.name, role);
  const field = ROLE_FIELD[role];
  if (await isFile(path)) return { path, field, sha256: official.sha256 };
  const uncompressed = path.replace(/\.gz$/, '');
  if (uncompressed !== path && (await isFile(uncompressed))) return { path: uncompressed, field, sha256: null };
  const hint = downloadHint(spec.name, role, dataDir);
  throw new DatasetFileMissingError({
    field,
    file: official.name,
    path,
    hint,
    message: `dataset "${spec.name}": file ${official.name} (${field}) not found at ${path}. ${hint}`,
  });
}

async function planNamed(spec: NamedDatasetSpec, dataDir: string): Promise<Plan> {
  const { limit, seed } = checkCommon(spec);
  const info = getDatasetInfo(spec.name);
  // Checked together, but a missing file is reported in role order (train images first), not in
  // the order the checks happened to fail: the same request always gets the same error.
  const settled = await Promise.allSettled(DATASET_FILE_ROLES.map((role) => namedFile(dataDir, spec, role)));
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const [trainImages, trainLabels, testImages, testLabels] = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof namedFile>>>).value);
  return {
    source: `${spec.name} (${datasetDir(dataDir, spec.name)})`,
    trainImages: trainImages as FileRef,
    trainLabels: trainLabels as FileRef,
    test: { images: testImages as FileRef, labels: testLabels as FileRef },
    transposed: info.transposed,
    labelOffset: info.labelOffset,
    numClasses: info.numClasses,
    labelNames: info.labelNames,
    testFraction: DEFAULT_TEST_FRACTION,
    limit,
    seed,
  };
}

async function planIdx(spec: IdxDatasetSpec, dataDir: string): Promise<Plan> {
  const { limit, seed } = checkCommon(spec);
  const testFraction = spec.testFraction ?? DEFAULT_TEST_FRACTION;
  if (typeof testFraction !== 'number' || !(testFraction > 0 && testFraction < 1)) {
    throw new DatasetSpecError(`dataset.testFraction must be > 0 and < 1, got ${String(testFraction)}`, 'testFraction');
  }
  if (spec.numClasses !== undefined && (!Number.isInteger(spec.numClasses) || spec.numClasses < 2 || spec.numClasses > MAX_CLASSES)) {
    throw new DatasetSpecError(`dataset.numClasses must be an integer in 2..${MAX_CLASSES}, got ${String(spec.numClasses)}`, 'numClasses');
  }
  if (spec.transposed !== undefined && typeof spec.transposed !== 'boolean') {
    throw new DatasetSpecError('dataset.transposed must be a boolean', 'transposed');
  }
  if (typeof spec.train !== 'object' || spec.train === null) throw new DatasetSpecError('dataset.train must be an object { images, labels }', 'train');
  const ref = async (rel: string, field: string): Promise<FileRef> => ({ path: await resolveIdxPath(dataDir, rel, field), field, sha256: null });
  const trainImages = await ref(spec.train.images, 'train.images');
  const trainLabels = await ref(spec.train.labels, 'train.labels');
  let test: Plan['test'] = null;
  if (spec.test !== undefined) {
    if (typeof spec.test !== 'object' || spec.test === null) throw new DatasetSpecError('dataset.test must be an object { images, labels }', 'test');
    test = { images: await ref(spec.test.images, 'test.images'), labels: await ref(spec.test.labels, 'test.labels') };
  }
  const parts = [`idx train=${spec.train.images}`];
  parts.push(spec.test ? `test=${spec.test.images}` : `holdout ${testFraction}`);
  return {
    source: parts.join(', '),
    trainImages,
    trainLabels,
    test,
    transposed: spec.transposed ?? true,
    labelOffset: 0,
    numClasses: spec.numClasses ?? null,
    labelNames: null,
    testFraction,
    limit,
    seed,
  };
}

/** What the file system can say about a path a client chose: the client's mistake, not the server's. */
const PATH_ERRNO: Record<string, string> = {
  ENAMETOOLONG: 'is too long a path for the file system',
  ELOOP: 'goes through a symbolic link loop (or too many links)',
  EACCES: 'cannot be read (permission denied)',
  EPERM: 'cannot be read (permission denied)',
  EISDIR: 'is a directory, not a file',
  EINVAL: 'is not a usable path',
};

async function resolveIdxPath(dataDir: string, rel: string, field: string): Promise<string> {
  try {
    return await resolveDataPath(dataDir, rel, field);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const reason = typeof code === 'string' ? PATH_ERRNO[code] : undefined;
    if (reason) throw new DatasetPathError(field, rel, reason);
    throw err;
  }
}

const realRoots = new Map<string, Promise<string | null>>();

/**
 * `text` with every absolute path under DATA_DIR written relative to it: messages reach API clients
 * and stored run errors, and where the server keeps its files is none of their business.
 */
export async function relativeToDataDir(text: string, dataDir: string): Promise<string> {
  const root = resolve(dataDir);
  let real = realRoots.get(root);
  if (!real) {
    real = realpath(root).catch(() => null);
    realRoots.set(root, real);
  }
  const roots = [root, await real].filter((r): r is string => r !== null).sort((a, b) => b.length - a.length);
  let out = text;
  for (const r of roots) out = out.replaceAll(r + sep, '').replaceAll(r, '.');
  return out;
}

/** Rewrites an error's message with paths relative to DATA_DIR (see relativeToDataDir), then throws it. */
async function rethrowRelative(err: unknown, dataDir: string): Promise<never> {
  if (err instanceof Error) err.message = await relativeToDataDir(err.message, dataDir);
  throw err;
}

async function makePlan(spec: DatasetSpec, dataDir: string): Promise<Plan> {
  if (typeof spec !== 'object' || spec === null) throw new DatasetSpecError('dataset spec must be an object', null);
  if (spec.name === 'idx') return planIdx(spec, dataDir);
  if (typeof spec.name === 'string' && isNamedDataset(spec.name)) return planNamed(spec, dataDir);
  throw new DatasetSpecError(`unknown dataset name ${JSON.stringify((spec as { name?: unknown }).name)}`, 'name');
}

/** What a labels file holds, once read: the labels (offset applied) and the largest of them. */
interface LabelFile {
  labels: Int32Array;
  max: number;
}

/**
 * Label files and image headers already read, by path, the file's stamp (size, mtime, ctime, inode)
 * and how it was read: submissions validate the same few datasets over and over, and reading and
 * inflating the label files each time made POST /v1/runs slow. A changed file has another stamp;
 * a failed read is not kept; concurrent reads of one file share one promise. Arrays are shared:
 * callers only read them.
 */
const FILE_CACHE_MAX = 32;
const labelFiles = new Map<string, Promise<LabelFile>>();
const imageHeaders = new Map<string, Promise<IdxHeader>>();

async function stampOf(path: string): Promise<string> {
  const st = await stat(path);
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
}

function remember<T>(cache: Map<string, Promise<T>>, key: string, read: () => Promise<T>): Promise<T> {
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // most recently used goes last
    cache.set(key, hit);
    return hit;
  }
  const p = read();
  cache.set(key, p);
  p.catch(() => cache.delete(key));
  while (cache.size > FILE_CACHE_MAX) cache.delete(cache.keys().next().value as string);
  return p;
}

async function readLabels(ref: FileRef, offset: number, verify: boolean): Promise<LabelFile> {
  const sha = verify ? ref.sha256 : null;
  const key = `${ref.path}\0${await stampOf(ref.path)}\0${offset}\0${sha ?? '-'}`;
  return remember(labelFiles, key, async () => {
    const idx = await readIdxFile(ref.path, { kind: 'labels', expectedSha256: sha });
    const out = new Int32Array(idx.data.length);
    let max = -1;
    for (let i = 0; i < out.length; i++) {
      const v = (idx.data[i] as number) - offset;
      if (v < 0) {
        throw new DatasetSpecError(`${ref.path}: label ${v + offset} at index ${i} is below the first label ${offset} of this dataset`, ref.field);
      }
      out[i] = v;
      if (v > max) max = v;
    }
    return { labels: out, max };
  });
}

async function readImageHeader(path: string): Promise<IdxHeader> {
  return remember(imageHeaders, `${path}\0${await stampOf(path)}`, () => readIdxHeader(path, 'images'));
}

function checkRange(file: LabelFile, numClasses: number, plan: Plan, ref: FileRef): void {
  if (file.max < numClasses) return;
  const labels = file.labels;
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i] as number;
    if (v >= numClasses) {
      throw new DatasetSpecError(
        `${ref.path}: label ${v + plan.labelOffset} at index ${i} is out of range for ${numClasses} classes` +
          (plan.labelOffset ? ` (labels ${plan.labelOffset}..${numClasses - 1 + plan.labelOffset})` : ` (labels 0..${numClasses - 1})`),
        ref.field,
      );
    }
  }
}

/** Read and validate the label files; infer or check the class count. */
interface AllLabels {
  train: Int32Array;
  test: Int32Array | null;
  numClasses: number;
}

async function readAllLabels(plan: Plan, verify: boolean): Promise<AllLabels> {
  const [train, test] = await Promise.all([
    readLabels(plan.trainLabels, plan.labelOffset, verify),
    plan.test ? readLabels(plan.test.labels, plan.labelOffset, verify) : null,
  ]);
  if (train.labels.length === 0) throw new DatasetSpecError(`${plan.trainLabels.path}: no training labels`, plan.trainLabels.field);
  if (test && test.labels.length === 0 && plan.test) throw new DatasetSpecError(`${plan.test.labels.path}: no test labels`, plan.test.labels.field);
  let numClasses = plan.numClasses;
  if (numClasses === null) {
    numClasses = Math.max(train.max, test ? test.max : -1) + 1;
    if (numClasses < 2) {
      throw new DatasetSpecError(`${plan.trainLabels.path}: all labels are 0; a classifier needs at least 2 classes`, plan.trainLabels.field);
    }
  }
  checkRange(train, numClasses, plan, plan.trainLabels);
  if (test && plan.test) checkRange(test, numClasses, plan, plan.test.labels);
  return { train: train.labels, test: test?.labels ?? null, numClasses };
}

function iota(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

function gatherLabels(labels: Int32Array, idx: Int32Array): Int32Array {
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = labels[idx[i] as number] as number;
  return out;
}

/** Stratified sub-sample of `idx` (itself indices into `labels`), `count` of them, sorted. */
function subSample(labels: Int32Array, idx: Int32Array, count: number, seed: number): Int32Array {
  if (count >= idx.length) return idx;
  const pick = stratifiedSample(gatherLabels(labels, idx), count, seed);
  const out = new Int32Array(pick.length);
  for (let i = 0; i < pick.length; i++) out[i] = idx[pick[i] as number] as number;
  return out;
}

interface Selection {
  /** Indices into the train file. */
  train: Int32Array;
  /** Indices into the test file, or into the train file when `holdout`. */
  test: Int32Array;
  holdout: boolean;
}

function select(plan: Plan, train: Int32Array, test: Int32Array | null, numClasses: number): Selection {
  let trainIdx: Int32Array;
  let testIdx: Int32Array;
  let testLabels: Int32Array;
  if (test === null) {
    const split = stratifiedSplit(train, holdoutCount(train.length, plan.testFraction), deriveSeed(plan.seed, 1));
    trainIdx = split.train;
    testIdx = split.test;
    testLabels = train;
  } else {
    trainIdx = iota(train.length);
    testIdx = iota(test.length);
    testLabels = test;
  }
  if (plan.limit !== null) {
    trainIdx = subSample(train, trainIdx, Math.min(plan.limit, trainIdx.length), deriveSeed(plan.seed, 2));
    testIdx = subSample(testLabels, testIdx, limitedTestCount(plan.limit, testIdx.length, numClasses), deriveSeed(plan.seed, 3));
  }
  return { train: trainIdx, test: testIdx, holdout: test === null };
}

function checkImageDims(dims: number[], ref: FileRef, labelsRef: FileRef, labelCount: number): void {
  const [n, rows, cols] = dims as [number, number, number];
  if (rows !== IMAGE_ROWS || cols !== IMAGE_COLS) {
    throw new IdxFormatError(ref.path, `expected ${IMAGE_ROWS}x${IMAGE_COLS} images, got ${rows}x${cols}`);
  }
  if (n !== labelCount) {
    throw new DatasetSpecError(`${ref.path} holds ${n} images but ${labelsRef.path} holds ${labelCount} labels`, ref.field);
  }
}

async function readImages(ref: FileRef, labelsRef: FileRef, labelCount: number, verify: boolean): Promise<Uint8Array> {
  const idx = await readIdxFile(ref.path, { kind: 'images', expectedSha256: verify ? ref.sha256 : null });
  checkImageDims(idx.dims, ref, labelsRef, labelCount);
  return idx.data;
}

const LUT = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = v / 255;
  return t;
})();

/**
 * Convert the images at `idx` (of n*28*28 stored bytes) to floats in [0,1], row-major, upright:
 * when `transposed`, stored pixel (r, c) is upright pixel (c, r).
 */
export function toFloatImages(pixels: Uint8Array, idx: Int32Array, transposed: boolean): Float32Array {
  const out = new Float32Array(idx.length * IMAGE_SIZE);
  for (let k = 0; k < idx.length; k++) {
    const s = (idx[k] as number) * IMAGE_SIZE;
    const o = k * IMAGE_SIZE;
    if (transposed) {
      for (let r = 0; r < IMAGE_ROWS; r++) {
        const or = o + r * IMAGE_COLS;
        for (let c = 0; c < IMAGE_COLS; c++) out[or + c] = LUT[pixels[s + c * IMAGE_ROWS + r] as number] as number;
      }
    } else {
      for (let p = 0; p < IMAGE_SIZE; p++) out[o + p] = LUT[pixels[s + p] as number] as number;
    }
  }
  return out;
}

function makeSplit(pixels: Uint8Array, labels: Int32Array, idx: Int32Array, transposed: boolean): Split {
  return { images: toFloatImages(pixels, idx, transposed), labels: gatherLabels(labels, idx), count: idx.length };
}

/**
 * The spec's plan and its labels (checksums verified unless turned off), handed to `use`; what
 * either throws names its paths relative to DATA_DIR.
 */
async function withLabels<T>(
  spec: DatasetSpec,
  dataDir: string,
  options: LoadOptions,
  use: (plan: Plan, labels: AllLabels, verify: boolean) => Promise<T>,
): Promise<T> {
  try {
    const verify = options.verifyChecksums ?? true;
    const plan = await makePlan(spec, dataDir);
    return await use(plan, await readAllLabels(plan, verify), verify);
  } catch (err) {
    return rethrowRelative(err, dataDir);
  }
}

/**
 * Load a dataset: validate the spec and files, un-transpose, normalise to [0,1], hold out / sample.
 * @throws DatasetSpecError, DatasetPathError, DatasetFileMissingError, DatasetChecksumError, IdxFormatError
 */
export async function loadDataset(spec: DatasetSpec, dataDir: string, options: LoadOptions = {}): Promise<LoadedDataset> {
  return withLabels(spec, dataDir, options, loadPlanned);
}

async function loadPlanned(plan: Plan, labels: AllLabels, verify: boolean): Promise<LoadedDataset> {
  const sel = select(plan, labels.train, labels.test, labels.numClasses);

  let trainPixels: Uint8Array | null = await readImages(plan.trainImages, plan.trainLabels, labels.train.length, verify);
  const train = makeSplit(trainPixels, labels.train, sel.train, plan.transposed);
  let test: Split;
  if (sel.holdout || !plan.test || !labels.test) {
    test = makeSplit(trainPixels, labels.train, sel.test, plan.transposed);
    trainPixels = null;
  } else {
    trainPixels = null; // let the train bytes go before reading the test file
    const testPixels = await readImages(plan.test.images, plan.test.labels, labels.test.length, verify);
    test = makeSplit(testPixels, labels.test, sel.test, plan.transposed);
  }

  let source = plan.source;
  if (plan.limit !== null) source += `, limit ${plan.limit} (seed ${plan.seed})`;
  else if (sel.holdout) source += ` (seed ${plan.seed})`;
  return {
    train,
    test,
    numClasses: labels.numClasses,
    labelNames: plan.labelNames ? [...plan.labelNames] : Array.from({ length: labels.numClasses }, (_, i) => String(i)),
    imageShape: [IMAGE_ROWS, IMAGE_COLS, 1],
    source,
  };
}

/**
 * Cheap validation for submit time: checks the paths, that every file exists, reads the label
 * files in full (verifying their checksums when known) and only the headers of the image files.
 * Returns the class count and the split sizes `loadDataset` would produce for this spec.
 */
export async function readLabelsInfo(spec: DatasetSpec, dataDir: string, options: LoadOptions = {}): Promise<LabelsInfo> {
  return withLabels(spec, dataDir, options, labelsInfoOf);
}

async function labelsInfoOf(plan: Plan, labels: AllLabels): Promise<LabelsInfo> {
  const [trainHeader, testHeader] = await Promise.all([readImageHeader(plan.trainImages.path), plan.test ? readImageHeader(plan.test.images.path) : null]);
  checkImageDims(trainHeader.dims, plan.trainImages, plan.trainLabels, labels.train.length);
  if (plan.test && labels.test && testHeader) checkImageDims(testHeader.dims, plan.test.images, plan.test.labels, labels.test.length);
  let trainCount = labels.train.length;
  let testCount: number;
  if (labels.test) testCount = labels.test.length;
  else {
    testCount = holdoutCount(trainCount, plan.testFraction);
    trainCount -= testCount;
  }
  if (plan.limit !== null) {
    testCount = limitedTestCount(plan.limit, testCount, labels.numClasses);
    trainCount = Math.min(plan.limit, trainCount);
  }
  return { numClasses: labels.numClasses, trainCount, testCount };
}
