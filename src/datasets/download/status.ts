/** What of a named dataset is already in `DATA_DIR/<name>/`, and whether it is the official bytes. */
import { join } from 'node:path';
import { sha256File } from '../../engine/data/idx.js';
import { DATASET_FILE_ROLES, type DatasetFileRole } from '../../engine/data/registry.js';
import { isFile } from './files.js';
import type { FetchableDataset } from './types.js';

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

/** State of each official file (and of the mapping file, unless `mapping: false`) in `DATA_DIR/<name>/`. */
export async function datasetFileStatus(info: FetchableDataset, dataDir: string, opts: { mapping?: boolean } = {}): Promise<FileStatus[]> {
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

/** The dataset's name becomes a folder name: nothing that could leave DATA_DIR. */
export function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new RangeError(`bad dataset name ${JSON.stringify(name)}`);
}
