/**
 * Builds test/fixtures/emnist-mini/ from the REAL EMNIST ByMerge test split:
 * a stratified train set of 30 images per class (47 x 30 = 1,410) and a disjoint test set of
 * 10 per class (470), written as official-format EMNIST IDX .gz files (same headers, same
 * transposed storage), plus the mapping file, the chosen indices and SOURCE.md.
 *
 *   node --import tsx scripts/make-fixtures.ts [SOURCE_DIR]
 *
 * SOURCE_DIR defaults to $EMNIST_BYMERGE_TEST_DIR or /work/shared/data/emnist-bymerge-test and
 * must hold the official emnist-bymerge-test-{images-idx3,labels-idx1}-ubyte.gz (sha256-checked).
 * Output is deterministic (fixed seed, gzip mtime 0).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMain, sourceDirFromArgs, writeEmnistSlice } from './emnist-slice.js';

const PREFIX = 'emnist-mini';
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

runMain(() =>
  writeEmnistSlice(sourceDirFromArgs(), {
    seed: 20240611,
    trainPerClass: 30,
    testPerClass: 10,
    prefix: PREFIX,
    outDir: join(repo, 'test/fixtures/emnist-mini'),
    indicesWhat: 'every fixture image',
    doc: {
      title: 'emnist-mini: a small slice of the real EMNIST ByMerge test split',
      script: 'scripts/make-fixtures.ts',
      selectionTail: `Train and test are disjoint; within each file images keep the source
order. \`${PREFIX}-indices.json\` lists the source index of every image.`,
      usage: "Load it as `{ name: 'idx', train: {...}, test: {...}, transposed: true, numClasses: 47 }`.",
    },
  }),
);
