/**
 * The 'zip-archive' kind (EMNIST): NIST's one zip (~560 MB) is downloaded once to
 * `DATA_DIR/.cache/<archive name>` (via `<archive>.part` + rename) and kept there, so fetching a
 * second EMNIST split does not download it again; only the needed members (the four files and the
 * mapping file) are streamed out of it. A zip put at that path by hand is used as it is.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import yauzl from 'yauzl';
import { DatasetChecksumError, DatasetError } from '../../engine/data/errors.js';
import { DATASET_FILE_ROLES, type DatasetDownload, type DatasetFileRole } from '../../engine/data/registry.js';
import { isFile, writeVerified } from './files.js';
import { DatasetDownloadError, downloadTo, errorMessage, withSlash } from './http.js';
import type { FetchableDataset, FetchOptions, FetchResult } from './types.js';

export type ArchiveDownload = Extract<DatasetDownload, { kind: 'zip-archive' }>;

/** Cache folder for downloaded archives, below DATA_DIR. */
export const CACHE_DIR_NAME = '.cache';

interface Wanted {
  member: string;
  dest: string;
  sha256: string | null;
  /** The mapping file: informative only, so a missing member is a warning, not an error. */
  optional: boolean;
}

/** Extracts the `needed` files (and the mapping file when missing) from the cached or downloaded archive. */
export async function fetchFromArchive(
  info: FetchableDataset,
  d: ArchiveDownload,
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

function archiveName(url: string): string {
  let name = '';
  try {
    name = new URL(url).pathname.split('/').pop() ?? '';
  } catch {
    name = url.split('/').pop() ?? '';
  }
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) ? name : 'archive.zip';
}

/** The archive's URL after `baseUrlOverride`. */
export function archiveUrl(d: ArchiveDownload, override: string | undefined): string {
  if (!override) return d.url;
  if (/\.zip$/i.test(new URL(override).pathname)) return override;
  return withSlash(override) + archiveName(d.url);
}

function archiveHint(info: FetchableDataset, d: ArchiveDownload, roles: readonly DatasetFileRole[], dataDir: string): string {
  const members = (roles.length ? roles : DATASET_FILE_ROLES).map((r) => d.memberDir + info.files[r].name);
  return (
    `download ${d.url} elsewhere (see ${d.homepage}) and either put it at ` +
    `${join(dataDir, CACHE_DIR_NAME, archiveName(d.url))} (then run this again to extract it) ` +
    `or extract ${members.join(', ')} from it into ${join(dataDir, info.name)}/.`
  );
}
