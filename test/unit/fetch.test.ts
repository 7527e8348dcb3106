/**
 * Dataset download (src/datasets/download/) against a loopback HTTP server: mirrors, the EMNIST
 * zip archive (built here), skipping present files, checksum mismatches. No network beyond 127.0.0.1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DatasetChecksumError } from '../../src/engine/data/errors.js';
import { datasetFileStatus, DatasetDownloadError, fetchDataset, fetchDatasetFiles, type FetchableDataset } from '../../src/datasets/download/fetch.js';
import { encodeIdxGz, readIdxFile, sha256 } from '../../src/engine/data/idx.js';
import { DATASETS, DATASET_FILE_ROLES, type DatasetFileRole, type OfficialFile } from '../../src/engine/data/registry.js';

// ---- synthetic data ------------------------------------------------------------------------

function images(n: number, seed: number): Buffer {
  const px = new Uint8Array(n * 28 * 28);
  for (let i = 0; i < px.length; i++) px[i] = (i * 31 + seed * 7) & 0xff;
  return encodeIdxGz([n, 28, 28], px);
}
function labels(n: number, seed: number): Buffer {
  return encodeIdxGz(
    [n],
    Uint8Array.from({ length: n }, (_, i) => (i + seed) % 10),
  );
}

const LECUN = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
} as const satisfies Record<DatasetFileRole, string>;
const DIGITS = DATASETS['emnist-digits'];

/** Synthetic content per role, for a file-name set. */
function content(seed: number): Record<DatasetFileRole, Buffer> {
  return { trainImages: images(6, seed), trainLabels: labels(6, seed), testImages: images(3, seed + 1), testLabels: labels(3, seed + 1) };
}
const FILES_DATA = content(1);
const EMNIST_DATA = content(2);
const LETTERS_DATA = content(3);
const MAPPING = Buffer.from('0 48\r\n1 49\r\n2 50\r\n');

function officialFiles(names: Record<DatasetFileRole, string>, data: Record<DatasetFileRole, Buffer> | null): Record<DatasetFileRole, OfficialFile> {
  const out = {} as Record<DatasetFileRole, OfficialFile>;
  for (const r of DATASET_FILE_ROLES) out[r] = { name: names[r], sha256: data ? sha256(data[r]) : null, verifiedLocally: false };
  return out;
}

// ---- a minimal zip writer (deflate members, like NIST's gzip.zip) ------------------------------

function makeZip(members: readonly { name: string; data: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name, 'utf8');
    const isDir = m.name.endsWith('/');
    const comp = isDir ? Buffer.alloc(0) : deflateRawSync(m.data);
    const method = isDir ? 0 : 8;
    const crc = crc32(m.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(comp.length, 18);
    local.writeUInt32LE(m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, comp);
    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(0x02014b50, 0);
    cen.writeUInt16LE(20, 4);
    cen.writeUInt16LE(20, 6);
    cen.writeUInt16LE(method, 10);
    cen.writeUInt16LE(0x21, 14);
    cen.writeUInt32LE(crc, 16);
    cen.writeUInt32LE(comp.length, 20);
    cen.writeUInt32LE(m.data.length, 24);
    cen.writeUInt16LE(name.length, 28);
    cen.writeUInt32LE(offset, 42);
    central.push(cen, name);
    offset += local.length + name.length + comp.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

const ZIP = makeZip([
  { name: 'gzip/', data: Buffer.alloc(0) },
  ...DATASET_FILE_ROLES.map((r) => ({ name: `gzip/${DIGITS.files[r].name}`, data: EMNIST_DATA[r] })),
  { name: 'gzip/emnist-digits-mapping.txt', data: MAPPING },
  ...DATASET_FILE_ROLES.map((r) => ({ name: `gzip/${DATASETS['emnist-letters'].files[r].name}`, data: LETTERS_DATA[r] })),
  { name: 'gzip/emnist-letters-mapping.txt', data: MAPPING },
  { name: 'README.txt', data: Buffer.alloc(200_000, 0x61) },
]);

// ---- loopback server -------------------------------------------------------------------------

const routes = new Map<string, Buffer>();
const requests: string[] = [];
let server: Server;
let base = '';

beforeAll(async () => {
  for (const r of DATASET_FILE_ROLES) routes.set(`/live/${LECUN[r]}`, FILES_DATA[r]);
  routes.set('/cs_links/EMNIST/gzip.zip', ZIP);
  routes.set('/other/gzip.zip', makeZip([{ name: 'gzip/unrelated.txt', data: MAPPING }]));
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(url);
    const body = routes.get(url);
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(root, { recursive: true, force: true });
});

let root = '';
let dataDir = '';
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'regula-fetch-'));
});
beforeEach(async () => {
  dataDir = join(root, `d${n++}`);
  await mkdir(dataDir);
  requests.length = 0;
});

function filesEntry(over: Partial<FetchableDataset> = {}): FetchableDataset {
  return {
    name: 'fake-files',
    files: officialFiles(LECUN, FILES_DATA),
    mappingFile: null,
    download: { kind: 'files', baseUrls: [`${base}/dead/`, `${base}/live/`], homepage: 'http://example.invalid/' },
    ...over,
  };
}

function zipEntry(over: Partial<FetchableDataset> = {}): FetchableDataset {
  return {
    name: 'emnist-digits',
    files: officialFiles(Object.fromEntries(DATASET_FILE_ROLES.map((r) => [r, DIGITS.files[r].name])) as Record<DatasetFileRole, string>, EMNIST_DATA),
    mappingFile: 'emnist-digits-mapping.txt',
    download: { kind: 'zip-archive', url: `${base}/cs_links/EMNIST/gzip.zip`, memberDir: 'gzip/', homepage: 'http://example.invalid/' },
    ...over,
  };
}

const ls = async (dir: string): Promise<string[]> => (await readdir(dir)).sort();

// ---- tests -----------------------------------------------------------------------------------

describe('fetchDatasetFiles: files kind', () => {
  it('falls back to the second mirror when the first answers 404', async () => {
    const seen: string[] = [];
    const fetchImpl: typeof fetch = (input, init) => {
      seen.push(String(input));
      return fetch(input, init);
    };
    const logs: string[] = [];
    const r = await fetchDatasetFiles(filesEntry(), dataDir, { fetchImpl, log: (m) => logs.push(m) });
    const dir = join(dataDir, 'fake-files');
    expect(r.skipped).toEqual([]);
    expect(r.written).toEqual(DATASET_FILE_ROLES.map((role) => join(dir, LECUN[role])));
    for (const role of DATASET_FILE_ROLES) expect(await readFile(join(dir, LECUN[role]))).toEqual(FILES_DATA[role]);
    expect(await ls(dir)).toEqual(Object.values(LECUN).sort()); // no .part left over
    expect(requests).toEqual(DATASET_FILE_ROLES.flatMap((role) => [`/dead/${LECUN[role]}`, `/live/${LECUN[role]}`]));
    expect(seen).toHaveLength(8);
    expect(logs.some((l) => l.includes('HTTP 404'))).toBe(true);
    const idx = await readIdxFile(join(dir, LECUN.trainImages), { kind: 'images', expectedSha256: sha256(FILES_DATA.trainImages) });
    expect(idx.dims).toEqual([6, 28, 28]);
  });

  it('reports every URL with its status and the offline hint when all mirrors fail', async () => {
    const info = filesEntry({ download: { kind: 'files', baseUrls: [`${base}/dead/`, `${base}/gone/`], homepage: 'h' } });
    const err = await fetchDatasetFiles(info, dataDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetDownloadError);
    const msg = (err as Error).message;
    expect(msg).toContain(`${base}/dead/${LECUN.trainImages}: HTTP 404`);
    expect(msg).toContain(`${base}/gone/${LECUN.trainImages}: HTTP 404`);
    expect(msg).toMatch(/no internet access, copy the files by hand/);
    expect(msg).toContain(join(dataDir, 'fake-files'));
    expect(await ls(join(dataDir, 'fake-files'))).toEqual([]);
  });

  it('names the URL on a connection failure', async () => {
    const info = filesEntry({ download: { kind: 'files', baseUrls: ['http://127.0.0.1:1/x/'], homepage: 'h' } });
    await expect(fetchDatasetFiles(info, dataDir)).rejects.toThrow(/http:\/\/127\.0\.0\.1:1\/x\/train-images-idx3-ubyte\.gz: fetch failed/);
  });

  it('skips files already present with the right sha256, or present when no sha256 is known', async () => {
    await fetchDatasetFiles(filesEntry(), dataDir);
    requests.length = 0;
    const again = await fetchDatasetFiles(filesEntry(), dataDir);
    expect(again.written).toEqual([]);
    expect(again.skipped).toHaveLength(4);
    expect(requests).toEqual([]);

    // Hash unknown: any present file is kept; an uncompressed copy counts as present too.
    const unknown = filesEntry({ name: 'fake-unknown', files: officialFiles(LECUN, null) });
    const dir = join(dataDir, 'fake-unknown');
    await mkdir(dir);
    await writeFile(join(dir, LECUN.trainImages), 'whatever');
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), 'uncompressed');
    const r = await fetchDatasetFiles(unknown, dataDir, { baseUrlOverride: `${base}/live` });
    expect(r.skipped).toEqual([join(dir, LECUN.trainImages), join(dir, 'train-labels-idx1-ubyte')]);
    expect(r.written).toEqual([join(dir, LECUN.testImages), join(dir, LECUN.testLabels)]);
    expect(requests).toEqual([`/live/${LECUN.testImages}`, `/live/${LECUN.testLabels}`]);
  });

  it('downloads again a present file whose sha256 is wrong', async () => {
    const dir = join(dataDir, 'fake-files');
    await mkdir(dir);
    await writeFile(join(dir, LECUN.testLabels), 'corrupt');
    const r = await fetchDatasetFiles(filesEntry(), dataDir, { baseUrlOverride: `${base}/live/` });
    expect(r.written).toHaveLength(4);
    expect(await readFile(join(dir, LECUN.testLabels))).toEqual(FILES_DATA.testLabels);
    const st = await datasetFileStatus(filesEntry(), dataDir);
    expect(st.map((s) => s.state)).toEqual(['verified', 'verified', 'verified', 'verified']);
  });

  it('throws DatasetChecksumError on a sha256 mismatch and leaves no file behind', async () => {
    const files = officialFiles(LECUN, FILES_DATA);
    files.trainLabels = { ...files.trainLabels, sha256: 'ab'.repeat(32) };
    const info = filesEntry({ files, download: { kind: 'files', baseUrls: [`${base}/live/`], homepage: 'h' } });
    const err = await fetchDatasetFiles(info, dataDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetChecksumError);
    expect((err as DatasetChecksumError).actual).toBe(sha256(FILES_DATA.trainLabels));
    expect((err as Error).message).toContain(`${base}/live/${LECUN.trainLabels}`);
    // train images came first and were fine; the bad file and its .part are gone.
    expect(await ls(join(dataDir, 'fake-files'))).toEqual([LECUN.trainImages]);
  });

  it('fetchDataset uses the registry (official hashes) with baseUrlOverride', async () => {
    // The synthetic files are not the official MNIST files: the first one is rejected, nothing kept.
    await expect(fetchDataset('mnist', dataDir, { baseUrlOverride: `${base}/live` })).rejects.toBeInstanceOf(DatasetChecksumError);
    expect(await ls(join(dataDir, 'mnist'))).toEqual([]);
    expect(requests).toEqual([`/live/${LECUN.trainImages}`]);
  });
});

describe('fetchDatasetFiles: zip-archive kind', () => {
  it('downloads the archive once to .cache and extracts only the needed members', async () => {
    const logs: string[] = [];
    const r = await fetchDatasetFiles(zipEntry(), dataDir, { log: (m) => logs.push(m) });
    const dir = join(dataDir, 'emnist-digits');
    const names = DATASET_FILE_ROLES.map((role) => DIGITS.files[role].name);
    expect(r.written).toEqual([...names, 'emnist-digits-mapping.txt'].map((f) => join(dir, f)));
    expect(r.skipped).toEqual([]);
    expect(requests).toEqual(['/cs_links/EMNIST/gzip.zip']);
    expect(await ls(dataDir)).toEqual(['.cache', 'emnist-digits']);
    expect(await ls(join(dataDir, '.cache'))).toEqual(['gzip.zip']);
    expect(await readFile(join(dataDir, '.cache', 'gzip.zip'))).toEqual(ZIP);
    expect(await ls(dir)).toEqual([...names, 'emnist-digits-mapping.txt'].sort());
    for (const role of DATASET_FILE_ROLES) expect(await readFile(join(dir, DIGITS.files[role].name))).toEqual(EMNIST_DATA[role]);
    expect(await readFile(join(dir, 'emnist-digits-mapping.txt'))).toEqual(MAPPING);

    // Everything present: nothing downloaded, nothing extracted.
    requests.length = 0;
    const again = await fetchDatasetFiles(zipEntry(), dataDir);
    expect(again.written).toEqual([]);
    expect(again.skipped).toHaveLength(5);
    expect(requests).toEqual([]);

    // One file lost: extracted again from the cached archive, no download.
    await rm(join(dir, DIGITS.files.testLabels.name));
    const third = await fetchDatasetFiles(zipEntry(), dataDir);
    expect(third.written).toEqual([join(dir, DIGITS.files.testLabels.name)]);
    expect(requests).toEqual([]);
    expect(await readFile(join(dir, DIGITS.files.testLabels.name))).toEqual(EMNIST_DATA.testLabels);
  });

  it('a second split reuses the cached archive', async () => {
    await fetchDatasetFiles(zipEntry(), dataDir);
    const letters: FetchableDataset = {
      ...zipEntry(),
      name: 'emnist-letters',
      files: officialFiles(
        Object.fromEntries(DATASET_FILE_ROLES.map((r) => [r, DATASETS['emnist-letters'].files[r].name])) as Record<DatasetFileRole, string>,
        LETTERS_DATA,
      ),
      mappingFile: 'emnist-letters-mapping.txt',
    };
    const r = await fetchDatasetFiles(letters, dataDir);
    expect(r.written).toHaveLength(5);
    expect(requests).toEqual(['/cs_links/EMNIST/gzip.zip']);
  });

  it('baseUrlOverride + registry hashes: a mismatching member is rejected and nothing is kept', async () => {
    const err = await fetchDataset('emnist-digits', dataDir, { baseUrlOverride: `${base}/cs_links/EMNIST` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetChecksumError);
    expect((err as Error).message).toContain('gzip/emnist-digits-train-images-idx3-ubyte.gz');
    expect(requests).toEqual(['/cs_links/EMNIST/gzip.zip']);
    expect(await ls(join(dataDir, 'emnist-digits'))).toEqual([]);
  });

  it('an archive without the needed members is an error naming them', async () => {
    const info = zipEntry();
    await expect(fetchDatasetFiles(info, dataDir, { baseUrlOverride: `${base}/other/gzip.zip` })).rejects.toThrow(
      /no member gzip\/emnist-digits-train-images-idx3-ubyte\.gz/,
    );
    expect(await ls(join(dataDir, 'emnist-digits'))).toEqual([]);
  });

  it('a failed archive download names URL, status and where to put the zip by hand', async () => {
    const info = zipEntry({ download: { kind: 'zip-archive', url: `${base}/nope/gzip.zip`, memberDir: 'gzip/', homepage: 'h' } });
    const err = await fetchDatasetFiles(info, dataDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetDownloadError);
    const msg = (err as Error).message;
    expect(msg).toContain(`${base}/nope/gzip.zip: HTTP 404`);
    expect(msg).toContain(join(dataDir, '.cache', 'gzip.zip'));
    expect(await ls(join(dataDir, '.cache'))).toEqual([]); // no .part left
  });
});
