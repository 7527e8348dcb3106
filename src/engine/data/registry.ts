/**
 * The named datasets: official file names, class counts, storage orientation, label names,
 * known sha256 sums and where to get the files. Data only (no download code).
 *
 * Layout on disk: `DATA_DIR/<dataset name>/<official file name>`, e.g.
 * `DATA_DIR/emnist-balanced/emnist-balanced-train-images-idx3-ubyte.gz`,
 * `DATA_DIR/mnist/train-images-idx3-ubyte.gz`. An uncompressed copy under the name without `.gz`
 * is accepted too (its hash is then not checked).
 *
 * sha256 sums: the list in github.com/notwa/mnists, mnists/hashes.py (commit
 * 2f0b985acf246e5c960d03e552e3c6e127b1b8a7), the source also cited by /work/shared/data/*
 * /SOURCE.md. Six of them were checked locally against real files (see `verifiedLocally`):
 * emnist-bymerge test images+labels and emnist-balanced train+test labels; the emnist-balanced
 * image hashes also agree with the Git LFS pointers of github.com/aurelienduarte/emnist. Any hash
 * we do not have is `null` and is then not checked.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NAMED_DATASETS, type NamedDatasetName } from './types.js';

export type DatasetFileRole = 'trainImages' | 'trainLabels' | 'testImages' | 'testLabels';
export const DATASET_FILE_ROLES: readonly DatasetFileRole[] = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];

export interface OfficialFile {
  /** Official file name (gzipped IDX). */
  readonly name: string;
  /** sha256 (hex) of the official .gz file, or null when unknown. */
  readonly sha256: string | null;
  /** True when this hash was reproduced on a real copy of the file in this project. */
  readonly verifiedLocally: boolean;
}

export type DatasetDownload =
  /** One zip archive holding all EMNIST splits; members are `<memberDir><file name>`. */
  | { readonly kind: 'zip-archive'; readonly url: string; readonly memberDir: string; readonly homepage: string }
  /** Individual files: `<baseUrl><file name>`, first URL preferred, the others are mirrors. */
  | { readonly kind: 'files'; readonly baseUrls: readonly string[]; readonly homepage: string };

export interface NamedDatasetInfo {
  readonly name: NamedDatasetName;
  readonly title: string;
  readonly numClasses: number;
  /** Subtracted from the stored labels: emnist-letters stores 1..26, everything else 0-based. */
  readonly labelOffset: number;
  /** Images stored transposed (all EMNIST splits); the loader un-transposes them. */
  readonly transposed: boolean;
  /** Name of class i (after the label offset). */
  readonly labelNames: readonly string[];
  readonly files: Readonly<Record<DatasetFileRole, OfficialFile>>;
  /** EMNIST's `<name>-mapping.txt` ("label ascii-code" lines); informative only, not needed to load. */
  readonly mappingFile: string | null;
  readonly download: DatasetDownload;
  /**
   * Folder of a dataset that ships with Regula (read from there, not from DATA_DIR); null for the
   * datasets that are downloaded. Its files are checked against the sha256 sums above like any other.
   */
  readonly builtinDir: string | null;
}

/** datasets/ at the repository root: three levels up from src/engine/data/ and from dist/engine/data/. */
const BUILTIN_ROOT = fileURLToPath(new URL('../../../datasets/', import.meta.url));

const EMNIST_DOWNLOAD: DatasetDownload = {
  kind: 'zip-archive',
  url: 'https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip',
  memberDir: 'gzip/',
  homepage: 'https://www.nist.gov/itl/products-and-services/emnist-dataset',
};
const MNIST_DOWNLOAD: DatasetDownload = {
  kind: 'files',
  baseUrls: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'https://storage.googleapis.com/cvdf-datasets/mnist/', 'http://yann.lecun.com/exdb/mnist/'],
  homepage: 'http://yann.lecun.com/exdb/mnist/',
};
const FASHION_DOWNLOAD: DatasetDownload = {
  kind: 'files',
  baseUrls: ['http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/', 'https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/'],
  homepage: 'https://github.com/zalandoresearch/fashion-mnist',
};

const chars = (s: string): readonly string[] => Object.freeze([...s]);
const DIGITS = chars('0123456789');
/** emnist-balanced / emnist-bymerge: the 47 classes of emnist-balanced-mapping.txt. */
const BALANCED_47 = chars('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt');
const BYCLASS_62 = chars('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz');
/** emnist-letters merges upper and lower case: class i (file label i+1) is 'Aa'..'Zz'. */
const LETTERS_26 = Object.freeze([...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'].map((c) => c + c.toLowerCase()));
const FASHION_10 = Object.freeze(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);

function files(dataset: NamedDatasetName, names: Record<DatasetFileRole, string>, verified: readonly DatasetFileRole[] = []) {
  const out = {} as Record<DatasetFileRole, OfficialFile>;
  for (const role of DATASET_FILE_ROLES) {
    out[role] = Object.freeze({ name: names[role], sha256: SHA256[`${dataset}/${names[role]}`] ?? null, verifiedLocally: verified.includes(role) });
  }
  return Object.freeze(out);
}

function emnistNames(name: string): Record<DatasetFileRole, string> {
  return {
    trainImages: `${name}-train-images-idx3-ubyte.gz`,
    trainLabels: `${name}-train-labels-idx1-ubyte.gz`,
    testImages: `${name}-test-images-idx3-ubyte.gz`,
    testLabels: `${name}-test-labels-idx1-ubyte.gz`,
  };
}

const LECUN_NAMES: Record<DatasetFileRole, string> = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
};

function emnist(
  name: NamedDatasetName,
  title: string,
  labelNames: readonly string[],
  opts: { labelOffset?: number; verified?: readonly DatasetFileRole[]; builtin?: boolean } = {},
): NamedDatasetInfo {
  return Object.freeze({
    name,
    title,
    numClasses: labelNames.length,
    labelOffset: opts.labelOffset ?? 0,
    transposed: true,
    labelNames,
    files: files(name, emnistNames(name), opts.verified),
    mappingFile: `${name}-mapping.txt`,
    download: EMNIST_DOWNLOAD,
    builtinDir: opts.builtin ? join(BUILTIN_ROOT, name) : null,
  });
}

/** MNIST and Fashion-MNIST: LeCun's file names, stored upright, downloaded file by file. */
function lecun(name: NamedDatasetName, title: string, labelNames: readonly string[], download: DatasetDownload): NamedDatasetInfo {
  return Object.freeze({
    name,
    title,
    numClasses: labelNames.length,
    labelOffset: 0,
    transposed: false,
    labelNames,
    files: files(name, LECUN_NAMES),
    mappingFile: null,
    download,
    builtinDir: null,
  });
}

/** sha256 of the official .gz files (the list cited at the top of this file), by `<dataset>/<file name>`. */
const SHA256: Readonly<Record<string, string>> = {
  'emnist-balanced/emnist-balanced-train-images-idx3-ubyte.gz': '74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4',
  'emnist-balanced/emnist-balanced-train-labels-idx1-ubyte.gz': 'b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed',
  'emnist-balanced/emnist-balanced-test-images-idx3-ubyte.gz': '117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db',
  'emnist-balanced/emnist-balanced-test-labels-idx1-ubyte.gz': 'a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd',
  'emnist-byclass/emnist-byclass-train-images-idx3-ubyte.gz': '9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0',
  'emnist-byclass/emnist-byclass-train-labels-idx1-ubyte.gz': 'f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa',
  'emnist-byclass/emnist-byclass-test-images-idx3-ubyte.gz': '5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd',
  'emnist-byclass/emnist-byclass-test-labels-idx1-ubyte.gz': '501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a',
  'emnist-bymerge/emnist-bymerge-train-images-idx3-ubyte.gz': '39bf8c68037dad40db35348895f7e4e056e8c0a005ab78869c9fbc2c96e947be',
  'emnist-bymerge/emnist-bymerge-train-labels-idx1-ubyte.gz': '2c47293b9e62d6abf6ad05fbf67e40baa32adfd380b8d7b44dcc35534b64e1f1',
  'emnist-bymerge/emnist-bymerge-test-images-idx3-ubyte.gz': '5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683',
  'emnist-bymerge/emnist-bymerge-test-labels-idx1-ubyte.gz': '8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35',
  'emnist-digits/emnist-digits-train-images-idx3-ubyte.gz': 'f7c95004d14d81af89522e67d8f0c781dfb3bd544181c81bfe1eb6b41c35b726',
  'emnist-digits/emnist-digits-train-labels-idx1-ubyte.gz': '6638a6ff5fe2eefd9cca2471995b46c82986b8e4b2a70d2f5ce8e05d7edb319e',
  'emnist-digits/emnist-digits-test-images-idx3-ubyte.gz': '20ebe43509264f7639d37c835a3f0b009e90b29e00a099a03101abe1644a3f63',
  'emnist-digits/emnist-digits-test-labels-idx1-ubyte.gz': 'bad1834c45d5988e270b99d43b13edc3fd898f658ffbc2caf2846ef27f7b05b0',
  'emnist-letters/emnist-letters-train-images-idx3-ubyte.gz': '6288f418a917e007bf5fddb823a2dc7a5c6a35031401b93292a539cb12bd881f',
  'emnist-letters/emnist-letters-train-labels-idx1-ubyte.gz': '9759af91ea6bccdf07a6040fd085861f2ec88e37f7c3f5760f6feb57106fbe5c',
  'emnist-letters/emnist-letters-test-images-idx3-ubyte.gz': '50f0e93d75b99b463e9760b8345866f22587fa2c2fba472730a5ba09c693412d',
  'emnist-letters/emnist-letters-test-labels-idx1-ubyte.gz': '924955c31fe7fd809b7303b5c0141282955f4b8390c74cdfd5d80435e0f4b4cb',
  'emnist-sample/emnist-sample-train-images-idx3-ubyte.gz': 'd5af919524bf0bc1d176f47632da94b8b4398e68e38bd6f72d043a787e9d35d5',
  'emnist-sample/emnist-sample-train-labels-idx1-ubyte.gz': 'c255f197e8c4e17699fbb40b90976c01b00c9c3eb2959705674db518e7828779',
  'emnist-sample/emnist-sample-test-images-idx3-ubyte.gz': 'fe127fa913709d40cfdf11728786965e16bfe9215f89e8cb8e7f3f077230861f',
  'emnist-sample/emnist-sample-test-labels-idx1-ubyte.gz': '37e8fe05b7f40f9d48cd3098de5f6cd9cb42cbfc048fbb4e96b3924b68dac4f2',
  'emnist-mnist/emnist-mnist-train-images-idx3-ubyte.gz': '5f9942f441031c0f1f2e4d162059fd6e19ea808b34c328b6d16cab0ed24c78f2',
  'emnist-mnist/emnist-mnist-train-labels-idx1-ubyte.gz': '00c6d3c2342fdffb1711e0b5656cac4ce5862d2826399d383a9bac07d612e9f8',
  'emnist-mnist/emnist-mnist-test-images-idx3-ubyte.gz': 'b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6',
  'emnist-mnist/emnist-mnist-test-labels-idx1-ubyte.gz': 'bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca',
  'mnist/train-images-idx3-ubyte.gz': '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
  'mnist/train-labels-idx1-ubyte.gz': '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
  'mnist/t10k-images-idx3-ubyte.gz': '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
  'mnist/t10k-labels-idx1-ubyte.gz': 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
  'fashion-mnist/train-images-idx3-ubyte.gz': '08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc',
  'fashion-mnist/train-labels-idx1-ubyte.gz': 'b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc',
  'fashion-mnist/t10k-images-idx3-ubyte.gz': '78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229',
  'fashion-mnist/t10k-labels-idx1-ubyte.gz': '42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf',
};

export const DATASETS: Readonly<Record<NamedDatasetName, NamedDatasetInfo>> = Object.freeze({
  'emnist-balanced': emnist('emnist-balanced', 'EMNIST Balanced (47 classes, 131,600 characters)', BALANCED_47, { verified: ['trainLabels', 'testLabels'] }),
  'emnist-byclass': emnist('emnist-byclass', 'EMNIST ByClass (62 classes, unbalanced)', BYCLASS_62),
  'emnist-bymerge': emnist('emnist-bymerge', 'EMNIST ByMerge (47 classes, unbalanced)', BALANCED_47, { verified: ['testImages', 'testLabels'] }),
  'emnist-digits': emnist('emnist-digits', 'EMNIST Digits (10 classes)', DIGITS),
  'emnist-letters': emnist('emnist-letters', 'EMNIST Letters (26 case-merged classes; labels 1..26 in the files)', LETTERS_26, { labelOffset: 1 }),
  // Built in: datasets/emnist-sample (scripts/make-sample.ts; its SOURCE.md says how it was drawn).
  'emnist-sample': emnist('emnist-sample', 'EMNIST sample, built in (47 classes; 3,760 train + 940 test real ByMerge characters, stratified)', BALANCED_47, {
    verified: ['trainImages', 'trainLabels', 'testImages', 'testLabels'],
    builtin: true,
  }),
  'emnist-mnist': emnist('emnist-mnist', 'EMNIST MNIST (10 classes, MNIST-sized)', DIGITS),
  mnist: lecun('mnist', 'MNIST handwritten digits', DIGITS, MNIST_DOWNLOAD),
  'fashion-mnist': lecun('fashion-mnist', 'Fashion-MNIST (Zalando article images)', FASHION_10, FASHION_DOWNLOAD),
});

export function isNamedDataset(name: string): name is NamedDatasetName {
  return (NAMED_DATASETS as readonly string[]).includes(name);
}

export function getDatasetInfo(name: NamedDatasetName): NamedDatasetInfo {
  const info = DATASETS[name];
  if (!info) throw new RangeError(`unknown dataset ${JSON.stringify(name)}; known: ${NAMED_DATASETS.join(', ')}`);
  return info;
}

/** `DATA_DIR/<name>`, or the built-in dataset's own folder. */
export function datasetDir(dataDir: string, name: NamedDatasetName): string {
  return getDatasetInfo(name).builtinDir ?? join(dataDir, name);
}

/** `DATA_DIR/<name>/<official file name>` (or in the built-in dataset's folder) */
export function officialFilePath(dataDir: string, name: NamedDatasetName, role: DatasetFileRole): string {
  return join(datasetDir(dataDir, name), getDatasetInfo(name).files[role].name);
}

/** One sentence: where to get a dataset's file and where to put it. */
export function downloadHint(name: NamedDatasetName, role: DatasetFileRole, dataDir: string): string {
  const info = getDatasetInfo(name);
  const file = info.files[role].name;
  const dir = datasetDir(dataDir, name);
  const d = info.download;
  if (info.builtinDir) return `It ships with Regula in ${dir}/: restore that folder from the repository (git checkout -- datasets/${name}).`;
  if (d.kind === 'zip-archive') {
    return `Get it from ${d.url} (member ${d.memberDir}${file} of the zip; see ${d.homepage}) and put it in ${dir}/.`;
  }
  const [first, ...mirrors] = d.baseUrls;
  return `Download ${first}${file}` + (mirrors.length ? ` (mirrors: ${mirrors.map((u) => u + file).join(', ')})` : '') + ` and put it in ${dir}/.`;
}
