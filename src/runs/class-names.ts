import type { NormalizedSpec } from '../spec/normalized.js';
import { getDatasetInfo } from '../engine/data/registry.js';

/** The characters (or item names) behind a run's class indices. */
export function classNamesOf(spec: NormalizedSpec): string[] {
  const d = spec.dataset;
  if (d.name === 'idx') return d.classNames ?? Array.from({ length: spec.input.numClasses }, (_, i) => String(i));
  const names = getDatasetInfo(d.name).labelNames;
  return [...names];
}
