/**
 * The run use cases: submit, read, list, cancel. The only place that talks to the store, the
 * queue and the event bus together; routes call these and stay thin.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { resolve, sep } from 'node:path';
import { AppError, conflict, notFound } from '../errors.js';
import { SpecError } from '../spec/errors.js';
import { normalizeDataset, normalizeSpec } from '../spec/normalize.js';
import { DEFAULT_PRIORITY, type RunRequest } from '../spec/schema.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import { readLabelsInfo } from '../engine/data/load.js';
import { DatasetError, DatasetFileMissingError, DatasetPathError, DatasetSpecError, IdxFormatError } from '../engine/data/errors.js';
import { toDatasetSpec } from '../engine/dataset-spec.js';
import type { Predictor } from '../engine/predict.js';
import { classNamesOf } from './class-names.js';
import type { RunEventBus } from '../events/bus.js';
import { RunJournal } from '../events/run-events.js';
import type { RunQueue } from '../queue/producer.js';
import type { EpochRow, RunsRepo, StoredEvent } from '../store/runs-repo.js';
import type { NewRun, RunRecord, RunStatus } from './records.js';
import { ActiveRunLimit, IdempotentReplay, type IdempotencyRecord, type SubmissionGuard } from '../store/submissions.js';
import { inScope, type Scope } from '../auth/principal.js';
import type { IdempotencyRequest } from './idempotency.js';

export interface RunsServiceDeps {
  repo: RunsRepo;
  queue: RunQueue;
  bus: RunEventBus;
  predictor: Predictor;
  dataDir: string;
  idempotencyKeys: { find(owner: string, key: string): Promise<IdempotencyRecord | null> };
  /** Unfinished runs an owner may have at once (0: no limit). Runs without an owner are not limited. */
  maxActiveRunsPerOwner?: number;
  /** How long `view` may answer from memory (see RunViews); 0: always from the store. */
  viewCacheMs?: number;
}

/**
 * Runs as GET /v1/runs/{id} reads them, kept in memory for a moment. Polling a run's status is the
 * API's hottest read, and one database round trip per poll made it 10× slower than Fastify itself.
 *
 * An entry goes as soon as anything about its run changes: every change a worker makes comes with
 * an event, published on the run's channel (heard here through one pattern subscription), and a
 * cancel from any replica is announced on the cancel channel. A read that raced with such a change
 * is not kept (the invalidation counter moved while it ran). `ttlMs` bounds what a lost message could
 * leave stale (Redis away), and the cache only starts once the subscriptions are live.
 */
class RunViews {
  private readonly entries = new Map<string, { run: RunRecord; at: number }>();
  private invalidations = 0;
  private watching: Promise<void> | undefined;
  /** The subscriptions are active: entries can be trusted to go when their run changes. */
  private live = false;
  private static readonly MAX = 10_000;

  constructor(
    private readonly bus: RunEventBus,
    private readonly ttlMs: number,
  ) {}

  invalidate(id: string): void {
    this.invalidations++;
    this.entries.delete(id);
  }

  /** Starts the subscriptions, in the background: a read never waits for Redis (it may be away). */
  private watch(): void {
    this.watching ??= Promise.all([this.bus.onAnyRunEvent((id) => this.invalidate(id)), this.bus.onCancel((id) => this.invalidate(id))]).then(
      () => {
        this.live = true;
      },
      () => {
        this.watching = undefined; // try again on a later read
      },
    );
  }

  async get(id: string, read: () => Promise<RunRecord | null>): Promise<RunRecord | null> {
    if (this.ttlMs <= 0) return read();
    this.watch();
    if (!this.live) return read();
    const hit = this.entries.get(id);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.run;
    const before = this.invalidations;
    const run = await read();
    if (run && this.invalidations === before) {
      if (this.entries.size >= RunViews.MAX) this.entries.clear();
      this.entries.set(id, { run, at: Date.now() });
    }
    return run;
  }
}

export interface SubmitOptions {
  /** The API key's owner, stored on the run; null with auth off. */
  owner?: string | null;
  idempotency?: IdempotencyRequest;
}

/** What a POST stored, or what an earlier POST with the same Idempotency-Key stored. */
export interface Submitted<T> {
  value: T;
  replayed: boolean;
}

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

/** Pixels of one 28×28 image. */
const PIXELS = 28 * 28;

export interface Prediction {
  class: number;
  label: string;
  probability: number;
  probabilities: number[];
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

export class RunsService {
  private readonly views: RunViews;
  private readonly journal: RunJournal;

  constructor(private readonly deps: RunsServiceDeps) {
    this.views = new RunViews(deps.bus, deps.viewCacheMs ?? 1000);
    this.journal = new RunJournal(deps.repo, deps.bus);
  }

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
      throw new AppError(422, 'Invalid dataset', `classNames has ${spec.dataset.classNames.length} names but the labels have ${numClasses} classes`, '/dataset/classNames');
    }
    if (Math.floor(trainCount * (1 - spec.training.validationSplit)) < 1) {
      throw new AppError(422, 'Invalid spec', `the dataset leaves no training samples after validationSplit ${spec.training.validationSplit}`, '/training/validationSplit');
    }
    return { id: randomUUID(), request, spec, paramCount, priority: request.priority ?? DEFAULT_PRIORITY };
  }

  /**
   * Validates the spec against its dataset, stores the run (queued) and enqueues its job. With an
   * Idempotency-Key, a request seen before gives back its run instead (or a 409 if its body differed).
   */
  async submit(request: RunRequest, opts: SubmitOptions = {}): Promise<Submitted<RunRecord>> {
    const owner = opts.owner ?? null;
    const guard = this.guard(owner, 1, opts.idempotency);
    const replay = async (record: IdempotencyRecord) => ({ value: await this.get(this.replayTarget(record, guard, 'runId')), replayed: true });
    if (guard.idempotency) {
      const seen = await this.deps.idempotencyKeys.find(guard.idempotency.owner, guard.idempotency.key);
      if (seen) return replay(seen);
    }
    const prepared = await this.prepare(request);
    let run: RunRecord;
    try {
      run = await this.deps.repo.create(newRun(prepared, { owner }), { status: 'queued' }, guard);
    } catch (err) {
      if (err instanceof IdempotentReplay) return replay(err.record);
      throw submissionError(err);
    }
    await this.enqueue([prepared.id], prepared.priority);
    return { value: run, replayed: false };
  }

  /** The checks a submission of `adding` runs makes inside its transaction. */
  guard(owner: string | null, adding: number, idempotency: IdempotencyRequest | undefined): SubmissionGuard {
    const max = this.deps.maxActiveRunsPerOwner ?? 0;
    return {
      ...(idempotency ? { idempotency: { owner: owner ?? '', key: idempotency.key, requestHash: idempotency.requestHash } } : {}),
      ...(owner !== null && max > 0 ? { activeRuns: { owner, max, adding } } : {}),
    };
  }

  /** The run or study an earlier request with this key stored; 409 unless it was the same request. */
  replayTarget(record: IdempotencyRecord, guard: SubmissionGuard, field: 'runId' | 'studyId'): string {
    const target = record[field];
    if (record.requestHash !== guard.idempotency?.requestHash || target === null) {
      throw new AppError(
        409,
        'Idempotency key reused',
        `the Idempotency-Key "${record.key}" was already used with a different request (another body or endpoint); use a new key for a new request`,
      );
    }
    return target;
  }

  /** Enqueues stored runs; a run whose job cannot be queued is marked failed (nothing is left dangling). */
  async enqueue(ids: string[], priority: number = DEFAULT_PRIORITY): Promise<void> {
    for (const id of ids) {
      try {
        await this.deps.queue.enqueue(id, { priority });
      } catch (err) {
        await this.deps.repo.finish(id, 'failed', { error: `could not enqueue: ${(err as Error).message}` });
        throw err;
      }
    }
  }

  private specError(err: unknown, dataset?: unknown): unknown {
    if (err instanceof SpecError) return new AppError(422, 'Invalid spec', err.message, err.pointer);
    if (err instanceof DatasetError) return datasetError(err, this.deps.dataDir, dataset);
    return err;
  }

  /** A run within `scope`; another owner's run is not found. */
  async get(id: string, scope: Scope = null): Promise<RunRecord> {
    const run = await this.deps.repo.get(id);
    if (!run || !inScope(run.owner, scope)) throw notFound(`run ${id}`);
    return run;
  }

  /**
   * A run within `scope`, for reading only: may come from memory (RunViews), at most a moment old and
   * never older than a change whose event this process heard. Use cases that act on a run use `get`.
   */
  async view(id: string, scope: Scope = null): Promise<RunRecord> {
    const run = await this.views.get(id, () => this.deps.repo.get(id));
    if (!run || !inScope(run.owner, scope)) throw notFound(`run ${id}`);
    return run;
  }

  list(opts: { status?: RunStatus; limit: number; offset: number }, scope: Scope = null): Promise<{ items: RunRecord[]; total: number }> {
    return this.deps.repo.list({ ...opts, owner: scope });
  }

  async metrics(id: string, scope: Scope = null): Promise<{ run: RunRecord; epochs: EpochRow[] }> {
    const run = await this.get(id, scope);
    return { run, epochs: await this.deps.repo.epochs(id) };
  }

  async events(id: string, afterSeq: number, scope: Scope = null): Promise<StoredEvent[]> {
    await this.get(id, scope);
    return this.deps.repo.events(id, afterSeq);
  }

  /**
   * Cancels a queued run at once; flags a running one, which its worker stops within one batch
   * (any API instance can do this: the flag is in the database and the signal goes over Redis).
   */
  async cancel(id: string, scope: Scope = null): Promise<RunRecord> {
    const run = await this.get(id, scope);
    this.views.invalidate(id);
    if (run.status === 'queued' && (await this.deps.repo.cancelQueued(id))) {
      this.views.invalidate(id); // this process need not wait for the event to come back from Redis
      await this.deps.queue.removeWaiting(id);
      await this.journal.record(id, { type: 'cancelled', data: { reason: 'cancelled while queued' } });
      return this.get(id);
    }
    if (await this.deps.repo.requestCancel(id)) {
      this.views.invalidate(id);
      await this.deps.bus.publishCancel(id);
      return this.get(id);
    }
    const now = await this.get(id);
    if (now.status === 'queued' || now.status === 'running') return now; // raced with a state change; the flag holds
    throw conflict(`run ${id} is already ${now.status}`);
  }

  async model(id: string, scope: Scope = null) {
    const run = await this.get(id, scope);
    const artifact = await this.deps.repo.artifact(id);
    if (!artifact) throw new AppError(409, 'Conflict', `run ${id} has no model yet (status ${run.status})`);
    return artifact;
  }

  /**
   * Class probabilities and the top class (as its character) for upright 28×28 images in [0, 1].
   * `images` is decoded only once the run is known to be the caller's and to have a model: a
   * request body is untrusted work, and nobody should get it done for a run they cannot use.
   */
  async predict(id: string, images: () => Float32Array, scope: Scope = null): Promise<{ classNames: string[]; predictions: Prediction[] }> {
    const run = await this.get(id, scope);
    const artifact = await this.deps.repo.artifact(id);
    if (!artifact) throw new AppError(409, 'Conflict', `run ${id} has no model yet (status ${run.status})`);
    const pixels = images();
    const classNames = classNamesOf(run.spec);
    const probs = await this.deps.predictor.predict(artifact, pixels, pixels.length / PIXELS);
    const predictions = probs.map((p) => {
      let best = 0;
      for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
      return { class: best, label: classNames[best] ?? String(best), probability: p[best]!, probabilities: Array.from(p) };
    });
    return { classNames, predictions };
  }
}

/** Store-level refusals of a submission, as HTTP problems. */
export function submissionError(err: unknown): unknown {
  if (err instanceof ActiveRunLimit) {
    return new AppError(
      429,
      'Too many active runs',
      `this request would make ${err.active + err.adding} unfinished (queued or running) runs for your account; ` +
        `the limit is ${err.max} (MAX_ACTIVE_RUNS_PER_KEY): wait for some to finish, or cancel some`,
    );
  }
  return err;
}
