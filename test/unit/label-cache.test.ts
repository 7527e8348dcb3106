/**
 * Issue 10: POST /v1/runs re-read and inflated the label files on every submission. readLabelsInfo
 * keeps what it read by path + size + mtime (+ ctime, inode): the same files are read once, a
 * changed file is read again.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeIdxGz } from '../../src/engine/data/idx.js';
import { FIXTURES } from '../support/harness.js';

vi.mock('../../src/engine/data/idx.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../../src/engine/data/idx.js')>();
  return { ...m, readIdxFile: vi.fn(m.readIdxFile), readIdxHeader: vi.fn(m.readIdxHeader) };
});
const idx = await import('../../src/engine/data/idx.js');
const { readLabelsInfo } = await import('../../src/engine/data/load.js');

describe('label info cache', () => {
  let dir: string;
  const files = {
    images: 'emnist-mini-train-images-idx3-ubyte.gz',
    labels: 'emnist-mini-train-labels-idx1-ubyte.gz',
  };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'regula-label-cache-'));
    for (const f of Object.values(files)) await copyFile(path.join(FIXTURES, 'emnist-mini', f), path.join(dir, f));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads each file once for repeated and concurrent submissions, and again once it changes', async () => {
    const spec = { name: 'idx' as const, train: { images: files.images, labels: files.labels } };
    const readFile = vi.mocked(idx.readIdxFile);
    const readHeader = vi.mocked(idx.readIdxHeader);
    readFile.mockClear();
    readHeader.mockClear();
    const first = await readLabelsInfo(spec, dir);
    const again = await Promise.all(Array.from({ length: 20 }, () => readLabelsInfo(spec, dir)));
    for (const info of again) expect(info).toEqual(first);
    expect(readFile).toHaveBeenCalledTimes(1); // the labels
    expect(readHeader).toHaveBeenCalledTimes(1); // the images' header

    // Another labels file under the same name: 3 classes now, and a count that no longer matches the images.
    const n = first.trainCount + first.testCount;
    await writeFile(
      path.join(dir, files.labels),
      encodeIdxGz(
        [n],
        Uint8Array.from({ length: n }, (_, i) => i % 3),
      ),
    );
    const changed = await readLabelsInfo(spec, dir);
    expect(changed.numClasses).toBe(3);
    expect(readFile).toHaveBeenCalledTimes(2);
  });
});
