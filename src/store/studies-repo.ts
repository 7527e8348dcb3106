/** Studies in PostgreSQL: a study and its runs are stored together, and read back as domain records. */
import type { PrismaClient } from './prisma.js';
import type { NewRun, RunRecord, RunStatus, StudyRow } from '../runs/records.js';
import { claim, link, type SubmissionGuard } from './submissions.js';
import { insertRun, toRunRecord } from './run-records.js';
import type { SqlPool } from './sql.js';

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
  /** `sql`: the runs repository's (RunsRepo.sql), which a study's runs are written through. */
  constructor(
    private readonly db: PrismaClient,
    private readonly sql: SqlPool,
  ) {}

  /** Creates a study and all its runs (each with its `queued` event) in one transaction (`guard`: as RunsRepo.create). */
  async create(study: NewStudy, runs: NewRun[], guard?: SubmissionGuard): Promise<RunRecord[]> {
    return this.sql.transaction(async (sql) => {
      await claim(sql, guard);
      await sql.query(`INSERT INTO "Study" ("id", "name", "request", "owner", "createdAt") VALUES ($1::uuid, $2, $3::jsonb, $4, $5::timestamptz)`, [
        study.id,
        study.name,
        JSON.stringify(study.request),
        study.owner ?? null,
        new Date(),
      ]);
      // A study's runs are read back by createdAt: one transaction writes them all within a
      // millisecond, so each gets the next millisecond to keep them in the study's order.
      const start = Date.now();
      const created: RunRecord[] = [];
      for (const [i, r] of runs.entries()) {
        created.push(await insertRun(sql, r, { status: 'queued', studyId: study.id, variant: r.variant }, new Date(start + i)));
      }
      await link(sql, guard, { studyId: study.id });
      return created;
    });
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
