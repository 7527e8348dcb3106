/**
 * Builds datasets/emnist-sample/, the built-in dataset `emnist-sample`, from the REAL EMNIST ByMerge
 * test split: a stratified train set of 80 images per class (47 x 80 = 3,760) and a disjoint test set
 * of 20 per class (940), none of them in the test fixture emnist-mini, written as official-format
 * EMNIST IDX .gz files (same headers, same transposed storage), plus the mapping file, the chosen
 * indices and SOURCE.md. The sha256 sums it prints go into src/engine/data/registry.ts.
 *
 *   node --import tsx scripts/make-sample.ts [SOURCE_DIR]
 *
 * SOURCE_DIR defaults to $EMNIST_BYMERGE_TEST_DIR or /work/shared/data/emnist-bymerge-test and
 * must hold the official emnist-bymerge-test-{images-idx3,labels-idx1}-ubyte.gz (sha256-checked).
 * Output is deterministic (fixed seed, gzip mtime 0).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMain, sourceDirFromArgs, writeEmnistSlice } from './emnist-slice.js';

const PREFIX = 'emnist-sample';
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The test fixture's images are left out, so a model trained on the sample is not tested on them (or vice versa).
const FIXTURE_INDICES = join(repo, 'test/fixtures/emnist-mini/emnist-mini-indices.json');

runMain(async () => {
  const fixture = JSON.parse(await readFile(FIXTURE_INDICES, 'utf8')) as { train: number[]; test: number[] };
  await writeEmnistSlice(sourceDirFromArgs(), {
    seed: 20261202,
    trainPerClass: 80,
    testPerClass: 20,
    prefix: PREFIX,
    outDir: join(repo, 'datasets/emnist-sample'),
    excluded: new Set([...fixture.train, ...fixture.test]),
    indicesWhat: 'every sample image',
    doc: {
      title: "emnist-sample: Regula's built-in dataset, a stratified slice of the real EMNIST ByMerge test split",
      intro: `Used as \`"dataset": {"name": "emnist-sample"}\`: it ships with the repository (it is not read from
DATA_DIR), so a fresh clone trains on real data with no set-up. For the full splits: \`npm run data:fetch\`.`,
      script: 'scripts/make-sample.ts',
      selectionTail: `Images of the test fixture test/fixtures/emnist-mini are left out first.
Train and test are disjoint; within each file images keep the source order. \`${PREFIX}-indices.json\` lists the source index of every image.`,
      usage: 'Class names and the sha256 of the four IDX files are in the registry (src/engine/data/registry.ts).',
    },
  });
});
