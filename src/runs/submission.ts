/**
 * The submission use case that runs and studies share: an Idempotency-Key seen before gives back
 * what its request stored (or a 409 if the body differed); otherwise the request is validated, then
 * stored under the guard (the key claimed and the owner's active-run limit checked in the same
 * transaction), and its runs are enqueued.
 */
import { AppError } from '../errors.js';
import { DEFAULT_PRIORITY } from '../run-spec/schema.js';
import type { RunQueue } from '../queue/producer.js';
import type { RunsRepo } from '../store/runs-repo.js';
import { ActiveRunLimitError, IdempotentReplayError, type IdempotencyRecord, type SubmissionGuard } from '../store/submissions.js';
import type { IdempotencyRequest } from './idempotency.js';

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

/** One kind of submission (a run, a study): how it is validated, stored and read back. */
export interface Submission<P, S, T> {
  /** The field of an idempotency key that points at what it stored. */
  target: 'runId' | 'studyId';
  /** Validates the request; nothing is stored yet. */
  prepare(): Promise<P>;
  /** The runs it adds, queued at `priority` once stored. */
  runs(prepared: P): { ids: string[]; priority: number };
  /** Stores it; `guard` is claimed first in the same transaction and may throw to roll it back. */
  store(prepared: P, guard: SubmissionGuard): Promise<S>;
  /** What the request answers once its runs are queued. */
  result(stored: S, prepared: P): Promise<T>;
  /** What an earlier request with the same key stored (by its id). */
  load(id: string): Promise<T>;
}

export interface SubmissionsDeps {
  repo: RunsRepo;
  queue: RunQueue;
  idempotencyKeys: { find(owner: string, key: string): Promise<IdempotencyRecord | null> };
  /** Unfinished runs an owner may have at once (0: no limit). Runs without an owner are not limited. */
  maxActiveRunsPerOwner?: number;
}

export class Submissions {
  constructor(private readonly deps: SubmissionsDeps) {}

  async submit<P, S, T>(s: Submission<P, S, T>, opts: SubmitOptions = {}): Promise<Submitted<T>> {
    const owner = opts.owner ?? null;
    const replay = async (record: IdempotencyRecord) => ({ value: await s.load(this.replayTarget(record, opts.idempotency, s.target)), replayed: true });
    if (opts.idempotency) {
      const seen = await this.deps.idempotencyKeys.find(owner ?? '', opts.idempotency.key);
      if (seen) return replay(seen);
    }
    const prepared = await s.prepare();
    const { ids, priority } = s.runs(prepared);
    let stored: S;
    try {
      stored = await s.store(prepared, this.guard(owner, ids.length, opts.idempotency));
    } catch (err) {
      if (err instanceof IdempotentReplayError) return replay(err.record);
      throw submissionError(err);
    }
    await this.enqueue(ids, priority);
    return { value: await s.result(stored, prepared), replayed: false };
  }

  /** The checks a submission of `adding` runs makes inside its transaction. */
  private guard(owner: string | null, adding: number, idempotency: IdempotencyRequest | undefined): SubmissionGuard {
    const max = this.deps.maxActiveRunsPerOwner ?? 0;
    return {
      ...(idempotency ? { idempotency: { owner: owner ?? '', key: idempotency.key, requestHash: idempotency.requestHash } } : {}),
      ...(owner !== null && max > 0 ? { activeRuns: { owner, max, adding } } : {}),
    };
  }

  /** The run or study an earlier request with this key stored; 409 unless it was the same request. */
  private replayTarget(record: IdempotencyRecord, idempotency: IdempotencyRequest | undefined, field: 'runId' | 'studyId'): string {
    const target = record[field];
    if (record.requestHash !== idempotency?.requestHash || target === null) {
      throw new AppError(
        409,
        'Idempotency key reused',
        `the Idempotency-Key "${record.key}" was already used with a different request (another body or endpoint); use a new key for a new request`,
      );
    }
    return target;
  }

  /** Enqueues stored runs; a run whose job cannot be queued is marked failed (nothing is left dangling). */
  private async enqueue(ids: string[], priority: number = DEFAULT_PRIORITY): Promise<void> {
    for (const id of ids) {
      try {
        await this.deps.queue.enqueue(id, { priority });
      } catch (err) {
        await this.deps.repo.finish(id, 'failed', { error: `could not enqueue: ${(err as Error).message}` });
        throw err;
      }
    }
  }
}

/** Store-level refusals of a submission, as HTTP problems. */
export function submissionError(err: unknown): unknown {
  if (err instanceof ActiveRunLimitError) {
    return new AppError(
      429,
      'Too many active runs',
      `this request would make ${err.active + err.adding} unfinished (queued or running) runs for your account; ` +
        `the limit is ${err.max} (MAX_ACTIVE_RUNS_PER_KEY): wait for some to finish, or cancel some`,
    );
  }
  return err;
}
