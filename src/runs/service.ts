/**
 * The run use cases: submit, read, list, cancel. The only place that talks to the store, the
 * queue and the event bus together; routes call these and stay thin.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { AppError, conflict, notFound } from '../errors.js';
import { SpecError } from '../spec/errors.js';
import { normalizeDataset, normalizeSpec } from '../spec/normalize.js';
import type { RunRequest } from '../spec/schema.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import { readLabelsInfo } from '../engine/data/load.js';
import { DatasetError, DatasetFileMissingError, DatasetPathError, DatasetSpecError } from '../engine/data/errors.js';
import { toDatasetSpec } from '../engine/dataset-spec.js';
import type { Predictor } from '../engine/predict.js';
import { classNamesOf } from './class-names.js';
import type { RunEventBus } from '../events/bus.js';
import type { RunQueue } from '../queue/producer.js';
import type { EpochRow, NewRun, Run, RunsRepo, RunStatus, StoredEvent } from '../store/runs-repo.js';

export interface RunsServiceDeps {
  repo: RunsRepo;
  queue: RunQueue;
  bus: RunEventBus;
  predictor: Predictor;
  dataDir: string;
}

export interface PreparedRun {
  id: string;
  request: RunRequest;
  spec: NormalizedSpec;
  paramCount: number;
}

export function newRun(p: PreparedRun, study?: { id: string; variant: string }): NewRun {
  return {
    id: p.id,
    name: p.spec.name,
    specSubmitted: p.request,
    spec: p.spec,
    datasetName: p.spec.dataset.name,
    paramCount: p.paramCount,
    ...(study ? { studyId: study.id, variant: study.variant } : {}),
  };
}

export interface Prediction {
  class: number;
  label: string;
  probability: number;
  probabilities: number[];
}

/** Maps a data-layer complaint about the dataset to the request field at fault. */
function datasetError(err: DatasetError): AppError {
  const field =
    err instanceof DatasetPathError || err instanceof DatasetFileMissingError
      ? err.field
      : err instanceof DatasetSpecError
        ? err.field
        : null;
  const pointer = field ? `/dataset/${field.replaceAll('.', '/')}` : '/dataset';
  const status = err instanceof DatasetFileMissingError ? 422 : 400;
  const hint = err instanceof DatasetFileMissingError && err.hint ? ` (${err.hint})` : '';
  return new AppError(status, 'Invalid dataset', `${err.message}${hint}`, pointer);
}

export class RunsService {
  constructor(private readonly deps: RunsServiceDeps) {}

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
      const info = await readLabelsInfo(toDatasetSpec(normalizeDataset(request.dataset, seed)), this.deps.dataDir);
      numClasses = info.numClasses;
      trainCount = info.trainCount;
    } catch (err) {
      throw this.specError(err);
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
      throw new AppError(422, 'Invalid dataset', `classNames has ${spec.dataset.classNames.length} names but the labels have ${numClasses} classes`, '/dataset/classNames');
    }
    if (Math.floor(trainCount * (1 - spec.training.validationSplit)) < 1) {
      throw new AppError(422, 'Invalid spec', `the dataset leaves no training samples after validationSplit ${spec.training.validationSplit}`, '/training/validationSplit');
    }
    return { id: randomUUID(), request, spec, paramCount };
  }

  /** Validates the spec against its dataset, stores the run (queued) and enqueues its job. */
  async submit(request: RunRequest): Promise<Run> {
    const prepared = await this.prepare(request);
    const run = await this.deps.repo.create(newRun(prepared), { status: 'queued' });
    await this.enqueue([prepared.id]);
    return run;
  }

  /** Enqueues stored runs; a run whose job cannot be queued is marked failed (nothing is left dangling). */
  async enqueue(ids: string[]): Promise<void> {
    for (const id of ids) {
      try {
        await this.deps.queue.enqueue(id);
      } catch (err) {
        await this.deps.repo.finish(id, 'failed', { error: `could not enqueue: ${(err as Error).message}` });
        throw err;
      }
    }
  }

  private specError(err: unknown): unknown {
    if (err instanceof SpecError) return new AppError(422, 'Invalid spec', err.message, err.pointer);
    if (err instanceof DatasetError) return datasetError(err);
    return err;
  }

  async get(id: string): Promise<Run> {
    const run = await this.deps.repo.get(id);
    if (!run) throw notFound(`run ${id}`);
    return run;
  }

  list(opts: { status?: RunStatus; limit: number; offset: number }): Promise<{ items: Run[]; total: number }> {
    return this.deps.repo.list(opts);
  }

  async metrics(id: string): Promise<{ run: Run; epochs: EpochRow[] }> {
    const run = await this.get(id);
    return { run, epochs: await this.deps.repo.epochs(id) };
  }

  async events(id: string, afterSeq: number): Promise<StoredEvent[]> {
    await this.get(id);
    return this.deps.repo.events(id, afterSeq);
  }

  /**
   * Cancels a queued run at once; flags a running one, which its worker stops within one batch
   * (any API instance can do this: the flag is in the database and the signal goes over Redis).
   */
  async cancel(id: string): Promise<Run> {
    const run = await this.get(id);
    if (run.status === 'queued' && (await this.deps.repo.cancelQueued(id))) {
      await this.deps.queue.removeWaiting(id);
      const event = await this.deps.repo.appendEvent(id, 'cancelled', { reason: 'cancelled while queued' });
      await this.deps.bus.publish(id, event);
      return this.get(id);
    }
    if (await this.deps.repo.requestCancel(id)) {
      await this.deps.bus.publishCancel(id);
      return this.get(id);
    }
    const now = await this.get(id);
    if (now.status === 'queued' || now.status === 'running') return now; // raced with a state change; the flag holds
    throw conflict(`run ${id} is already ${now.status}`);
  }

  async model(id: string) {
    const run = await this.get(id);
    const artifact = await this.deps.repo.artifact(id);
    if (!artifact) throw new AppError(409, 'Conflict', `run ${id} has no model yet (status ${run.status})`);
    return artifact;
  }

  /** Class probabilities and the top class (as its character) for upright 28×28 images in [0, 1]. */
  async predict(id: string, images: Float32Array, count: number): Promise<{ classNames: string[]; predictions: Prediction[] }> {
    const run = await this.get(id);
    const artifact = await this.model(id);
    const classNames = classNamesOf(run.spec as unknown as NormalizedSpec);
    const probs = await this.deps.predictor.predict(artifact, images, count);
    const predictions = probs.map((p) => {
      let best = 0;
      for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
      return { class: best, label: classNames[best] ?? String(best), probability: p[best]!, probabilities: Array.from(p) };
    });
    return { classNames, predictions };
  }
}
