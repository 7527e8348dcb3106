import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetChecksumError, DatasetFileMissingError, DatasetPathError, DatasetSpecError, IdxFormatError } from '../../src/engine/data/errors.js';
import { encodeIdx, encodeIdxGz } from '../../src/engine/data/idx.js';
import { holdoutCount, limitedTestCount, loadDataset, readLabelsInfo } from '../../src/engine/data/load.js';
import { mulberry32, stratifiedSample, stratifiedSplit } from '../../src/engine/data/random.js';
import { DATASETS, downloadHint, officialFilePath } from '../../src/engine/data/registry.js';
import { NAMED_DATASETS, type IdxDatasetSpec, type Split } from '../../src/engine/data/types.js';

const FIXTURE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/emnist-mini');
const FIXTURE_SPEC: IdxDatasetSpec = {
  name: 'idx',
  train: { images: 'emnist-mini-train-images-idx3-ubyte.gz', labels: 'emnist-mini-train-labels-idx1-ubyte.gz' },
  test: { images: 'emnist-mini-test-images-idx3-ubyte.gz', labels: 'emnist-mini-test-labels-idx1-ubyte.gz' },
  transposed: true,
  numClasses: 47,
};

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'regula-ds-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function counts(labels: ArrayLike<number>, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (let i = 0; i < labels.length; i++) c[labels[i] as number]! += 1;
  return c;
}

/**
 * Synthetic upright image i: pixel (0,0) = i & 255, (0,1) = i >> 8 (an id), a horizontal bar on
 * row 3 (cols 5..20, value 200), pixel (27,0) = 128 and pixel (0,27) = 255: asymmetric, so a
 * missing or wrong transposition shows.
 */
function upright(i: number, r: number, c: number): number {
  if (r === 0 && c === 0) return i & 255;
  if (r === 0 && c === 1) return i >> 8;
  if (r === 3 && c >= 5 && c <= 20) return 200;
  if (r === 27 && c === 0) return 128;
  if (r === 0 && c === 27) return 255;
  return 0;
}
function storedImages(n: number, transposed: boolean): Uint8Array {
  const px = new Uint8Array(n * 784);
  for (let i = 0; i < n; i++)
    for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) px[i * 784 + r * 28 + c] = transposed ? upright(i, c, r) : upright(i, r, c);
  return px;
}
/** Image id as encoded by `upright`, read back from a loaded (upright, normalised) split. */
function idOf(split: Split, k: number): number {
  return Math.round(split.images[k * 784]! * 255) + 256 * Math.round(split.images[k * 784 + 1]! * 255);
}
/** Fast exact comparison (vitest's deep equality is slow on large typed arrays). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
const labelOf = (i: number, k: number) => (i * 7) % k;

async function writeSynthetic(dir: string, prefix: string, n: number, k: number, transposed = true): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${prefix}-images.gz`), encodeIdxGz([n, 28, 28], storedImages(n, transposed)));
  await writeFile(
    join(dir, `${prefix}-labels.gz`),
    encodeIdxGz(
      [n],
      Uint8Array.from({ length: n }, (_, i) => labelOf(i, k)),
    ),
  );
}
const synthSpec = (prefix: string, extra: Partial<IdxDatasetSpec> = {}): IdxDatasetSpec => ({
  name: 'idx',
  train: { images: `${prefix}-images.gz`, labels: `${prefix}-labels.gz` },
  ...extra,
});

describe('random', () => {
  it('mulberry32 is deterministic, in [0,1), and seed-dependent', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(43)()).not.toBe(xs[0]);
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.05);
  });
});

describe('stratifiedSample', () => {
  const balanced = Int32Array.from({ length: 500 }, (_, i) => i % 10);

  it('takes equal per-class counts from balanced labels; sorted and unique', () => {
    const s = stratifiedSample(balanced, 100, 1);
    expect(s.length).toBe(100);
    expect(
      counts(
        Array.from(s, (i) => balanced[i]!),
        10,
      ),
    ).toEqual(new Array(10).fill(10));
    expect(new Set(s).size).toBe(100);
    expect([...s]).toEqual([...s].sort((x, y) => x - y));
  });

  it('is deterministic per seed and differs across seeds', () => {
    expect(stratifiedSample(balanced, 100, 7)).toEqual(stratifiedSample(balanced, 100, 7));
    expect(stratifiedSample(balanced, 100, 7)).not.toEqual(stratifiedSample(balanced, 100, 8));
  });

  it('keeps class proportions on unbalanced labels, at least one per class', () => {
    const labels = Int32Array.from([...new Array(900).fill(0), ...new Array(90).fill(1), ...new Array(10).fill(2)]);
    expect(
      counts(
        Array.from(stratifiedSample(labels, 100, 3), (i) => labels[i]!),
        3,
      ),
    ).toEqual([90, 9, 1]);
    expect(
      counts(
        Array.from(stratifiedSample(labels, 3, 3), (i) => labels[i]!),
        3,
      ),
    ).toEqual([1, 1, 1]);
    expect(
      counts(
        Array.from(stratifiedSample(labels, 11, 3), (i) => labels[i]!),
        3,
      ),
    ).toEqual([9, 1, 1]);
  });

  it('returns everything when count >= n, and nothing for 0', () => {
    expect([...stratifiedSample(Int32Array.of(1, 0, 1), 5, 0)]).toEqual([0, 1, 2]);
    expect(stratifiedSample(balanced, 0, 0).length).toBe(0);
  });

  it('stratifiedSplit partitions the indices', () => {
    const { train, test } = stratifiedSplit(balanced, 50, 9);
    expect(test.length).toBe(50);
    expect(train.length).toBe(450);
    expect(new Set([...train, ...test]).size).toBe(500);
    expect(
      counts(
        Array.from(test, (i) => balanced[i]!),
        10,
      ),
    ).toEqual(new Array(10).fill(5));
  });
});

describe('registry', () => {
  it('describes all named datasets consistently', () => {
    expect(Object.keys(DATASETS).sort()).toEqual([...NAMED_DATASETS].sort());
    const classes = Object.fromEntries(NAMED_DATASETS.map((n) => [n, DATASETS[n].numClasses]));
    expect(classes).toEqual({
      'emnist-balanced': 47,
      'emnist-byclass': 62,
      'emnist-bymerge': 47,
      'emnist-digits': 10,
      'emnist-letters': 26,
      'emnist-mnist': 10,
      'emnist-sample': 47,
      mnist: 10,
      'fashion-mnist': 10,
    });
    for (const name of NAMED_DATASETS) {
      const info = DATASETS[name];
      expect(info.labelNames.length).toBe(info.numClasses);
      expect(new Set(info.labelNames).size).toBe(info.numClasses);
      expect(info.transposed).toBe(name.startsWith('emnist-'));
      expect(info.labelOffset).toBe(name === 'emnist-letters' ? 1 : 0);
      for (const f of Object.values(info.files)) expect(f.sha256 === null || /^[0-9a-f]{64}$/.test(f.sha256)).toBe(true);
    }
    expect(DATASETS['emnist-balanced'].labelNames.join('')).toBe('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt');
    expect(DATASETS['emnist-letters'].labelNames.slice(0, 2)).toEqual(['Aa', 'Bb']);
    expect(DATASETS['fashion-mnist'].labelNames[9]).toBe('Ankle boot');
  });

  it('records the hashes verified against real files (SOURCE.md)', () => {
    expect(DATASETS['emnist-bymerge'].files.testImages).toMatchObject({
      sha256: '5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683',
      verifiedLocally: true,
    });
    expect(DATASETS['emnist-bymerge'].files.testLabels.sha256).toBe('8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35');
    expect(DATASETS['emnist-balanced'].files.trainLabels.sha256).toBe('b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed');
    expect(DATASETS['emnist-balanced'].files.testLabels.sha256).toBe('a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd');
  });

  it('lays files out as DATA_DIR/<name>/<official name> and says where to get them', () => {
    expect(officialFilePath('/data', 'emnist-balanced', 'trainImages')).toBe('/data/emnist-balanced/emnist-balanced-train-images-idx3-ubyte.gz');
    expect(officialFilePath('/data', 'mnist', 'testLabels')).toBe('/data/mnist/t10k-labels-idx1-ubyte.gz');
    expect(downloadHint('emnist-digits', 'testImages', '/data')).toContain('https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip');
    expect(downloadHint('emnist-digits', 'testImages', '/data')).toContain('gzip/emnist-digits-test-images-idx3-ubyte.gz');
    expect(downloadHint('fashion-mnist', 'trainImages', '/data')).toContain('train-images-idx3-ubyte.gz');
  });
});

describe('loadDataset: idx synthetic', () => {
  it('un-transposes stored images and normalises to [0,1]', async () => {
    const dir = join(tmp, 'orient');
    await writeSynthetic(dir, 'tr', 20, 4, true);
    await writeSynthetic(dir, 'te', 8, 4, true);
    const spec = synthSpec('tr', { test: { images: 'te-images.gz', labels: 'te-labels.gz' }, transposed: true });
    const d = await loadDataset(spec, dir);
    expect(d.train.count).toBe(20);
    expect(d.test.count).toBe(8);
    expect(d.imageShape).toEqual([28, 28, 1]);
    expect(d.train.images.length).toBe(20 * 784);
    const img = d.train.images.subarray(5 * 784, 6 * 784);
    // bar along row 3 (upright), not down column 3
    for (let c = 5; c <= 20; c++) expect(img[3 * 28 + c]).toBeCloseTo(200 / 255, 6);
    expect(img[10 * 28 + 3]).toBe(0);
    expect(img[0 * 28 + 27]).toBe(1); // top-right corner is 255 -> 1
    expect(img[27 * 28 + 0]).toBeCloseTo(128 / 255, 6);
    expect(img[0]).toBeCloseTo(5 / 255, 6);
    expect(d.train.images.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(idOf(d.train, 13)).toBe(13);
    expect([...d.train.labels]).toEqual(Array.from({ length: 20 }, (_, i) => labelOf(i, 4)));
    expect(d.numClasses).toBe(4);
    expect(d.labelNames).toEqual(['0', '1', '2', '3']);

    // Upright storage read with transposed: false comes out the same.
    const dir2 = join(tmp, 'orient-upright');
    await writeSynthetic(dir2, 'tr', 20, 4, false);
    const d2 = await loadDataset(synthSpec('tr', { transposed: false }), dir2);
    const all = await loadDataset(synthSpec('tr', { transposed: false, testFraction: 0.5 }), dir2);
    expect(all.train.count + all.test.count).toBe(20);
    const k = 0;
    const id = idOf(d2.train, k);
    expect(d2.train.images.subarray(k * 784, k * 784 + 784)).toEqual(d.train.images.subarray(id * 784, id * 784 + 784));
  });

  it('holds out a seeded, stratified test split when no test files are given', async () => {
    const dir = join(tmp, 'holdout');
    await writeSynthetic(dir, 'all', 400, 5);
    const d = await loadDataset(synthSpec('all', { seed: 11 }), dir);
    expect(d.test.count).toBe(60); // round(400 * 0.15)
    expect(d.train.count).toBe(340);
    const trainIds = Array.from({ length: d.train.count }, (_, k) => idOf(d.train, k));
    const testIds = Array.from({ length: d.test.count }, (_, k) => idOf(d.test, k));
    expect(new Set([...trainIds, ...testIds]).size).toBe(400);
    expect(counts(d.test.labels, 5)).toEqual([12, 12, 12, 12, 12]);
    testIds.forEach((id, k) => expect(d.test.labels[k]).toBe(labelOf(id, 5)));
    trainIds.forEach((id, k) => expect(d.train.labels[k]).toBe(labelOf(id, 5)));
    const again = await loadDataset(synthSpec('all', { seed: 11 }), dir);
    expect(again.test.labels).toEqual(d.test.labels);
    expect(sameFloats(again.test.images, d.test.images)).toBe(true);
    const other = await loadDataset(synthSpec('all', { seed: 12, testFraction: 0.25 }), dir);
    expect(other.test.count).toBe(100);
    const d3 = await loadDataset(synthSpec('all', { seed: 12 }), dir);
    expect(Array.from({ length: d3.test.count }, (_, k) => idOf(d3.test, k))).not.toEqual(testIds);
    expect(await readLabelsInfo(synthSpec('all', { seed: 11 }), dir)).toEqual({ numClasses: 5, trainCount: 340, testCount: 60 });
  });

  it('limit: stratified, deterministic train and test samples; readLabelsInfo agrees', async () => {
    const dir = join(tmp, 'limit');
    await writeSynthetic(dir, 'tr', 600, 6);
    await writeSynthetic(dir, 'te', 120, 6);
    const spec = synthSpec('tr', { test: { images: 'te-images.gz', labels: 'te-labels.gz' }, limit: 60, seed: 5 });
    const d = await loadDataset(spec, dir);
    expect(d.train.count).toBe(60);
    expect(d.train.images.length).toBe(60 * 784);
    expect(counts(d.train.labels, 6)).toEqual(new Array(6).fill(10));
    expect(d.test.count).toBe(limitedTestCount(60, 120, 6));
    expect(d.test.count).toBe(12);
    expect(counts(d.test.labels, 6)).toEqual(new Array(6).fill(2));
    const ids = (s: Split) => Array.from({ length: s.count }, (_, k) => idOf(s, k));
    expect(ids(d.train).every((id, k) => labelOf(id, 6) === d.train.labels[k])).toBe(true);
    const again = await loadDataset(spec, dir);
    expect(ids(again.train)).toEqual(ids(d.train));
    expect(ids(again.test)).toEqual(ids(d.test));
    const other = await loadDataset({ ...spec, seed: 6 }, dir);
    expect(ids(other.train)).not.toEqual(ids(d.train));
    expect(await readLabelsInfo(spec, dir)).toEqual({ numClasses: 6, trainCount: 60, testCount: 12 });
    // small limits: the test split keeps at least one image per class
    expect(limitedTestCount(10, 120, 6)).toBe(6);
    expect(limitedTestCount(1000, 120, 6)).toBe(120);
    const tiny = await loadDataset({ ...spec, limit: 10 }, dir);
    expect(tiny.train.count).toBe(10);
    expect(counts(tiny.test.labels, 6)).toEqual(new Array(6).fill(1));
    // limit with a holdout: sampled from the holdout's train part
    const h = await loadDataset(synthSpec('tr', { limit: 100, seed: 1 }), dir);
    expect(h.train.count).toBe(100);
    expect(h.test.count).toBe(20);
    expect(holdoutCount(600, 0.15)).toBe(90);
  });

  it('validates numClasses, label ranges, counts and image size', async () => {
    const dir = join(tmp, 'validate');
    await writeSynthetic(dir, 'a', 30, 3);
    await expect(loadDataset(synthSpec('a', { numClasses: 2 }), dir)).rejects.toThrow(/a-labels\.gz: label 2 at index \d+ is out of range for 2 classes/);
    const wide = await loadDataset(synthSpec('a', { numClasses: 10 }), dir);
    expect(wide.numClasses).toBe(10);
    expect(wide.labelNames.length).toBe(10);
    await writeFile(join(dir, 'few-labels.gz'), encodeIdxGz([29], new Uint8Array(29).fill(1)));
    await expect(loadDataset({ name: 'idx', train: { images: 'a-images.gz', labels: 'few-labels.gz' } }, dir)).rejects.toThrow(
      /a-images\.gz holds 30 images but .*few-labels\.gz holds 29 labels/,
    );
    await writeFile(join(dir, 'small-images.gz'), encodeIdxGz([30, 14, 14], new Uint8Array(30 * 196)));
    await expect(loadDataset({ name: 'idx', train: { images: 'small-images.gz', labels: 'a-labels.gz' } }, dir)).rejects.toThrow(IdxFormatError);
    await expect(readLabelsInfo({ name: 'idx', train: { images: 'small-images.gz', labels: 'a-labels.gz' } }, dir)).rejects.toThrow(
      /small-images\.gz: expected 28x28 images, got 14x14/,
    );
    await expect(loadDataset(synthSpec('a', { limit: 0 }), dir)).rejects.toThrow(DatasetSpecError);
    await expect(loadDataset(synthSpec('a', { testFraction: 1 }), dir)).rejects.toThrow(/testFraction/);
    await writeFile(join(dir, 'zeros-labels.gz'), encodeIdxGz([30], new Uint8Array(30)));
    await expect(loadDataset({ name: 'idx', train: { images: 'a-images.gz', labels: 'zeros-labels.gz' } }, dir)).rejects.toThrow(/at least 2 classes/);
  });
});

describe('path safety', () => {
  it('rejects .., absolute paths and symlink escapes with the field name', async () => {
    const root = join(tmp, 'paths');
    const dataDir = join(root, 'data');
    await writeSynthetic(dataDir, 'ok', 10, 2);
    await writeSynthetic(root, 'outside', 10, 2);
    await symlink(join(root, 'outside-images.gz'), join(dataDir, 'link-images.gz'));
    await symlink(root, join(dataDir, 'updir'));
    const cases: [IdxDatasetSpec, string][] = [
      [{ name: 'idx', train: { images: '../outside-images.gz', labels: 'ok-labels.gz' } }, 'train.images'],
      [{ name: 'idx', train: { images: 'ok-images.gz', labels: join(root, 'outside-labels.gz') } }, 'train.labels'],
      [{ name: 'idx', train: { images: 'link-images.gz', labels: 'ok-labels.gz' } }, 'train.images'],
      [
        { name: 'idx', train: { images: 'ok-images.gz', labels: 'ok-labels.gz' }, test: { images: 'updir/outside-images.gz', labels: 'ok-labels.gz' } },
        'test.images',
      ],
      [
        { name: 'idx', train: { images: 'ok-images.gz', labels: 'ok-labels.gz' }, test: { images: 'ok-images.gz', labels: 'x/../../../../etc/passwd' } },
        'test.labels',
      ],
      [{ name: 'idx', train: { images: '.', labels: 'ok-labels.gz' } }, 'train.images'],
    ];
    for (const [spec, field] of cases) {
      const err = await loadDataset(spec, dataDir).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(DatasetPathError);
      expect((err as DatasetPathError).field).toBe(field);
      expect((err as Error).message).toContain(`dataset.${field}`);
      await expect(readLabelsInfo(spec, dataDir)).rejects.toBeInstanceOf(DatasetPathError);
    }
    // inside paths with a harmless .. are fine
    const ok = await loadDataset({ name: 'idx', train: { images: 'sub/../ok-images.gz', labels: './ok-labels.gz' } }, dataDir);
    expect(ok.train.count + ok.test.count).toBe(10);
  });

  it('names the missing idx file and its field', async () => {
    const err = await loadDataset({ name: 'idx', train: { images: 'nope-images.gz', labels: 'nope-labels.gz' } }, tmp).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetFileMissingError);
    expect((err as DatasetFileMissingError).field).toBe('train.images');
    expect((err as Error).message).toContain('nope-images.gz');
    // Where it looked, relative to DATA_DIR: messages reach API clients and stored run errors.
    expect((err as Error).message).toContain('looked at nope-images.gz');
    expect((err as Error).message).not.toContain(tmp);
  });
});

describe('named datasets', () => {
  it('missing file: names the file, the path looked at and where to get it', async () => {
    const dataDir = join(tmp, 'empty-data');
    await mkdir(dataDir, { recursive: true });
    const err = await loadDataset({ name: 'emnist-balanced' }, dataDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetFileMissingError);
    const e = err as DatasetFileMissingError;
    expect(e.file).toMatch(/^emnist-balanced-(train|test)-(images-idx3|labels-idx1)-ubyte\.gz$/);
    expect(e.message).toContain(e.file);
    expect(e.message).toContain(join('emnist-balanced', e.file));
    expect(e.message).not.toContain(dataDir);
    expect(e.message).toContain('https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip');
    const m = (await readLabelsInfo({ name: 'mnist' }, dataDir).catch((x: unknown) => x)) as Error;
    expect(m).toBeInstanceOf(DatasetFileMissingError);
    expect(m.message).toMatch(/mnist\/(train|t10k)-/);
  });

  it('emnist-letters: labels 1..26 in the files become 0..25; checksums are verified', async () => {
    const dataDir = join(tmp, 'letters-data');
    const dir = join(dataDir, 'emnist-letters');
    await mkdir(dir, { recursive: true });
    const f = DATASETS['emnist-letters'].files;
    const n = 52;
    const lab = Uint8Array.from({ length: n }, (_, i) => (i % 26) + 1);
    await writeFile(join(dir, f.trainImages.name), encodeIdxGz([n, 28, 28], storedImages(n, true)));
    await writeFile(join(dir, f.trainLabels.name), encodeIdxGz([n], lab));
    await writeFile(join(dir, f.testImages.name), encodeIdxGz([26, 28, 28], storedImages(26, true)));
    await writeFile(join(dir, f.testLabels.name), encodeIdxGz([26], lab.subarray(0, 26)));

    // our synthetic files are not the official ones: the known sha256 must reject them
    await expect(loadDataset({ name: 'emnist-letters' }, dataDir)).rejects.toBeInstanceOf(DatasetChecksumError);

    const d = await loadDataset({ name: 'emnist-letters' }, dataDir, { verifyChecksums: false });
    expect(d.numClasses).toBe(26);
    expect(d.labelNames[0]).toBe('Aa');
    expect(d.labelNames[25]).toBe('Zz');
    expect([...d.train.labels]).toEqual(Array.from(lab, (v) => v - 1));
    expect(Math.min(...d.test.labels)).toBe(0);
    expect(Math.max(...d.test.labels)).toBe(25);
    expect(d.train.images[3 * 28 + 10]).toBeCloseTo(200 / 255, 6); // EMNIST: un-transposed
    expect(d.source).toContain('emnist-letters');
    expect(await readLabelsInfo({ name: 'emnist-letters', limit: 26 }, dataDir, { verifyChecksums: false })).toEqual({
      numClasses: 26,
      trainCount: 26,
      testCount: 26,
    });

    await writeFile(join(dir, f.testLabels.name), encodeIdxGz([26], new Uint8Array(26)));
    await expect(loadDataset({ name: 'emnist-letters' }, dataDir, { verifyChecksums: false })).rejects.toThrow(
      /emnist-letters-test-labels-idx1-ubyte\.gz: label 0 at index 0 is below the first label 1/,
    );
  });

  it('mnist: not transposed; an uncompressed copy (official name without .gz) is accepted', async () => {
    const dataDir = join(tmp, 'mnist-data');
    const dir = join(dataDir, 'mnist');
    await mkdir(dir, { recursive: true });
    const f = DATASETS.mnist.files;
    await writeFile(join(dir, f.trainImages.name.replace(/\.gz$/, '')), encodeIdx([20, 28, 28], storedImages(20, false)));
    await writeFile(
      join(dir, f.trainLabels.name.replace(/\.gz$/, '')),
      encodeIdx(
        [20],
        Uint8Array.from({ length: 20 }, (_, i) => i % 10),
      ),
    );
    await writeFile(join(dir, f.testImages.name.replace(/\.gz$/, '')), encodeIdx([10, 28, 28], storedImages(10, false)));
    await writeFile(
      join(dir, f.testLabels.name.replace(/\.gz$/, '')),
      encodeIdx(
        [10],
        Uint8Array.from({ length: 10 }, (_, i) => i),
      ),
    );
    const d = await loadDataset({ name: 'mnist' }, dataDir); // no hash for uncompressed copies
    expect(d.train.count).toBe(20);
    expect(d.train.images[3 * 28 + 10]).toBeCloseTo(200 / 255, 6);
    expect(d.labelNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });
});

describe('committed fixture: test/fixtures/emnist-mini (real EMNIST ByMerge)', () => {
  it('matches the sha256 sums in its SOURCE.md', async () => {
    const md = await readFile(join(FIXTURE_DIR, 'SOURCE.md'), 'utf8');
    const rows = [...md.matchAll(/^\| (emnist-mini-[^ |]+) \| (\d+) \| ([0-9a-f]{64}) \|/gm)];
    expect(rows.length).toBe(6);
    for (const [, name, bytes, sha] of rows) {
      const buf = await readFile(join(FIXTURE_DIR, name!));
      expect(buf.length, name).toBe(Number(bytes));
      expect(createHash('sha256').update(buf).digest('hex'), name).toBe(sha);
    }
  });

  it('loads 30 + 10 images per class for 47 classes, upright, in [0,1]', async () => {
    const d = await loadDataset(FIXTURE_SPEC, FIXTURE_DIR);
    expect(d.numClasses).toBe(47);
    expect(d.train.count).toBe(1410);
    expect(d.test.count).toBe(470);
    expect(counts(d.train.labels, 47)).toEqual(new Array(47).fill(30));
    expect(counts(d.test.labels, 47)).toEqual(new Array(47).fill(10));
    let min = Infinity;
    let max = -Infinity;
    for (const v of d.train.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);

    // Orientation on real data: an upright '1' is taller than it is wide. Stored EMNIST bytes are
    // transposed, so reading them as-is would make the 1s wide instead.
    const spread = (images: Float32Array, labels: Int32Array, want: number) => {
      let rowVar = 0;
      let colVar = 0;
      for (let k = 0; k < labels.length; k++) {
        if (labels[k] !== want) continue;
        let m = 0,
          mr = 0,
          mc = 0,
          rr = 0,
          cc = 0;
        for (let r = 0; r < 28; r++)
          for (let c = 0; c < 28; c++) {
            const v = images[k * 784 + r * 28 + c]!;
            m += v;
            mr += v * r;
            mc += v * c;
            rr += v * r * r;
            cc += v * c * c;
          }
        rowVar += rr / m - (mr / m) ** 2;
        colVar += cc / m - (mc / m) ** 2;
      }
      return { rowVar, colVar };
    };
    const up = spread(d.train.images, d.train.labels, 1);
    expect(up.rowVar).toBeGreaterThan(2 * up.colVar);
    const raw = await loadDataset({ ...FIXTURE_SPEC, transposed: false }, FIXTURE_DIR);
    const sideways = spread(raw.train.images, raw.train.labels, 1);
    expect(sideways.colVar).toBeGreaterThan(2 * sideways.rowVar);
  });

  it('limit on the fixture: balanced per class, deterministic; readLabelsInfo is cheap and agrees', async () => {
    const spec = { ...FIXTURE_SPEC, limit: 470, seed: 3 };
    const d = await loadDataset(spec, FIXTURE_DIR);
    expect(counts(d.train.labels, 47)).toEqual(new Array(47).fill(10));
    expect(d.test.count).toBe(94); // ceil(470 * 0.2)
    expect(counts(d.test.labels, 47).every((c) => c === 2)).toBe(true);
    const again = await loadDataset(spec, FIXTURE_DIR);
    expect(sameFloats(again.train.images, d.train.images)).toBe(true);
    expect(await readLabelsInfo(spec, FIXTURE_DIR)).toEqual({ numClasses: 47, trainCount: 470, testCount: 94 });
    expect(await readLabelsInfo({ ...FIXTURE_SPEC, numClasses: undefined }, FIXTURE_DIR)).toEqual({
      numClasses: 47,
      trainCount: 1410,
      testCount: 470,
    });
  });
});
