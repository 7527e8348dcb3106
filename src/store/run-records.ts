/**
 * How a run is stored and read back: the JSON columns written from, and decoded into, the domain's
 * types (runs/records.ts). The one place that knows what the JSON columns hold.
 */
import type { RuntimeVersions } from '../engine/backends/index.js';
import type { LayerStats } from '../engine/types.js';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import type { NewRun, RunRecord, TestMetrics } from '../runs/records.js';
import type { RunEventPayloads } from '../events/run-events.js';
import type { Prisma, Run } from './prisma.js';
import type { Sql } from './sql.js';

/** A value for a JSON column. */
export const json = (v: unknown): Prisma.InputJsonValue => v as Prisma.InputJsonValue;

/** A JSON column read back as the type this store wrote into it. */
export const stored = <T>(v: unknown): T => v as T;

/** A stored run (a Prisma row, or a node-postgres row of the same table) as the domain's record. */
export function toRunRecord(r: Run): RunRecord {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    specSubmitted: r.specSubmitted,
    spec: stored<NormalizedSpec>(r.spec),
    datasetName: r.datasetName,
    paramCount: r.paramCount,
    backend: r.backend,
    backendNote: r.backendNote,
    versions: stored<RuntimeVersions | null>(r.versions),
    error: r.error,
    cancelRequested: r.cancelRequested,
    testLoss: r.testLoss,
    testAccuracy: r.testAccuracy,
    testMetrics: stored<TestMetrics | null>(r.testMetrics),
    samplesPerSec: r.samplesPerSec,
    weightStats: stored<LayerStats[] | null>(r.weightStats),
    studyId: r.studyId,
    variant: r.variant,
    owner: r.owner,
    priority: r.priority,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  };
}

/**
 * A run and its first event (`queued`, seq 1) in one statement: atomic without a transaction, and
 * one round trip. Timestamps come from the caller, as Prisma sets them (createdAt = updatedAt =
 * the moment of the insert); an absent priority takes the column's default.
 */
const INSERT_RUN_SQL = `
  WITH run AS (
    INSERT INTO "Run" ("id", "name", "specSubmitted", "spec", "datasetName", "paramCount", "studyId", "variant", "owner", "priority", "createdAt", "updatedAt")
    VALUES ($1::uuid, $2, $3::jsonb, $4::jsonb, $5, $6::int, $7::uuid, $8, $9, COALESCE($10::int, 50), $11::timestamptz, $11::timestamptz)
    RETURNING *
  ), queued AS (
    INSERT INTO "RunEvent" ("runId", "seq", "type", "data", "createdAt")
    SELECT "id", 1, 'queued', $12::jsonb, $11::timestamptz FROM run
  )
  SELECT * FROM run`;

/** Stores a run with its first event (`queued`) and returns it as stored; `at`: its createdAt (default now). */
export async function insertRun(sql: Sql, run: NewRun, queuedEvent: RunEventPayloads['queued'], at = new Date()): Promise<RunRecord> {
  const [row] = await sql.query<Run>(INSERT_RUN_SQL, [
    run.id,
    run.name,
    JSON.stringify(run.specSubmitted),
    JSON.stringify(run.spec),
    run.datasetName,
    run.paramCount,
    run.studyId ?? null,
    run.variant ?? null,
    run.owner ?? null,
    run.priority ?? null,
    at,
    JSON.stringify(queuedEvent),
  ]);
  if (!row) throw new Error(`run ${run.id} was not stored`);
  return toRunRecord(row);
}
