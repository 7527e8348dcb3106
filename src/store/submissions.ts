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

/** A Prisma interactive transaction. */
export type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];

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
export async function claim(tx: Tx, g: SubmissionGuard | undefined): Promise<void> {
  if (g?.idempotency) {
    const { owner, key, requestHash } = g.idempotency;
    const inserted = await tx.$queryRaw<{ key: string }[]>`
      INSERT INTO "IdempotencyKey" ("owner", "key", "requestHash") VALUES (${owner}, ${key}, ${requestHash})
      ON CONFLICT DO NOTHING RETURNING "key"`;
    if (inserted.length === 0) {
      const record = await tx.idempotencyKey.findUnique({
        where: { owner_key: { owner, key } },
        select: { owner: true, key: true, requestHash: true, runId: true, studyId: true },
      });
      if (!record) throw new Error(`idempotency key ${key} vanished while claiming it`);
      throw new IdempotentReplayError(record);
    }
  }
  if (g?.activeRuns && g.activeRuns.max > 0) {
    const { owner, max, adding } = g.activeRuns;
    await tx.$queryRaw`SELECT 1 AS locked FROM pg_advisory_xact_lock(hashtextextended(${`regula:active-runs:${owner}`}, 0))`;
    const active = await tx.run.count({ where: { owner, status: { in: ['queued', 'running'] } } });
    if (active + adding > max) throw new ActiveRunLimitError(active, max, adding);
  }
}

/** After the writes: points the claimed key at what was stored. */
export async function link(tx: Tx, g: SubmissionGuard | undefined, target: { runId: string } | { studyId: string }): Promise<void> {
  if (!g?.idempotency) return;
  const { owner, key } = g.idempotency;
  await tx.idempotencyKey.update({ where: { owner_key: { owner, key } }, data: target });
}

/** Transaction options for submissions: requests with the same key may wait on each other. */
export const SUBMISSION_TX = { maxWait: 10_000, timeout: 30_000 } as const;
