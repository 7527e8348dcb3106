/** Resolving user-supplied IDX paths safely below DATA_DIR. */
import { realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { DatasetFileMissingError, DatasetPathError } from './errors.js';

/** True when `p` is strictly below `root` (both absolute and normalised). */
export function isStrictlyInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel);
}

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * Resolve `rel` (a spec value such as `train.images`) against `dataDir` and check that it names an
 * existing regular file inside it — lexically and after following symlinks. Returns the real path.
 * @throws DatasetPathError (with `field`) on absolute paths, `..` escapes, symlink escapes, non-files;
 *         DatasetFileMissingError when nothing is there.
 */
export async function resolveDataPath(dataDir: string, rel: string, field: string): Promise<string> {
  if (typeof rel !== 'string' || rel.trim() === '') throw new DatasetPathError(field, String(rel), 'is empty');
  if (rel.includes('\0')) throw new DatasetPathError(field, rel, 'contains a NUL byte');
  if (isAbsolute(rel) || rel.startsWith('\\') || /^[A-Za-z]:/.test(rel)) {
    throw new DatasetPathError(field, rel, 'is absolute; IDX paths must be relative to the data directory');
  }
  const root = resolve(dataDir);
  const abs = resolve(root, rel);
  if (!isStrictlyInside(root, abs)) throw new DatasetPathError(field, rel, 'resolves outside the data directory');

  let real: string;
  try {
    real = await realpath(abs);
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') {
      throw new DatasetFileMissingError({
        field,
        file: basename(abs),
        path: abs,
        hint: '',
        message: `dataset.${field}: file ${JSON.stringify(rel)} not found (looked at ${abs})`,
      });
    }
    throw err;
  }
  const realRoot = await realpath(root);
  if (!isStrictlyInside(realRoot, real)) {
    throw new DatasetPathError(field, rel, 'resolves outside the data directory (through a symbolic link)');
  }
  const st = await stat(real);
  if (!st.isFile()) throw new DatasetPathError(field, rel, 'is not a regular file');
  return real;
}
