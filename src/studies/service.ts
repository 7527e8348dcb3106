/** Study use cases: create (expand, validate every run, store all, enqueue all), read, cancel, compare. */
import { randomUUID } from 'node:crypto';
import { AppError, notFound } from '../errors.js';
import { SpecError } from '../spec/errors.js';
import { expandStudy, type StudyRequest } from '../spec/study.js';
import { newRun, type RunsService } from '../runs/service.js';
import { TERMINAL, type EpochRow, type Run, type RunsRepo } from '../store/runs-repo.js';
import { compare, type Comparison } from './comparison.js';

export type StudyStatus = 'queued' | 'running' | 'completed' | 'cancelled';

export interface StudyRecord {
  id: string;
  name: string | null;
  status: StudyStatus;
  cancelRequested: boolean;
  createdAt: Date;
  runs: Run[];
}

export function studyStatus(runs: Run[], cancelRequested: boolean): StudyStatus {
  if (runs.every((r) => TERMINAL.includes(r.status))) return cancelRequested ? 'cancelled' : 'completed';
  return runs.some((r) => r.status !== 'queued') ? 'running' : 'queued';
}

export class StudiesService {
  constructor(private readonly deps: { repo: RunsRepo; runs: RunsService }) {}

  async create(req: StudyRequest): Promise<StudyRecord> {
    let variants;
    try {
      variants = expandStudy(req);
    } catch (err) {
      if (err instanceof SpecError) throw new AppError(422, 'Invalid study', err.message, err.pointer);
      throw err;
    }
    // Every run must be valid before any is stored: a study is created whole or not at all.
    const prepared = [];
    for (const v of variants) prepared.push({ variant: v.label, run: await this.deps.runs.prepare(v.request, v.pointer) });
    const id = randomUUID();
    await this.deps.repo.createStudy(
      { id, name: req.name ?? null, request: req },
      prepared.map((p) => newRun(p.run, { id, variant: p.variant })),
    );
    await this.deps.runs.enqueue(prepared.map((p) => p.run.id));
    return this.get(id);
  }

  async get(id: string): Promise<StudyRecord> {
    const s = await this.deps.repo.getStudy(id);
    if (!s) throw notFound(`study ${id}`);
    return { id: s.id, name: s.name, cancelRequested: s.cancelRequested, createdAt: s.createdAt, runs: s.runs, status: studyStatus(s.runs, s.cancelRequested) };
  }

  /** Cancels every run that has not finished (queued ones at once, running ones within a batch). */
  async cancel(id: string): Promise<StudyRecord> {
    const study = await this.get(id);
    await this.deps.repo.requestStudyCancel(id);
    for (const run of study.runs) {
      if (TERMINAL.includes(run.status)) continue;
      try {
        await this.deps.runs.cancel(run.id);
      } catch (err) {
        if (!(err instanceof AppError && err.status === 409)) throw err; // finished meanwhile
      }
    }
    return this.get(id);
  }

  /** The study and the epoch rows of all its runs. */
  async curves(id: string): Promise<{ study: StudyRecord; epochs: Map<string, EpochRow[]> }> {
    const study = await this.get(id);
    return { study, epochs: await this.deps.repo.epochsOf(study.runs.map((r) => r.id)) };
  }

  async comparison(id: string): Promise<{ study: StudyRecord; comparison: Comparison }> {
    const { study, epochs } = await this.curves(id);
    const comparison = compare(
      study.runs.map((r) => ({
        id: r.id,
        variant: r.variant,
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
