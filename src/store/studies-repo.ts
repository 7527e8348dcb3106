/** Studies in PostgreSQL: a study and its runs are stored together, and read back as domain records. */
import type { PrismaClient } from './prisma.js';
import type { NewRun, RunRecord, RunStatus, StudyRow } from '../runs/records.js';
import { claim, link, SUBMISSION_TX, type SubmissionGuard } from './submissions.js';
import { createRun } from './runs-repo.js';
import { json, toRunRecord } from './run-records.js';

export interface NewStudy {
  id: string;
  name: string | null;
  /** The request exactly as submitted. */
  request: unknown;
  owner?: string | null;
}

/** A study in a list: its runs' status and finish time only. */
export interface StudyListItem extends StudyRow {
  runs: { status: RunStatus; finishedAt: Date | null }[];
}

export class StudiesRepo {
  constructor(private readonly db: PrismaClient) {}

  /** Creates a study and all its runs (each with its `queued` event) in one transaction (`guard`: as RunsRepo.create). */
  async create(study: NewStudy, runs: NewRun[], guard?: SubmissionGuard): Promise<RunRecord[]> {
    return this.db.$transaction(async (tx) => {
      await claim(tx, guard);
      await tx.study.create({ data: { id: study.id, name: study.name, request: json(study.request), owner: study.owner ?? null } });
      const created: RunRecord[] = [];
      for (const r of runs) created.push(await createRun(tx, r, { status: 'queued', studyId: study.id, variant: r.variant }));
      await link(tx, guard, { studyId: study.id });
      return created;
    }, SUBMISSION_TX);
  }

  /** A study with its runs, oldest first. */
  async get(id: string): Promise<(StudyRow & { runs: RunRecord[] }) | null> {
    const s = await this.db.study.findUnique({ where: { id }, include: { runs: { orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] } } });
    if (!s) return null;
    return { id: s.id, name: s.name, cancelRequested: s.cancelRequested, owner: s.owner, createdAt: s.createdAt, runs: s.runs.map(toRunRecord) };
  }

  /** Studies, newest first, each with its runs' status and finish time. `owner`: only that owner's (null: everyone's). */
  async list(opts: { owner: string | null; limit: number; offset: number }): Promise<{ items: StudyListItem[]; total: number }> {
    const where = opts.owner !== null ? { owner: opts.owner } : {};
    const [items, total] = await Promise.all([
      this.db.study.findMany({
        where,
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: opts.limit,
        skip: opts.offset,
        include: { runs: { select: { status: true, finishedAt: true } } },
      }),
      this.db.study.count({ where }),
    ]);
    return {
      items: items.map((s) => ({ id: s.id, name: s.name, cancelRequested: s.cancelRequested, owner: s.owner, createdAt: s.createdAt, runs: s.runs })),
      total,
    };
  }

  async requestCancel(id: string): Promise<void> {
    await this.db.study.update({ where: { id }, data: { cancelRequested: true } });
  }
}
