/**
 * What runs inside the transaction that stores a submission (a run, or a study's runs), before
 * anything else is written:
 *
 * - Idempotency: the (owner, key) row is inserted first. A concurrent request with the same key
 *   blocks on the primary key until the first transaction ends; if it committed, the insert does
 *   nothing and this transaction gives way to a replay of what the first one stored (if it rolled
 *   back, this one goes on). Ten identical concurrent POSTs therefore store exactly one run.
 * - The owner's limit on unfinished runs: checked under a per-owner transaction-scoped advisory
 *   lock, so concurrent submissions of one owner cannot both slip under it.
 */
import type { PrismaClient } from './prisma.js';
import type { Sql } from './sql.js';

export interface IdempotencyRecord {
  owner: string;
  key: string;
  requestHash: string;
  runId: string | null;
  studyId: string | null;
}

export interface SubmissionGuard {
  idempotency?: { owner: string; key: string; requestHash: string };
  activeRuns?: { owner: string; max: number; adding: number };
}

/** The key was claimed by an earlier (committed) request: answer with what it stored. */
export class IdempotentReplayError extends Error {
  override readonly name = 'IdempotentReplayError';

  constructor(readonly record: IdempotencyRecord) {
    super(`idempotency key ${record.key} was used before`);
  }
}

export class ActiveRunLimitError extends Error {
  override readonly name = 'ActiveRunLimitError';

  constructor(
    readonly active: number,
    readonly max: number,
    readonly adding: number,
  ) {
    super(`${active} unfinished runs, limit ${max}`);
  }
}

/** Reads keys outside a submission (the fast path of a replay). */
export class IdempotencyKeys {
  constructor(private readonly db: PrismaClient) {}

  find(owner: string, key: string): Promise<IdempotencyRecord | null> {
    return this.db.idempotencyKey.findUnique({
      where: { owner_key: { owner, key } },
      select: { owner: true, key: true, requestHash: true, runId: true, studyId: true },
    });
  }
}

/** Before the writes: claims the idempotency key, then checks the limit. Throws to roll back. */
export async function claim(sql: Sql, g: SubmissionGuard | undefined): Promise<void> {
  if (g?.idempotency) {
    const { owner, key, requestHash } = g.idempotency;
    const inserted = await sql.query<{ key: string }>(
      `INSERT INTO "IdempotencyKey" ("owner", "key", "requestHash") VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING "key"`,
      [owner, key, requestHash],
    );
    if (inserted.length === 0) {
      const [record] = await sql.query<IdempotencyRecord>(
        `SELECT "owner", "key", "requestHash", "runId", "studyId" FROM "IdempotencyKey" WHERE "owner" = $1 AND "key" = $2`,
        [owner, key],
      );
      if (!record) throw new Error(`idempotency key ${key} vanished while claiming it`);
      throw new IdempotentReplayError(record);
    }
  }
  if (g?.activeRuns && g.activeRuns.max > 0) {
    const { owner, max, adding } = g.activeRuns;
    await sql.query(`SELECT 1 AS locked FROM pg_advisory_xact_lock(hashtextextended($1, 0))`, [`regula:active-runs:${owner}`]);
    const [row] = await sql.query<{ active: number }>(`SELECT count(*)::int AS "active" FROM "Run" WHERE "owner" = $1 AND "status" IN ('queued', 'running')`, [
      owner,
    ]);
    const active = row?.active ?? 0;
    if (active + adding > max) throw new ActiveRunLimitError(active, max, adding);
  }
}

/** After the writes: points the claimed key at what was stored. */
export async function link(sql: Sql, g: SubmissionGuard | undefined, target: { runId: string } | { studyId: string }): Promise<void> {
  if (!g?.idempotency) return;
  const { owner, key } = g.idempotency;
  const [column, id] = 'runId' in target ? ['runId', target.runId] : ['studyId', target.studyId];
  await sql.query(`UPDATE "IdempotencyKey" SET "${column}" = $3::uuid WHERE "owner" = $1 AND "key" = $2`, [owner, key, id]);
}

/** Whether a submission needs its transaction: an idempotency key to claim, or a limit to check. */
export function isGuarded(g: SubmissionGuard | undefined): boolean {
  return g?.idempotency !== undefined || (g?.activeRuns !== undefined && g.activeRuns.max > 0);
}
