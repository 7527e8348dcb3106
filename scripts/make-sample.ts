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
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeIdxGz, readIdxFile, sha256, sha256File } from '../src/engine/data/idx.js';
import { mulberry32, randomInt } from '../src/engine/data/random.js';
import { DATASETS } from '../src/engine/data/registry.js';

const SEED = 20261202;
const TRAIN_PER_CLASS = 80;
const TEST_PER_CLASS = 20;
const PREFIX = 'emnist-sample';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(repo, 'datasets/emnist-sample');
// The test fixture's images are left out, so a model trained on the sample is not tested on them (or vice versa).
const FIXTURE_INDICES = join(repo, 'test/fixtures/emnist-mini/emnist-mini-indices.json');
const srcDir = resolve(process.argv[2] ?? process.env.EMNIST_BYMERGE_TEST_DIR ?? '/work/shared/data/emnist-bymerge-test');

async function main(): Promise<void> {
  const info = DATASETS['emnist-bymerge'];
  const imagesFile = info.files.testImages;
  const labelsFile = info.files.testLabels;
  const imagesPath = join(srcDir, imagesFile.name);
  const labelsPath = join(srcDir, labelsFile.name);
  for (const [path, f] of [
    [imagesPath, imagesFile],
    [labelsPath, labelsFile],
  ] as const) {
    const actual = await sha256File(path);
    if (actual !== f.sha256) throw new Error(`${path}: sha256 ${actual} is not the official ${f.sha256}`);
  }
  const images = await readIdxFile(imagesPath, { kind: 'images' });
  const labels = await readIdxFile(labelsPath, { kind: 'labels' });
  const [n, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== n || rows !== 28 || cols !== 28) throw new Error('unexpected source dims');

  // Per class: shuffle that class's indices (seeded), take the first 80 for train, next 20 for test.
  const fixture = JSON.parse(await readFile(FIXTURE_INDICES, 'utf8')) as { train: number[]; test: number[] };
  const excluded = new Set([...fixture.train, ...fixture.test]);
  const byClass: number[][] = Array.from({ length: info.numClasses }, () => []);
  for (let i = 0; i < n; i++) if (!excluded.has(i)) (byClass[labels.data[i] as number] as number[]).push(i);
  const rng = mulberry32(SEED);
  const trainIdx: number[] = [];
  const testIdx: number[] = [];
  byClass.forEach((list, c) => {
    const need = TRAIN_PER_CLASS + TEST_PER_CLASS;
    if (list.length < need) throw new Error(`class ${c} has only ${list.length} images`);
    for (let i = 0; i < need; i++) {
      const j = i + randomInt(rng, list.length - i);
      const t = list[i] as number;
      list[i] = list[j] as number;
      list[j] = t;
    }
    trainIdx.push(...list.slice(0, TRAIN_PER_CLASS));
    testIdx.push(...list.slice(TRAIN_PER_CLASS, need));
  });
  trainIdx.sort((a, b) => a - b); // keep the official file order
  testIdx.sort((a, b) => a - b);

  const slice = (idx: number[]) => {
    const px = new Uint8Array(idx.length * 784);
    const lb = new Uint8Array(idx.length);
    idx.forEach((src, k) => {
      px.set(images.data.subarray(src * 784, (src + 1) * 784), k * 784); // bytes copied as stored (transposed)
      lb[k] = labels.data[src] as number;
    });
    return { px, lb };
  };

  await mkdir(outDir, { recursive: true });
  const written: { name: string; bytes: number; sha: string; what: string }[] = [];
  const put = async (name: string, data: Buffer | string, what: string) => {
    await writeFile(join(outDir, name), data);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    written.push({ name, bytes: buf.length, sha: sha256(buf), what });
  };
  for (const [split, idx] of [
    ['train', trainIdx],
    ['test', testIdx],
  ] as const) {
    const { px, lb } = slice(idx);
    await put(`${PREFIX}-${split}-images-idx3-ubyte.gz`, encodeIdxGz([idx.length, 28, 28], px), `${idx.length} images, magic 0x00000803, dims ${idx.length}x28x28`);
    await put(`${PREFIX}-${split}-labels-idx1-ubyte.gz`, encodeIdxGz([idx.length], lb), `${idx.length} labels 0..46, magic 0x00000801`);
  }
  const mapping = info.labelNames.map((ch, i) => `${i} ${ch.charCodeAt(0)}\r\n`).join('');
  await put(`${PREFIX}-mapping.txt`, mapping, 'label -> ASCII code, same content as emnist-balanced-mapping.txt');
  await put(`${PREFIX}-indices.json`, JSON.stringify({ source: imagesFile.name, seed: SEED, train: trainIdx, test: testIdx }) + '\n', 'source indices (0-based, into the official ByMerge test split) of every sample image');

  const md = `# emnist-sample: Regula's built-in dataset, a stratified slice of the real EMNIST ByMerge test split

Used as \`"dataset": {"name": "emnist-sample"}\`: it ships with the repository (it is not read from
DATA_DIR), so a fresh clone trains on real data with no set-up. For the full splits: \`npm run data:fetch\`.

Generated by \`node --import tsx scripts/make-sample.ts\` (deterministic: seed ${SEED}, gzip level 9, mtime 0).
Do not edit by hand; rerun the script.

## Source

The official EMNIST ByMerge test files (byte-identical to the members of NIST's gzip.zip, see
/work/shared/data/emnist-bymerge-test/SOURCE.md), checked against their official sha256 before slicing:

| file | sha256 |
|---|---|
| ${imagesFile.name} | ${imagesFile.sha256} |
| ${labelsFile.name} | ${labelsFile.sha256} |

EMNIST: Cohen, Afshar, Tapson & van Schaik (2017), "EMNIST: an extension of MNIST to handwritten
letters", https://www.nist.gov/itl/products-and-services/emnist-dataset .

## Selection

For each of the 47 classes, that class's indices in the source were shuffled with mulberry32(${SEED})
(classes in order 0..46, partial Fisher-Yates, as in the script); the first ${TRAIN_PER_CLASS} went to train,
the next ${TEST_PER_CLASS} to test. Images of the test fixture test/fixtures/emnist-mini are left out first.
Train and test are disjoint; within each file images keep the source order. \`${PREFIX}-indices.json\` lists the source index of every image.

## Format

Exactly the official EMNIST format: IDX ubyte, magic 0x00000803 (images, dims n x 28 x 28) and
0x00000801 (labels, n). Pixels are stored **transposed**, as in every EMNIST file (display with
img.T). Labels 0..46, mapping "${info.labelNames.join('')}"
(\`${PREFIX}-mapping.txt\`, "label ascii" lines with CRLF, like emnist-balanced-mapping.txt).

Class names and the sha256 of the four IDX files are in the registry (src/engine/data/registry.ts).

## Files

| file | bytes | sha256 | content |
|---|---|---|---|
${written.map((w) => `| ${w.name} | ${w.bytes} | ${w.sha} | ${w.what} |`).join('\n')}
`;
  await writeFile(join(outDir, 'SOURCE.md'), md);
  let total = (await stat(join(outDir, 'SOURCE.md'))).size;
  for (const w of written) total += w.bytes;
  for (const w of written) console.log(`${w.name}\t${w.bytes}\t${w.sha}`);
  console.log(`total ${total} bytes in ${outDir}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
