/**
 * Downloading the named datasets into `DATA_DIR/<name>/` (used by `npm run data:fetch`).
 *
 * - 'files' kind (MNIST, Fashion-MNIST): each official file from the first base URL that works;
 *   the others are mirrors, tried in order on any failure (HTTP error, network error, bad sha256).
 * - 'zip-archive' kind (EMNIST): one zip, downloaded once to a cache and kept (archive.ts).
 *
 * A file already present with the official sha256 (or present when no sha256 is known, or present
 * as an uncompressed copy, which the loader accepts) is skipped (status.ts). Every file is written to
 * `<file>.part` and renamed into place only after its sha256 (when known) matched; a mismatch
 * deletes it and throws DatasetChecksumError (files.ts). Errors name the URL and HTTP status and end
 * with the registry's hint for copying the files by hand on a machine without internet access (http.ts).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetChecksumError } from '../../engine/data/errors.js';
import {
  DATASETS,
  downloadHint,
  getDatasetInfo,
  isNamedDataset,
  type DatasetDownload,
  type DatasetFileRole,
  type NamedDatasetInfo,
} from '../../engine/data/registry.js';
import type { NamedDatasetName } from '../../engine/data/types.js';
import { archiveUrl, fetchFromArchive } from './archive.js';
import { DatasetDownloadError, downloadTo, errorMessage, withSlash } from './http.js';
import { checkName, datasetFileStatus } from './status.js';
import type { FetchableDataset, FetchOptions, FetchResult } from './types.js';

export { CACHE_DIR_NAME } from './archive.js';
export { DatasetDownloadError } from './http.js';
export { datasetFileStatus, type FileState, type FileStatus } from './status.js';
export type { FetchableDataset, FetchOptions, FetchResult } from './types.js';

/** Download whatever is missing of a named dataset into `DATA_DIR/<name>/`. */
export async function fetchDataset(name: NamedDatasetName, dataDir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  return fetchDatasetFiles(getDatasetInfo(name), dataDir, opts);
}

/** `fetchDataset` for any registry-shaped entry (tests pass fake ones). */
export async function fetchDatasetFiles(info: FetchableDataset, dataDir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  checkName(info.name);
  const log = opts.log ?? (() => undefined);
  const result: FetchResult = { written: [], skipped: [] };
  const needed: DatasetFileRole[] = [];
  for (const st of await datasetFileStatus(info, dataDir, { mapping: false })) {
    if (st.role === 'mapping') continue;
    switch (st.state) {
      case 'verified':
        log(`${st.path}: present, sha256 ok`);
        result.skipped.push(st.path);
        break;
      case 'present':
        log(`${st.path}: present (no official sha256 to check)`);
        result.skipped.push(st.path);
        break;
      case 'uncompressed':
        log(`${st.path}: uncompressed copy present (not checked)`);
        result.skipped.push(st.path);
        break;
      case 'mismatch':
        log(`${st.path}: present but its sha256 is not the official one; downloading it again`);
        needed.push(st.role);
        break;
      case 'missing':
        needed.push(st.role);
        break;
    }
  }
  const dir = join(dataDir, info.name);
  const d = info.download;
  if (d.kind === 'files') {
    if (needed.length) await mkdir(dir, { recursive: true });
    for (const role of needed) result.written.push(await downloadOfficialFile(info, d, role, dataDir, opts, log));
  } else {
    await fetchFromArchive(info, d, needed, dataDir, opts, log, result);
  }
  return result;
}

/** The URL(s) a dataset is fetched from, after `baseUrlOverride`. */
export function sourceUrls(info: FetchableDataset, baseUrlOverride?: string): string[] {
  const d = info.download;
  if (d.kind === 'zip-archive') return [archiveUrl(d, baseUrlOverride)];
  return baseUrlOverride ? [withSlash(baseUrlOverride)] : [...d.baseUrls];
}

// ---------------------------------------------------------------------------------------------
// 'files' kind

async function downloadOfficialFile(
  info: FetchableDataset,
  d: Extract<DatasetDownload, { kind: 'files' }>,
  role: DatasetFileRole,
  dataDir: string,
  opts: FetchOptions,
  log: (m: string) => void,
): Promise<string> {
  const file = info.files[role];
  const dest = join(dataDir, info.name, file.name);
  const attempts: { url: string; error: string }[] = [];
  let checksumError: DatasetChecksumError | null = null;
  for (const base of sourceUrls({ ...info, download: d }, opts.baseUrlOverride)) {
    const url = base + file.name;
    try {
      log(`downloading ${url}`);
      await downloadTo(url, dest, { expectedSha256: file.sha256, opts, log });
      log(`wrote ${dest}`);
      return dest;
    } catch (err) {
      if (err instanceof DatasetChecksumError) checksumError = err;
      const msg = errorMessage(err);
      attempts.push({ url, error: msg });
      log(`  failed: ${msg}`);
    }
  }
  // A server that answered with the wrong bytes is the more useful thing to report.
  if (checksumError) throw checksumError;
  throw new DatasetDownloadError(`${info.name}/${file.name}`, attempts, fileHint(info, role, dataDir));
}

function isRegistryEntry(info: FetchableDataset): info is NamedDatasetInfo {
  return isNamedDataset(info.name) && DATASETS[info.name] === info;
}

/** The registry's hint for a named dataset; the same wording for other (test) entries. */
function fileHint(info: FetchableDataset, role: DatasetFileRole, dataDir: string): string {
  if (isRegistryEntry(info)) return downloadHint(info.name, role, dataDir);
  const file = info.files[role].name;
  const dir = join(dataDir, info.name);
  const d = info.download;
  if (d.kind === 'zip-archive') return `Get it from ${d.url} (member ${d.memberDir}${file} of the zip; see ${d.homepage}) and put it in ${dir}/.`;
  const [first, ...mirrors] = d.baseUrls;
  return `Download ${first}${file}` + (mirrors.length ? ` (mirrors: ${mirrors.map((u) => u + file).join(', ')})` : '') + ` and put it in ${dir}/.`;
}
