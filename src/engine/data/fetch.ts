/**
 * Downloading the named datasets into `DATA_DIR/<name>/` (used by `npm run data:fetch`).
 *
 * - 'files' kind (MNIST, Fashion-MNIST): each official file from the first base URL that works;
 *   the others are mirrors, tried in order on any failure (HTTP error, network error, bad sha256).
 * - 'zip-archive' kind (EMNIST): NIST's one zip (~560 MB) is downloaded once to
 *   `DATA_DIR/.cache/<archive name>` (via `<archive>.part` + rename) and kept there, so fetching a
 *   second EMNIST split does not download it again; only the needed members (the four files and the
 *   mapping file) are streamed out of it. A zip put at that path by hand is used as it is.
 *
 * A file already present with the official sha256 (or present when no sha256 is known, or present
 * as an uncompressed copy, which the loader accepts) is skipped. Every file is written to
 * `<file>.part` and renamed into place only after its sha256 (when known) matched; a mismatch
 * deletes it and throws DatasetChecksumError. Errors name the URL and HTTP status and end with the
 * registry's hint for copying the files by hand on a machine without internet access.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import { DatasetChecksumError, DatasetError } from './errors.js';
import { sha256File } from './idx.js';
import {
  DATASET_FILE_ROLES,
  DATASETS,
  downloadHint,
  getDatasetInfo,
  isNamedDataset,
  type DatasetDownload,
  type DatasetFileRole,
  type NamedDatasetInfo,
} from './registry.js';
import type { NamedDatasetName } from './types.js';

export interface FetchOptions {
  /**
   * Fetch from here instead of the registry's URLs (a local mirror, tests). 'files' kind: the one
   * base URL (`<base>/<file name>`), replacing the registry's list. 'zip-archive' kind: a URL ending
   * in `.zip` is the archive itself, anything else a base URL to which the archive's name is appended.
   */
  baseUrlOverride?: string;
  /** Progress and decisions, one line each (default: silent). */
  log?: (message: string) => void;
  /** Default: the global `fetch`. */
  fetchImpl?: typeof fetch;
  /** Abort a download when no data arrived for this long (default 60 s). */
  idleTimeoutMs?: number;
}

export interface FetchResult {
  /** Paths written by this call (official files, and EMNIST's mapping file). */
  written: string[];
  /** Paths already present and left alone. */
  skipped: string[];
}

/** What `fetchDatasetFiles` needs of a registry entry (a registry entry, or a fake one in tests). */
export type FetchableDataset = Pick<NamedDatasetInfo, 'files' | 'mappingFile' | 'download'> & { readonly name: string };

/**
 * - verified: present, sha256 matches the official one
 * - present: present, no official sha256 known (mapping files: present)
 * - uncompressed: only the uncompressed copy (name without `.gz`) is present; not checked
 * - mismatch: present, sha256 differs from the official one
 * - missing: neither the file nor an uncompressed copy
 */
export type FileState = 'verified' | 'present' | 'uncompressed' | 'mismatch' | 'missing';

export interface FileStatus {
  role: DatasetFileRole | 'mapping';
  /** Official file name. */
  file: string;
  /** Where it is (or would be): the uncompressed copy's path when state is 'uncompressed'. */
  path: string;
  state: FileState;
}

/** A download failed on every URL tried. The message lists each URL with its error, then the hint. */
export class DatasetDownloadError extends DatasetError {
  override readonly name: string = 'DatasetDownloadError';
  /** One entry per URL tried. */
  readonly attempts: readonly { url: string; error: string }[];
  /** How to get the file(s) by hand. */
  readonly hint: string;
  constructor(what: string, attempts: readonly { url: string; error: string }[], hint: string) {
    super(
      `could not download ${what}:\n` +
        attempts.map((a) => `  ${a.url}: ${a.error}\n`).join('') +
        `If this machine has no internet access, copy the files by hand: ${hint}`,
      'DATASET_FILE_MISSING',
    );
    this.attempts = attempts;
    this.hint = hint;
  }
}

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Cache folder for downloaded archives, below DATA_DIR. */
export const CACHE_DIR_NAME = '.cache';

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

/** State of each official file (and of the mapping file, unless `mapping: false`) in `DATA_DIR/<name>/`. */
export async function datasetFileStatus(
  info: FetchableDataset,
  dataDir: string,
  opts: { mapping?: boolean } = {},
): Promise<FileStatus[]> {
  checkName(info.name);
  const dir = join(dataDir, info.name);
  const out: FileStatus[] = [];
  for (const role of DATASET_FILE_ROLES) {
    const f = info.files[role];
    const path = join(dir, f.name);
    if (await isFile(path)) {
      const state: FileState = f.sha256 === null ? 'present' : (await sha256File(path)) === f.sha256.toLowerCase() ? 'verified' : 'mismatch';
      out.push({ role, file: f.name, path, state });
      continue;
    }
    const uncompressed = path.replace(/\.gz$/, '');
    if (uncompressed !== path && (await isFile(uncompressed))) {
      out.push({ role, file: f.name, path: uncompressed, state: 'uncompressed' });
      continue;
    }
    out.push({ role, file: f.name, path, state: 'missing' });
  }
  if (opts.mapping !== false && info.mappingFile) {
    const path = join(dir, info.mappingFile);
    out.push({ role: 'mapping', file: info.mappingFile, path, state: (await isFile(path)) ? 'present' : 'missing' });
  }
  return out;
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

// ---------------------------------------------------------------------------------------------
// 'zip-archive' kind

interface Wanted {
  member: string;
  dest: string;
  sha256: string | null;
  /** The mapping file: informative only, so a missing member is a warning, not an error. */
  optional: boolean;
}

async function fetchFromArchive(
  info: FetchableDataset,
  d: Extract<DatasetDownload, { kind: 'zip-archive' }>,
  needed: readonly DatasetFileRole[],
  dataDir: string,
  opts: FetchOptions,
  log: (m: string) => void,
  result: FetchResult,
): Promise<void> {
  const dir = join(dataDir, info.name);
  const archivePath = join(dataDir, CACHE_DIR_NAME, archiveName(d.url));
  const wanted: Wanted[] = needed.map((role) => ({
    member: d.memberDir + info.files[role].name,
    dest: join(dir, info.files[role].name),
    sha256: info.files[role].sha256,
    optional: false,
  }));
  const mappingPath = info.mappingFile ? join(dir, info.mappingFile) : null;
  const mappingMissing = mappingPath !== null && !(await isFile(mappingPath));
  if (mappingPath && !mappingMissing) result.skipped.push(mappingPath);
  const cached = await isFile(archivePath);
  if (mappingMissing && info.mappingFile) {
    if (wanted.length || cached) {
      wanted.push({ member: d.memberDir + info.mappingFile, dest: mappingPath, sha256: null, optional: true });
    } else {
      log(`${mappingPath}: missing (informative only; not downloading the archive just for it)`);
    }
  }
  if (!wanted.length) return;

  let downloaded = false;
  if (cached) {
    log(`using the cached archive ${archivePath}`);
  } else {
    const url = archiveUrl(d, opts.baseUrlOverride);
    await mkdir(join(dataDir, CACHE_DIR_NAME), { recursive: true });
    log(`downloading ${url} (once, to ${archivePath})`);
    try {
      await downloadTo(url, archivePath, { expectedSha256: null, opts, log });
    } catch (err) {
      throw new DatasetDownloadError(`the ${info.name} archive`, [{ url, error: errorMessage(err) }], archiveHint(info, d, needed, dataDir));
    }
    downloaded = true;
    log(`wrote ${archivePath} (kept for other splits; delete it to free the space)`);
  }

  await mkdir(dir, { recursive: true });
  const written = await extractMembers(archivePath, wanted, downloaded, log);
  result.written.push(...written);
}

async function extractMembers(archivePath: string, wanted: readonly Wanted[], downloaded: boolean, log: (m: string) => void): Promise<string[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(archivePath, { lazyEntries: true, autoClose: false });
  } catch (err) {
    if (downloaded) await rm(archivePath, { force: true });
    throw new DatasetError(
      `${archivePath}: not a readable zip archive (${errorMessage(err)}); ` +
        (downloaded ? 'it was deleted, run again to download it again.' : 'delete it and run again to download it again.'),
      'DATASET_FILE_MISSING',
    );
  }
  const written: string[] = [];
  try {
    const names = new Set(wanted.map((w) => w.member));
    const entries = new Map<string, yauzl.Entry>();
    for await (const entry of zip.eachEntry()) if (names.has(entry.fileName)) entries.set(entry.fileName, entry);
    const absent = wanted.filter((w) => !w.optional && !entries.has(w.member)).map((w) => w.member);
    if (absent.length) {
      throw new DatasetError(`${archivePath}: the archive has no member ${absent.join(', ')} (is it the right archive?)`, 'DATASET_FILE_MISSING');
    }
    for (const w of wanted) {
      const entry = entries.get(w.member);
      if (!entry) {
        log(`${archivePath}: no member ${w.member} (informative only; skipped)`);
        continue;
      }
      log(`extracting ${w.member} -> ${w.dest}`);
      const stream = await zip.openReadStreamPromise(entry);
      try {
        await writeVerified(stream, w.dest, {
          expectedSha256: w.sha256,
          crc32: entry.crc32 >>> 0,
          source: `${archivePath}:${w.member}`,
          total: entry.uncompressedSize,
          log: () => undefined,
        });
      } catch (err) {
        if (err instanceof DatasetChecksumError) err.message += ` If ${archivePath} is not the official archive, delete it and run again.`;
        throw err;
      }
      written.push(w.dest);
    }
  } finally {
    zip.close();
  }
  return written;
}

// ---------------------------------------------------------------------------------------------
// HTTP + verified writes

class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  constructor(
    readonly url: string,
    readonly status: number,
    statusText: string,
  ) {
    super(`HTTP ${status}${statusText ? ' ' + statusText : ''}`);
  }
}

/** GET `url` and stream the body to `dest` (via `dest.part`), checking the sha256 when known. */
async function downloadTo(
  url: string,
  dest: string,
  a: { expectedSha256: string | null; opts: FetchOptions; log: (m: string) => void },
): Promise<void> {
  const fetchImpl = a.opts.fetchImpl ?? fetch;
  const idleMs = a.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const ctrl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => ctrl.abort(new Error(`no data for ${Math.round(idleMs / 1000)} s`)), idleMs);
    timer.unref();
  };
  arm();
  try {
    let res: Response;
    try {
      // identity: a .gz must arrive as stored, not transparently gunzipped.
      res = await fetchImpl(url, { headers: { 'accept-encoding': 'identity' }, redirect: 'follow', signal: ctrl.signal });
    } catch (err) {
      throw new Error(describeFetchError(err, ctrl.signal));
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new HttpStatusError(url, res.status, res.statusText);
    }
    if (!res.body) throw new Error('empty response body');
    const encoded = (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
    const length = Number(res.headers.get('content-length'));
    const total = !encoded && Number.isSafeInteger(length) && length > 0 ? length : null;
    try {
      await writeVerified(Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>), dest, {
        expectedSha256: a.expectedSha256,
        crc32: null,
        source: url,
        total,
        exactTotal: total !== null,
        onChunk: arm,
        log: a.log,
      });
    } catch (err) {
      if (ctrl.signal.aborted && !(err instanceof DatasetChecksumError)) {
        throw new Error(`download aborted: ${describeFetchError(ctrl.signal.reason, null)}`);
      }
      throw err;
    }
  } finally {
    clearTimeout(timer);
  }
}

interface WriteOptions {
  expectedSha256: string | null;
  /** CRC-32 of the data (zip members), or null. */
  crc32: number | null;
  /** URL or archive member, for messages. */
  source: string;
  /** Expected byte count (progress; checked when `exactTotal`). */
  total: number | null;
  exactTotal?: boolean;
  onChunk?: () => void;
  log: (m: string) => void;
}

/** Stream to `dest.part`, verify (sha256, CRC-32, length), then rename to `dest`; never leaves a partial file. */
async function writeVerified(source: Readable, dest: string, o: WriteOptions): Promise<void> {
  const tmp = dest + '.part';
  const hash = createHash('sha256');
  let crc = 0;
  let bytes = 0;
  const step = o.total !== null && o.total >= 8 * MiB ? Math.ceil(o.total / 10) : 64 * MiB;
  let nextReport = step;
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          if (o.crc32 !== null) crc = crc32(chunk, crc);
          bytes += chunk.length;
          o.onChunk?.();
          if (bytes >= nextReport) {
            o.log(`  ${mib(bytes)}${o.total !== null ? ` of ${mib(o.total)} (${Math.floor((100 * bytes) / o.total)}%)` : ''}`);
            while (nextReport <= bytes) nextReport += step;
          }
          yield chunk;
        }
      },
      createWriteStream(tmp),
    );
    if (o.exactTotal && o.total !== null && bytes !== o.total) {
      throw new Error(`truncated download: got ${bytes} of ${o.total} bytes`);
    }
    if (o.crc32 !== null && crc >>> 0 !== o.crc32) {
      throw new DatasetError(`${o.source}: CRC-32 mismatch, the archive is corrupt; delete it and run again`, 'DATASET_CHECKSUM');
    }
    const actual = hash.digest('hex');
    if (o.expectedSha256 !== null && actual !== o.expectedSha256.toLowerCase()) {
      const err = new DatasetChecksumError(dest, o.expectedSha256, actual);
      err.message += ` (source: ${o.source}; nothing was kept)`;
      throw err;
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new RangeError(`bad dataset name ${JSON.stringify(name)}`);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function withSlash(base: string): string {
  return base.endsWith('/') ? base : base + '/';
}

function archiveName(url: string): string {
  let name = '';
  try {
    name = new URL(url).pathname.split('/').pop() ?? '';
  } catch {
    name = url.split('/').pop() ?? '';
  }
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) ? name : 'archive.zip';
}

function archiveUrl(d: Extract<DatasetDownload, { kind: 'zip-archive' }>, override: string | undefined): string {
  if (!override) return d.url;
  if (/\.zip$/i.test(new URL(override).pathname)) return override;
  return withSlash(override) + archiveName(d.url);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** undici's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, certificate...). */
function describeFetchError(err: unknown, signal: AbortSignal | null): string {
  if (signal?.aborted) return `aborted: ${errorMessage(signal.reason)}`;
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${err.message} (${code ? code + ': ' : ''}${cause.message})`;
  }
  return err.message;
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

function archiveHint(
  info: FetchableDataset,
  d: Extract<DatasetDownload, { kind: 'zip-archive' }>,
  roles: readonly DatasetFileRole[],
  dataDir: string,
): string {
  const members = (roles.length ? roles : DATASET_FILE_ROLES).map((r) => d.memberDir + info.files[r].name);
  return (
    `download ${d.url} elsewhere (see ${d.homepage}) and either put it at ` +
    `${join(dataDir, CACHE_DIR_NAME, archiveName(d.url))} (then run this again to extract it) ` +
    `or extract ${members.join(', ')} from it into ${join(dataDir, info.name)}/.`
  );
}
