/** Study use cases: create (expand, validate every run, store all, enqueue all), read, cancel, compare. */
import { randomUUID } from 'node:crypto';
import { AppError, notFound } from '../errors.js';
import { SpecError } from '../run-spec/errors.js';
import { expandStudy, type StudyRequest } from '../run-spec/study.js';
import type { RunsService } from '../runs/service.js';
import { newRun, type PreparedRun, type RunPreparer } from '../runs/prepare.js';
import type { Submissions, SubmitOptions, Submitted } from '../runs/submission.js';
import { inScope, type Scope } from '../auth/principal.js';
import { DEFAULT_PRIORITY } from '../run-spec/schema.js';
import type { EpochRow, RunsRepo } from '../store/runs-repo.js';
import type { StudiesRepo } from '../store/studies-repo.js';
import type { RunRecord } from '../runs/records.js';
import { isTerminalStatus } from '../events/run-events.js';
import { compare, type Comparison } from './comparison.js';

export type StudyStatus = 'queued' | 'running' | 'completed' | 'cancelled';

export interface StudyRecord {
  id: string;
  name: string | null;
  status: StudyStatus;
  cancelRequested: boolean;
  owner: string | null;
  createdAt: Date;
  /** When its last run finished; null while any run is queued or running. */
  finishedAt: Date | null;
  runs: RunRecord[];
}

/** A study in a list: its runs reduced to counts by status. */
export interface StudySummary {
  id: string;
  name: string | null;
  status: StudyStatus;
  cancelRequested: boolean;
  createdAt: Date;
  finishedAt: Date | null;
  counts: Record<string, number>;
}

/**
 * A study is finished when its last run is: finishedAt is derived from the runs rather than stored,
 * so it can never disagree with them (a run finishing is the only event that finishes a study, and
 * it happens in the worker, which knows nothing of studies).
 */
export function studyFinishedAt(runs: readonly Pick<RunRecord, 'status' | 'finishedAt'>[]): Date | null {
  if (runs.length === 0 || !runs.every((r) => isTerminalStatus(r.status))) return null;
  let last: Date | null = null;
  for (const r of runs) if (r.finishedAt && (!last || r.finishedAt > last)) last = r.finishedAt;
  return last;
}

export function studyStatus(runs: readonly Pick<RunRecord, 'status'>[], cancelRequested: boolean): StudyStatus {
  if (runs.every((r) => isTerminalStatus(r.status))) return cancelRequested ? 'cancelled' : 'completed';
  return runs.some((r) => r.status !== 'queued') ? 'running' : 'queued';
}

export class StudiesService {
  constructor(
    private readonly deps: {
      repo: RunsRepo;
      studies: StudiesRepo;
      /** Cancels the study's runs. */
      runs: RunsService;
      submissions: Submissions;
      preparer: RunPreparer;
    },
  ) {}

  /** Expands, validates and stores the whole study, then queues its runs (Idempotency-Key: as a run's submission). */
  create(req: StudyRequest, opts: SubmitOptions = {}): Promise<Submitted<StudyRecord>> {
    const owner = opts.owner ?? null;
    const id = randomUUID();
    return this.deps.submissions.submit(
      {
        target: 'studyId',
        prepare: () => this.prepare(req),
        // The study's priority applies to every run.
        runs: (runs) => ({ ids: runs.map((r) => r.run.id), priority: req.priority ?? DEFAULT_PRIORITY }),
        store: (runs, guard) =>
          this.deps.studies.create(
            { id, name: req.name ?? null, request: req, owner },
            runs.map((r) => newRun(r.run, { study: { id, variant: r.variant }, owner })),
            guard,
          ),
        result: () => this.get(id),
        load: (stored) => this.get(stored),
      },
      opts,
    );
  }

  /** Every run of the study, validated: a study is created whole or not at all. */
  private async prepare(req: StudyRequest): Promise<{ variant: string; run: PreparedRun }[]> {
    let variants: ReturnType<typeof expandStudy>;
    try {
      variants = expandStudy(req);
    } catch (err) {
      if (err instanceof SpecError) throw new AppError(422, 'Invalid study', err.message, err.pointer);
      throw err;
    }
    const prepared = [];
    for (const v of variants) {
      const request = req.priority !== undefined ? { ...v.request, priority: req.priority } : v.request;
      prepared.push({ variant: v.label, run: await this.deps.preparer.prepare(request, v.pointer) });
    }
    return prepared;
  }

  /** A study within `scope`; another owner's study is not found. */
  async get(id: string, scope: Scope = null): Promise<StudyRecord> {
    const s = await this.deps.studies.get(id);
    if (!s || !inScope(s.owner, scope)) throw notFound(`study ${id}`);
    return {
      id: s.id,
      name: s.name,
      cancelRequested: s.cancelRequested,
      owner: s.owner,
      createdAt: s.createdAt,
      finishedAt: studyFinishedAt(s.runs),
      runs: s.runs,
      status: studyStatus(s.runs, s.cancelRequested),
    };
  }

  /** Studies within `scope`, newest first. */
  async list(page: { limit: number; offset: number }, scope: Scope = null): Promise<{ items: StudySummary[]; total: number }> {
    const { items, total } = await this.deps.studies.list({ owner: scope, ...page });
    return {
      total,
      items: items.map((s) => {
        const counts: Record<string, number> = {};
        for (const r of s.runs) counts[r.status] = (counts[r.status] ?? 0) + 1;
        return {
          id: s.id,
          name: s.name,
          status: studyStatus(s.runs, s.cancelRequested),
          cancelRequested: s.cancelRequested,
          createdAt: s.createdAt,
          finishedAt: studyFinishedAt(s.runs),
          counts,
        };
      }),
    };
  }

  /** Cancels every run that has not finished (queued ones at once, running ones within a batch). */
  async cancel(id: string, scope: Scope = null): Promise<StudyRecord> {
    const study = await this.get(id, scope);
    await this.deps.studies.requestCancel(id);
    for (const run of study.runs) {
      if (isTerminalStatus(run.status)) continue;
      try {
        await this.deps.runs.cancel(run.id);
      } catch (err) {
        if (!(err instanceof AppError && err.status === 409)) throw err; // finished meanwhile
      }
    }
    return this.get(id);
  }

  /** The study and the epoch rows of all its runs. */
  async curves(id: string, scope: Scope = null): Promise<{ study: StudyRecord; epochs: Map<string, EpochRow[]> }> {
    const study = await this.get(id, scope);
    return { study, epochs: await this.deps.repo.epochsOf(study.runs.map((r) => r.id)) };
  }

  async comparison(id: string, scope: Scope = null): Promise<{ study: StudyRecord; comparison: Comparison }> {
    const { study, epochs } = await this.curves(id, scope);
    const comparison = compare(
      study.runs.map((r) => ({
        id: r.id,
        variant: r.variant,
        seed: r.spec.training.seed,
        majorityRate: r.testMetrics?.majorityRate ?? null,
        status: r.status,
        testLoss: r.testLoss,
        testAccuracy: r.testAccuracy,
        weightStats: r.weightStats,
        epochs: epochs.get(r.id) ?? [],
      })),
    );
    return { study, comparison };
  }
}
