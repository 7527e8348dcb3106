/**
 * How a run is stored and read back: the JSON columns written from, and decoded into, the domain's
 * types (runs/records.ts). The one place that knows what the JSON columns hold.
 */
import type { RuntimeVersions } from '../engine/backends/index.js';
import type { LayerStats } from '../engine/types.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import type { RunRecord, TestMetrics } from '../runs/records.js';
import type { Prisma, Run } from './prisma.js';

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
