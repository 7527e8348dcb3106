/**
 * Issue 10: a submission's dataset check (resolve, stat and stamp every file) is reused by the
 * submissions right after it with the same dataset, whatever their seed; a failed check is not.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeIdxGz } from '../../src/engine/data/idx.js';
import { FIXTURES } from '../support/harness.js';

vi.mock('../../src/engine/data/load.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../../src/engine/data/load.js')>();
  return { ...m, readLabelsInfo: vi.fn(m.readLabelsInfo) };
});
const load = await import('../../src/engine/data/load.js');
const { RecentDatasets } = await import('../../src/runs/prepare.js');

describe('recent dataset checks', () => {
  let dir: string;
  const images = 'emnist-mini-train-images-idx3-ubyte.gz';
  const labels = 'emnist-mini-train-labels-idx1-ubyte.gz';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'regula-recent-datasets-'));
    for (const f of [images, labels]) await copyFile(path.join(FIXTURES, 'emnist-mini', f), path.join(dir, f));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('checks a dataset once for submissions in a row (any seed), again after the window, and never keeps a failure', async () => {
    const check = vi.mocked(load.readLabelsInfo);
    check.mockClear();
    const recent = new RecentDatasets(60_000);
    const spec = (seed: number) => ({ name: 'idx' as const, train: { images, labels }, seed });
    const first = await recent.labelsInfo(spec(1), dir);
    expect(await recent.labelsInfo(spec(2), dir)).toEqual(first);
    expect(check).toHaveBeenCalledTimes(1);

    // Another dataset is checked on its own.
    await recent.labelsInfo({ ...spec(1), limit: 50 }, dir);
    expect(check).toHaveBeenCalledTimes(2);

    // A failure is not kept: the same missing file is looked for again.
    const missing = { name: 'idx' as const, train: { images, labels: 'nothing-here.gz' }, seed: 1 };
    await expect(recent.labelsInfo(missing, dir)).rejects.toThrow(/not found/);
    await expect(recent.labelsInfo(missing, dir)).rejects.toThrow(/not found/);
    expect(check).toHaveBeenCalledTimes(4);

    // With no window, a changed file shows at the next submission.
    const fresh = new RecentDatasets(0);
    const n = first.trainCount + first.testCount;
    await writeFile(
      path.join(dir, labels),
      encodeIdxGz(
        [n],
        Uint8Array.from({ length: n }, (_, i) => i % 3),
      ),
    );
    expect((await fresh.labelsInfo(spec(3), dir)).numClasses).toBe(3);
    expect((await recent.labelsInfo(spec(3), dir)).numClasses).toBe(first.numClasses); // within its window
  });
});
