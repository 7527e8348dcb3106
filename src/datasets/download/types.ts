/** What the dataset download takes and returns (see fetch.ts). */
import type { NamedDatasetInfo } from '../../engine/data/registry.js';
import type { HttpOptions } from './http.js';

export interface FetchOptions extends HttpOptions {
  /**
   * Fetch from here instead of the registry's URLs (a local mirror, tests). 'files' kind: the one
   * base URL (`<base>/<file name>`), replacing the registry's list. 'zip-archive' kind: a URL ending
   * in `.zip` is the archive itself, anything else a base URL to which the archive's name is appended.
   */
  baseUrlOverride?: string;
  /** Progress and decisions, one line each (default: silent). */
  log?: (message: string) => void;
}

export interface FetchResult {
  /** Paths written by this call (official files, and EMNIST's mapping file). */
  written: string[];
  /** Paths already present and left alone. */
  skipped: string[];
}

/** What `fetchDatasetFiles` needs of a registry entry (a registry entry, or a fake one in tests). */
export type FetchableDataset = Pick<NamedDatasetInfo, 'files' | 'mappingFile' | 'download'> & { readonly name: string };
