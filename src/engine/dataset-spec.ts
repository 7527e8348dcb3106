import type { NormalizedDataset } from '../run-spec/normalized.js';
import type { DatasetSpec } from './data/types.js';

/** The normalized spec's dataset, in the data layer's terms. */
export function toDatasetSpec(d: NormalizedDataset): DatasetSpec {
  const sampling = { seed: d.seed, ...(d.limit !== null ? { limit: d.limit } : {}) };
  if (d.name !== 'idx') return { name: d.name, ...sampling };
  return {
    name: 'idx',
    train: d.train,
    ...(d.test ? { test: d.test } : { testFraction: d.testFraction }),
    transposed: d.transposed,
    ...sampling,
  };
}
