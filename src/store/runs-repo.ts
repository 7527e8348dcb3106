/**
 * Runs and what hangs off them — events, epoch rows, checkpoints, model artifacts — in PostgreSQL,
 * returned as domain records (runs/records.ts). Status changes are compare-and-set updates, so two
 * processes racing (a cancel against a worker starting the job) cannot both win. Studies are in
 * studies-repo.ts, the submission guard in submissions.ts.
 */
import type { RuntimeVersions } from '../engine/backends/index.js';
import { Prisma, type PrismaClient } from './prisma.js';
import { claim, isGuarded, link, type SubmissionGuard } from './submissions.js';
import { SqlPool } from './sql.js';
import type { EpochDetails, EpochRow, RunEventPayloads, RunEventType, StoredEvent } from '../events/run-events.js';
import type { NewRun, RunRecord, RunStatus } from '../runs/records.js';
import { insertRun, json, stored, toRunRecord } from './run-records.js';

// Where callers have always found them; they are defined with the run events and the run records.
export type { EpochRow, NewRun, RunRecord, RunStatus, StoredEvent };

/** A run's training state after `epoch` (engine/types.ts TrainingCheckpoint; `specs` is its JSON half). */
export interface CheckpointRow {
  epoch: number;
  weights: Uint8Array;
  optimizer: Uint8Array;
  specs: unknown;
}

export interface ArtifactRow {
  format: string;
  modelTopology: unknown;
  weightSpecs: unknown;
  weightData: Uint8Array;
  sha256: string;
}

/** An epoch row and its checkpoint in one statement (atomic without a transaction), see saveEpoch. */
const SAVE_EPOCH_SQL = `
  WITH epoch_row AS (
    INSERT INTO "EpochMetric" ("runId", "epoch", "loss", "accuracy", "valLoss", "valAccuracy", "durationMs", "details")
    VALUES ($1::uuid, $2::int, $3::double precision, $4::double precision, $5::double precision, $6::double precision, $7::int, $8::jsonb)
    ON CONFLICT ("runId", "epoch") DO UPDATE SET
      "loss" = EXCLUDED."loss", "accuracy" = EXCLUDED."accuracy", "valLoss" = EXCLUDED."valLoss",
      "valAccuracy" = EXCLUDED."valAccuracy", "durationMs" = EXCLUDED."durationMs", "details" = EXCLUDED."details"
    RETURNING 1
  )
  INSERT INTO "Checkpoint" ("runId", "epoch", "weights", "optimizer", "specs", "createdAt")
  SELECT $1::uuid, $9::int, $10::bytea, $11::bytea, $12::jsonb, now()
  FROM epoch_row
  ON CONFLICT ("runId") DO UPDATE SET
    "epoch" = EXCLUDED."epoch", "weights" = EXCLUDED."weights", "optimizer" = EXCLUDED."optimizer",
    "specs" = EXCLUDED."specs", "createdAt" = EXCLUDED."createdAt"`;

export class RunsRepo {
  /** node-postgres beside Prisma for the hot writes (a submission, an epoch's checkpoint): see store/sql.ts. */
  readonly sql: SqlPool;

  /**
   * `databaseUrl`: where submissions and checkpoints are written with node-postgres directly (see
   * create and saveEpoch); without it they go through Prisma.
   */
  constructor(
    private readonly db: PrismaClient,
    opts: { databaseUrl?: string } = {},
  ) {
    this.sql = new SqlPool(db, opts.databaseUrl);
  }

  async close(): Promise<void> {
    await this.sql.close();
  }

  /**
   * Creates the run with its first event (`queued`). With a `guard` (idempotency key, active-run
   * limit) that is one transaction: the guard is claimed first and may throw to roll it back.
   * Without one (the common case) it is a single statement.
   */
  async create(run: NewRun, queuedEvent: RunEventPayloads['queued'], guard?: SubmissionGuard): Promise<RunRecord> {
    if (!isGuarded(guard)) return insertRun(this.sql, run, queuedEvent);
    return this.sql.transaction(async (sql) => {
      await claim(sql, guard);
      const created = await insertRun(sql, run, queuedEvent);
      await link(sql, guard, { runId: run.id });
      return created;
    });
  }

  /** Epoch rows of several runs at once, by run id. */
  async epochsOf(runIds: string[]): Promise<Map<string, EpochRow[]>> {
    const rows = await this.db.epochMetric.findMany({ where: { runId: { in: runIds } }, orderBy: [{ runId: 'asc' }, { epoch: 'asc' }] });
    const out = new Map<string, EpochRow[]>(runIds.map((id) => [id, []]));
    for (const { runId, epoch, loss, accuracy, valLoss, valAccuracy, durationMs, details } of rows) {
      out.get(runId)?.push({ epoch, loss, accuracy, valLoss, valAccuracy, durationMs, details: stored<EpochDetails | null>(details) });
    }
    return out;
  }

  async get(id: string): Promise<RunRecord | null> {
    const run = await this.db.run.findUnique({ where: { id } });
    return run && toRunRecord(run);
  }

  /** `owner`: only that owner's runs (undefined or null: everyone's). */
  async list(opts: { status?: RunStatus; owner?: string | null; limit: number; offset: number }): Promise<{ items: RunRecord[]; total: number }> {
    const where = { ...(opts.status ? { status: opts.status } : {}), ...(opts.owner != null ? { owner: opts.owner } : {}) };
    // Two plain reads, not a transaction: a page and its total may straddle one insert, which a
    // listing tolerates, while a batch transaction failed to start under load (Prisma P2028 → 500).
    const [items, total] = await Promise.all([
      this.db.run.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'asc' }], take: opts.limit, skip: opts.offset }),
      this.db.run.count({ where }),
    ]);
    return { items: items.map(toRunRecord), total };
  }

  /** queued → running. False when the run is no longer queued (e.g. cancelled meanwhile). */
  async markRunning(id: string, backend: string, backendNote: string | null, versions?: RuntimeVersions): Promise<boolean> {
    const r = await this.db.run.updateMany({
      where: { id, status: 'queued', cancelRequested: false },
      data: { status: 'running', startedAt: new Date(), backend, backendNote, ...(versions ? { versions: { ...versions } } : {}) },
    });
    return r.count === 1;
  }

  /**
   * A running run whose job came back to a worker (its worker was lost or shut down, or an attempt
   * failed and BullMQ retries it): keep the epoch rows up to its checkpoint, drop any later ones
   * (there are none when rows and checkpoints are written together) and hand back the checkpoint.
   * Without a checkpoint every epoch row goes and training restarts at epoch 1 (startedAt resets).
   * Null if the run is not running or a cancel was requested.
   */
  async resume(id: string, backend: string, backendNote: string | null, versions?: RuntimeVersions): Promise<{ checkpoint: CheckpointRow | null } | null> {
    return this.db.$transaction(async (tx) => {
      const r = await tx.run.updateMany({
        where: { id, status: 'running', cancelRequested: false },
        data: { backend, backendNote, ...(versions ? { versions: { ...versions } } : {}) },
      });
      if (r.count !== 1) return null;
      const cp = await tx.checkpoint.findUnique({ where: { runId: id } });
      await tx.epochMetric.deleteMany({ where: { runId: id, ...(cp ? { epoch: { gt: cp.epoch } } : {}) } });
      if (!cp) {
        await tx.run.update({ where: { id }, data: { startedAt: new Date() } });
        return { checkpoint: null };
      }
      return { checkpoint: { epoch: cp.epoch, weights: cp.weights, optimizer: cp.optimizer, specs: cp.specs } };
    });
  }

  async checkpoint(runId: string): Promise<CheckpointRow | null> {
    const cp = await this.db.checkpoint.findUnique({ where: { runId } });
    return cp && { epoch: cp.epoch, weights: cp.weights, optimizer: cp.optimizer, specs: cp.specs };
  }

  /** Cancels a queued run. False when it is not queued any more. */
  async cancelQueued(id: string): Promise<boolean> {
    const r = await this.db.run.updateMany({
      where: { id, status: 'queued' },
      data: { status: 'cancelled', cancelRequested: true, finishedAt: new Date() },
    });
    return r.count === 1;
  }

  /** Flags a running run for cancellation; the worker stops it at the next batch. */
  async requestCancel(id: string): Promise<boolean> {
    const r = await this.db.run.updateMany({ where: { id, status: 'running' }, data: { cancelRequested: true } });
    return r.count === 1;
  }

  async finish(id: string, status: 'succeeded' | 'failed' | 'cancelled', fields: FinishFields = {}): Promise<boolean> {
    return this.db.$transaction(async (tx) => {
      const done = await finishRun(tx, id, status, fields);
      // A finished run is never resumed: its checkpoint (weights and optimizer state) goes.
      if (done) await tx.checkpoint.deleteMany({ where: { runId: id } });
      return done;
    });
  }

  /**
   * Stores an epoch's row and, when given, the checkpoint of the state after it (replacing the
   * previous one) atomically: a row never exists without its checkpoint or the reverse.
   *
   * One SQL statement (a data-modifying CTE), not a Prisma transaction: Prisma's transactions, the
   * interactive ones and (with the driver adapter) the batch ones too, expire 5 s after they start,
   * and a checkpoint of a few million parameters (weights plus two Adam slots) can take longer than
   * that to send, so every attempt failed to store its epoch and each retry restarted from epoch 1.
   * A single statement is atomic by itself and only waits on the database.
   *
   * Sent with node-postgres directly when the repo has a database URL: through Prisma, the bytes
   * of a checkpoint are serialized on the event loop (measured here: 7.6 s of blocked event loop for
   * 64 MB), long enough for BullMQ to lose the job's lock at ~12 M parameters (the lock renews on
   * this event loop); node-postgres hex-encodes them natively in a fraction of that.
   */
  async saveEpoch(runId: string, row: EpochRow, checkpoint?: CheckpointRow): Promise<void> {
    const data = { ...row, details: json(row.details) };
    if (!checkpoint) {
      await this.db.epochMetric.upsert({ where: { runId_epoch: { runId, epoch: row.epoch } }, create: { runId, ...data }, update: data });
      return;
    }
    const params = [
      runId,
      row.epoch,
      row.loss,
      row.accuracy,
      row.valLoss,
      row.valAccuracy,
      row.durationMs,
      JSON.stringify(row.details ?? null),
      checkpoint.epoch,
      Buffer.from(checkpoint.weights.buffer, checkpoint.weights.byteOffset, checkpoint.weights.byteLength),
      Buffer.from(checkpoint.optimizer.buffer, checkpoint.optimizer.byteOffset, checkpoint.optimizer.byteLength),
      JSON.stringify(checkpoint.specs),
    ];
    const pool = this.sql.raw();
    if (pool) {
      await pool.query(SAVE_EPOCH_SQL, params);
      return;
    }
    await this.db.$executeRawUnsafe(SAVE_EPOCH_SQL, ...params);
  }

  async epochs(runId: string): Promise<EpochRow[]> {
    const rows = await this.db.epochMetric.findMany({ where: { runId }, orderBy: { epoch: 'asc' } });
    return rows.map(({ epoch, loss, accuracy, valLoss, valAccuracy, durationMs, details }) => ({
      epoch,
      loss,
      accuracy,
      valLoss,
      valAccuracy,
      durationMs,
      details: stored<EpochDetails | null>(details),
    }));
  }

  /**
   * Appends an event with the run's next sequence number (the SSE id). Writers of one run
   * (API and worker) may race for a number: the primary key rejects the loser, which retries.
   */
  async appendEvent(runId: string, type: RunEventType, data: unknown): Promise<StoredEvent> {
    for (let attempt = 0; ; attempt++) {
      try {
        const rows = await this.db.$queryRaw<{ seq: number; createdAt: Date }[]>`
          INSERT INTO "RunEvent" ("runId", "seq", "type", "data")
          SELECT ${runId}::uuid, COALESCE(MAX("seq"), 0) + 1, ${type}, ${JSON.stringify(data)}::jsonb
          FROM "RunEvent" WHERE "runId" = ${runId}::uuid
          RETURNING "seq", "createdAt"`;
        const row = rows[0];
        if (!row) throw new Error(`event for run ${runId} was not stored`);
        return { seq: row.seq, type, data, createdAt: row.createdAt };
      } catch (err) {
        if (attempt < 10 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  }

  async events(runId: string, afterSeq = 0): Promise<StoredEvent[]> {
    const rows = await this.db.runEvent.findMany({ where: { runId, seq: { gt: afterSeq } }, orderBy: { seq: 'asc' } });
    return rows.map(({ seq, type, data, createdAt }) => ({ seq, type, data, createdAt }));
  }

  async saveArtifact(runId: string, a: ArtifactRow): Promise<void> {
    const data = {
      format: a.format,
      modelTopology: json(a.modelTopology),
      weightSpecs: json(a.weightSpecs),
      weightData: new Uint8Array(a.weightData),
      sha256: a.sha256,
      sizeBytes: a.weightData.byteLength,
    };
    await this.db.modelArtifact.upsert({ where: { runId }, create: { runId, ...data }, update: data });
  }

  async artifact(runId: string): Promise<ArtifactRow | null> {
    const a = await this.db.modelArtifact.findUnique({ where: { runId } });
    if (!a) return null;
    return { format: a.format, modelTopology: a.modelTopology, weightSpecs: a.weightSpecs, weightData: a.weightData, sha256: a.sha256 };
  }
}

type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];

type FinishFields = { error?: string; testLoss?: number; testAccuracy?: number; testMetrics?: unknown; samplesPerSec?: number; weightStats?: unknown };

/** queued | running → a final status (compare-and-set). */
async function finishRun(tx: Tx, id: string, status: 'succeeded' | 'failed' | 'cancelled', fields: FinishFields): Promise<boolean> {
  const r = await tx.run.updateMany({
    where: { id, status: { in: ['queued', 'running'] } },
    data: {
      status,
      finishedAt: new Date(),
      error: fields.error ?? null,
      testLoss: fields.testLoss ?? null,
      testAccuracy: fields.testAccuracy ?? null,
      testMetrics: fields.testMetrics === undefined ? Prisma.DbNull : json(fields.testMetrics),
      samplesPerSec: fields.samplesPerSec ?? null,
      weightStats: fields.weightStats === undefined ? Prisma.DbNull : json(fields.weightStats),
    },
  });
  return r.count === 1;
}

function isUniqueViolation(err: unknown): boolean {
  const text = String((err as { message?: string } | null)?.message ?? err);
  return text.includes('23505') || text.includes('Unique constraint') || text.includes('duplicate key');
}
