/**
 * A run request made ready to store: validated against its dataset (which gives the number of
 * classes) and normalized, with every default applied. Used by every submission (a run, or each run
 * of a study); nothing is stored here.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { resolve, sep } from 'node:path';
import { AppError } from '../errors.js';
import { SpecError } from '../run-spec/errors.js';
import { normalizeDataset, normalizeSpec } from '../run-spec/normalize.js';
import { DEFAULT_PRIORITY, type RunRequest } from '../run-spec/schema.js';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import { readLabelsInfo } from '../engine/data/load.js';
import { DatasetError, DatasetFileMissingError, DatasetPathError, DatasetSpecError, IdxFormatError } from '../engine/data/errors.js';
import { toDatasetSpec } from '../engine/dataset-spec.js';
import type { DatasetSpec, LabelsInfo } from '../engine/data/types.js';
import type { NewRun } from './records.js';

export interface PreparedRun {
  id: string;
  request: RunRequest;
  spec: NormalizedSpec;
  paramCount: number;
  priority: number;
}

export function newRun(p: PreparedRun, opts: { study?: { id: string; variant: string }; owner?: string | null } = {}): NewRun {
  const { study, owner } = opts;
  return {
    id: p.id,
    name: p.spec.name,
    specSubmitted: p.request,
    spec: p.spec,
    datasetName: p.spec.dataset.name,
    paramCount: p.paramCount,
    owner: owner ?? null,
    priority: p.priority,
    ...(study ? { studyId: study.id, variant: study.variant } : {}),
  };
}

/** `text` with paths under DATA_DIR written relative to it (the data layer does this for its messages; hints are ours). */
function relativePaths(text: string, dataDir: string): string {
  const root = resolve(dataDir);
  return text.replaceAll(root + sep, '').replaceAll(root, '.');
}

/** The IDX file field (e.g. 'train.labels') of a request whose file `absPath` is. */
function idxFieldOf(dataset: unknown, absPath: string, dataDir: string): string | null {
  const d = dataset as Record<string, unknown> | null | undefined;
  if (typeof d !== 'object' || d === null || d.name !== 'idx') return null;
  for (const split of ['train', 'test']) {
    const files = d[split] as Record<string, unknown> | undefined;
    for (const role of ['images', 'labels']) {
      const rel = files?.[role];
      if (typeof rel === 'string' && resolve(dataDir, rel) === absPath) return `${split}.${role}`;
    }
  }
  return null;
}

/** Maps a data-layer complaint about the dataset to the request field at fault. */
function datasetError(err: DatasetError, dataDir: string, dataset?: unknown): AppError {
  const field =
    err instanceof DatasetPathError || err instanceof DatasetFileMissingError
      ? err.field
      : err instanceof DatasetSpecError
        ? err.field
        : err instanceof IdxFormatError
          ? idxFieldOf(dataset, err.file, dataDir)
          : null;
  const named = typeof dataset === 'object' && dataset !== null && 'name' in dataset && dataset.name !== 'idx' ? String(dataset.name) : null;
  // A named dataset has no file fields: the file that is missing is the name's business.
  const pointer = named && err instanceof DatasetFileMissingError ? '/dataset/name' : field ? `/dataset/${field.replaceAll('.', '/')}` : '/dataset';
  const status = err instanceof DatasetFileMissingError ? 422 : 400;
  // The data layer's message already ends with where to get the file: say it once, then the two
  // ways out that need no copying by hand.
  const next =
    named && err instanceof DatasetFileMissingError
      ? ` Or run \`npm run data:fetch -- ${named}\`, or train on the built-in sample now: "dataset": {"name": "emnist-sample"}.`
      : '';
  return new AppError(status, 'Invalid dataset', `${relativePaths(err.message, dataDir)}${next}`, pointer);
}

/**
 * What the dataset of a recent submission held, reused for a moment. A submission otherwise
 * resolves, checks and stamps every file of its dataset again (four files: 16 file system calls
 * through libuv's thread pool, the largest single cost of POST /v1/runs under load), although the
 * label cache behind it already knows the answer. A file replaced in that window is seen by the
 * first submission after it; a failed check is never kept; training reads the files itself and
 * never uses this.
 */
export class RecentDatasets {
  private readonly entries = new Map<string, { info: LabelsInfo; at: number }>();
  private static readonly MAX = 256;

  constructor(private readonly ttlMs: number) {}

  async labelsInfo(spec: DatasetSpec, dataDir: string): Promise<LabelsInfo> {
    // The counts do not depend on the sampling seed, which differs from run to run.
    const { seed: _seed, ...counted } = spec;
    const key = JSON.stringify(counted);
    const hit = this.entries.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.info;
    const info = await readLabelsInfo(spec, dataDir);
    if (this.entries.size >= RecentDatasets.MAX) this.entries.clear();
    this.entries.set(key, { info, at: Date.now() });
    return info;
  }
}

/** How long a dataset check of one submission serves the next ones with the same dataset. */
const DATASET_CHECK_REUSE_MS = 1000;

export class RunPreparer {
  private readonly datasets = new RecentDatasets(DATASET_CHECK_REUSE_MS);

  constructor(private readonly dataDir: string) {}

  /** Validates a run request against its dataset and normalizes it (no I/O but reading label files). */
  async prepare(request: RunRequest, pointerPrefix = ''): Promise<PreparedRun> {
    try {
      return await this.prepareUnprefixed(request);
    } catch (err) {
      if (err instanceof AppError && pointerPrefix && err.pointer !== undefined) {
        throw new AppError(err.status, err.title, err.message, `${pointerPrefix}${err.pointer}`);
      }
      throw err;
    }
  }

  private async prepareUnprefixed(request: RunRequest): Promise<PreparedRun> {
    const seed = request.training?.seed ?? randomInt(0, 2 ** 31 - 1);
    let numClasses: number;
    let trainCount: number;
    try {
      const info = await this.datasets.labelsInfo(toDatasetSpec(normalizeDataset(request.dataset, seed)), this.dataDir);
      numClasses = info.numClasses;
      trainCount = info.trainCount;
    } catch (err) {
      throw this.specError(err, request.dataset);
    }
    let spec: NormalizedSpec;
    let paramCount: number;
    try {
      const n = normalizeSpec(request, { numClasses, seed });
      spec = n.spec;
      paramCount = n.shapes.paramCount;
    } catch (err) {
      throw this.specError(err);
    }
    if (spec.dataset.name === 'idx' && spec.dataset.classNames && spec.dataset.classNames.length !== numClasses) {
      throw new AppError(
        422,
        'Invalid dataset',
        `classNames has ${spec.dataset.classNames.length} names but the labels have ${numClasses} classes`,
        '/dataset/classNames',
      );
    }
    if (Math.floor(trainCount * (1 - spec.training.validationSplit)) < 1) {
      throw new AppError(
        422,
        'Invalid spec',
        `the dataset leaves no training samples after validationSplit ${spec.training.validationSplit}`,
        '/training/validationSplit',
      );
    }
    return { id: randomUUID(), request, spec, paramCount, priority: request.priority ?? DEFAULT_PRIORITY };
  }

  private specError(err: unknown, dataset?: unknown): unknown {
    if (err instanceof SpecError) return new AppError(422, 'Invalid spec', err.message, err.pointer);
    if (err instanceof DatasetError) return datasetError(err, this.dataDir, dataset);
    return err;
  }
}
