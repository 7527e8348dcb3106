/** The built-in dataset `emnist-sample`: read from the repository, whatever DATA_DIR is, and sha256-checked. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset, readLabelsInfo } from '../../src/engine/data/load.js';
import { DATASETS, downloadHint } from '../../src/engine/data/registry.js';

describe('emnist-sample (built in)', () => {
  let emptyDataDir: string;
  beforeAll(async () => {
    emptyDataDir = await mkdtemp(join(tmpdir(), 'regula-no-data-'));
  });
  afterAll(async () => {
    await rm(emptyDataDir, { recursive: true, force: true });
  });

  it('loads from the repository with an empty DATA_DIR: 80 train and 20 test images per class, checksums verified', async () => {
    const d = await loadDataset({ name: 'emnist-sample' }, emptyDataDir, { verifyChecksums: true });
    expect(d.numClasses).toBe(47);
    expect(d.train.count).toBe(47 * 80);
    expect(d.test.count).toBe(47 * 20);
    expect(d.labelNames.join('')).toBe('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt');
    const perClass = new Array<number>(47).fill(0);
    for (const l of d.train.labels) perClass[l] = (perClass[l] ?? 0) + 1;
    expect(new Set(perClass)).toEqual(new Set([80]));
    // Real characters, not blanks: every image has ink.
    let blank = 0;
    for (let i = 0; i < d.train.count; i++) if (!d.train.images.subarray(i * 784, (i + 1) * 784).some((v) => v > 0.5)) blank++;
    expect(blank).toBe(0);
  });

  it('samples with limit like any named dataset', async () => {
    const info = await readLabelsInfo({ name: 'emnist-sample', limit: 500 }, emptyDataDir);
    expect(info).toEqual({ numClasses: 47, trainCount: 500, testCount: 100 });
  });

  it('has every sha256 and no download hint pointing at DATA_DIR', () => {
    const info = DATASETS['emnist-sample'];
    for (const f of Object.values(info.files)) expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(info.builtinDir).toMatch(/datasets[/\\]emnist-sample$/);
    expect(downloadHint('emnist-sample', 'trainImages', emptyDataDir)).not.toContain(emptyDataDir);
  });
});
