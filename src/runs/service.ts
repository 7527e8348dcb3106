/**
 * The run use cases: submit (through the shared submission use case), read, list, cancel,
 * predict. Routes call these and stay thin.
 */
import { AppError, conflict, notFound } from '../errors.js';
import type { RunRequest } from '../run-spec/schema.js';
import type { Predictor } from '../engine/predict.js';
import { classNamesOf } from './class-names.js';
import type { RunEventBus } from '../events/bus.js';
import { RunJournal } from '../events/run-events.js';
import type { RunQueue } from '../queue/producer.js';
import type { EpochRow, RunsRepo, StoredEvent } from '../store/runs-repo.js';
import type { RunRecord, RunStatus } from './records.js';
import type { IdempotencyRecord } from '../store/submissions.js';
import { inScope, type Scope } from '../auth/principal.js';
import { newRun, RunPreparer } from './prepare.js';
import { Submissions, type SubmitOptions, type Submitted } from './submission.js';

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
  /** Shared with the studies (the context's); built from the deps above when absent. */
  submissions?: Submissions;
  preparer?: RunPreparer;
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

/** Pixels of one 28×28 image. */
const PIXELS = 28 * 28;

export interface Prediction {
  class: number;
  label: string;
  probability: number;
  probabilities: number[];
}

export class RunsService {
  private readonly views: RunViews;
  private readonly journal: RunJournal;
  private readonly submissions: Submissions;
  private readonly preparer: RunPreparer;

  constructor(private readonly deps: RunsServiceDeps) {
    this.views = new RunViews(deps.bus, deps.viewCacheMs ?? 1000);
    this.journal = new RunJournal(deps.repo, deps.bus);
    this.submissions = deps.submissions ?? new Submissions(deps);
    this.preparer = deps.preparer ?? new RunPreparer(deps.dataDir);
  }

  /**
   * Validates the spec against its dataset, stores the run (queued) and enqueues its job. With an
   * Idempotency-Key, a request seen before gives back its run instead (or a 409 if its body differed).
   */
  submit(request: RunRequest, opts: SubmitOptions = {}): Promise<Submitted<RunRecord>> {
    const owner = opts.owner ?? null;
    return this.submissions.submit(
      {
        target: 'runId',
        prepare: () => this.preparer.prepare(request),
        runs: (p) => ({ ids: [p.id], priority: p.priority }),
        store: (p, guard) => this.deps.repo.create(newRun(p, { owner }), { status: 'queued' }, guard),
        result: async (run) => run,
        load: (id) => this.get(id),
      },
      opts,
    );
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
