import type { NormalizedSpec } from '../run-spec/normalized.js';
import { getDatasetInfo } from '../engine/data/registry.js';

/** An EMNIST split's name in an IDX file name (`emnist-bymerge-test-images-idx3-ubyte.gz`). */
const EMNIST_SPLIT = /emnist-(balanced|bymerge|byclass|digits|mnist)-/;

/**
 * The characters (or item names) behind a run's class indices. IDX files without `classNames`
 * that are EMNIST's (by their file names) get EMNIST's characters: the split named in the file name
 * when its class count matches, else the 47-class (balanced/bymerge) or 62-class (byclass) set by
 * the number of classes. Anything else is named by index.
 */
export function classNamesOf(spec: NormalizedSpec): string[] {
  const d = spec.dataset;
  if (d.name !== 'idx') return [...getDatasetInfo(d.name).labelNames];
  if (d.classNames) return d.classNames;
  const n = spec.input.numClasses;
  const files = [d.train.images, d.train.labels].join(' ').toLowerCase();
  const split = EMNIST_SPLIT.exec(files)?.[1];
  if (split) {
    const names = getDatasetInfo(`emnist-${split}` as 'emnist-balanced').labelNames;
    if (names.length === n) return [...names];
  }
  if (files.includes('emnist')) {
    if (n === 47) return [...getDatasetInfo('emnist-balanced').labelNames];
    if (n === 62) return [...getDatasetInfo('emnist-byclass').labelNames];
  }
  return Array.from({ length: n }, (_, i) => String(i));
}
