/**
 * Runs and studies as the domain sees them: what the repositories return, with the stored JSON
 * decoded (the normalized spec, test metrics, weight statistics, versions), so no use case or route
 * needs the database's types or a cast.
 */
import type { RuntimeVersions } from '../engine/backends/index.js';
import type { LayerStats, LossParts } from '../engine/types.js';
import type { RunStatus } from '../events/run-events.js';
import type { NormalizedSpec } from '../run-spec/normalized.js';

export type { RunStatus };

/** Test metrics with the loss split into its parts, and the test split's largest class share. */
export type TestMetrics = LossParts & { majorityRate: number };

export interface RunRecord {
  id: string;
  name: string | null;
  status: RunStatus;
  /** The request body exactly as submitted. */
  specSubmitted: unknown;
  /** The normalized spec the worker trains (defaults applied). */
  spec: NormalizedSpec;
  datasetName: string;
  paramCount: number;
  backend: string | null;
  backendNote: string | null;
  versions: RuntimeVersions | null;
  error: string | null;
  cancelRequested: boolean;
  testLoss: number | null;
  testAccuracy: number | null;
  testMetrics: TestMetrics | null;
  samplesPerSec: number | null;
  /** Per-layer weight statistics of the final model. */
  weightStats: LayerStats[] | null;
  studyId: string | null;
  variant: string | null;
  owner: string | null;
  /** Queue priority, 1 (soonest) .. 100. */
  priority: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A run to store (queued). */
export interface NewRun {
  id: string;
  name: string | null;
  specSubmitted: unknown;
  spec: NormalizedSpec;
  datasetName: string;
  paramCount: number;
  studyId?: string;
  variant?: string;
  /** The submitting API key's owner; null with auth off. */
  owner?: string | null;
  /** Queue priority, 1 (soonest) .. 100. */
  priority?: number;
}

export interface StudyRow {
  id: string;
  name: string | null;
  cancelRequested: boolean;
  owner: string | null;
  createdAt: Date;
}
