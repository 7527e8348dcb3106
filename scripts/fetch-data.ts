/**
 * Download named datasets into DATA_DIR (default ./data), as `DATA_DIR/<name>/<official file>`.
 *
 *   npm run data:fetch -- emnist-balanced [mnist ...]
 *   npm run data:fetch -- --list [name ...]        what is present / verified in DATA_DIR
 *   npm run data:fetch -- --base-url URL name ...   fetch from a local mirror instead
 *
 * Files already present with the official sha256 are skipped. EMNIST comes from NIST's one zip
 * (~560 MB), kept in DATA_DIR/.cache/ so that other EMNIST splits are extracted without
 * downloading it again. On a machine without internet access, copy the files by hand (each error
 * says from where and to where). Exit code 0 on success, 1 on any failure.
 */
import { dirname, resolve } from 'node:path';
import { datasetFileStatus, fetchDataset, sourceUrls, type FileState } from '../src/datasets/download/fetch.js';
import { DATASETS, isNamedDataset } from '../src/engine/data/registry.js';
import { NAMED_DATASETS, type NamedDatasetName } from '../src/engine/data/types.js';

const USAGE = `usage: npm run data:fetch -- [--base-url URL] <dataset> [<dataset> ...]
       npm run data:fetch -- --list [<dataset> ...]
datasets: ${NAMED_DATASETS.join(', ')}
DATA_DIR (env) is where they go; default ./data`;

class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface Args {
  list: boolean;
  baseUrl: string | undefined;
  names: NamedDatasetName[];
}

function parseArgs(argv: readonly string[]): Args | null {
  const out: Args = { list: false, baseUrl: undefined, names: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--help' || a === '-h') return null;
    else if (a === '--list') out.list = true;
    else if (a === '--base-url' || a.startsWith('--base-url=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (!v) throw new UsageError('--base-url needs a URL');
      out.baseUrl = v;
    } else if (a === '--all') out.names.push(...NAMED_DATASETS.filter((n) => !DATASETS[n].builtinDir));
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else if (isNamedDataset(a)) out.names.push(a);
    else throw new UsageError(`unknown dataset ${JSON.stringify(a)}; known: ${NAMED_DATASETS.join(', ')}`);
  }
  out.names = [...new Set(out.names)];
  return out;
}

const LABEL: Record<FileState, string> = {
  verified: 'verified',
  present: 'present (no official sha256)',
  uncompressed: 'present, uncompressed copy (not checked)',
  mismatch: 'PRESENT BUT SHA256 MISMATCH',
  missing: 'missing',
};

async function list(dataDir: string, names: readonly NamedDatasetName[], baseUrl: string | undefined): Promise<void> {
  console.log(`DATA_DIR ${dataDir}`);
  for (const name of names.length ? names : NAMED_DATASETS) {
    const info = DATASETS[name];
    // A built-in dataset is read from its own folder (datasets/<name>), not from DATA_DIR.
    const st = await datasetFileStatus(info, info.builtinDir ? dirname(info.builtinDir) : dataDir);
    const usable = st.filter((s) => s.role !== 'mapping').every((s) => s.state !== 'missing' && s.state !== 'mismatch');
    console.log(`\n${name}: ${info.title}${usable ? '  [ready]' : ''}`);
    for (const s of st) console.log(`  ${s.file.padEnd(44)} ${LABEL[s.state]}${s.state === 'uncompressed' ? ` (${s.path})` : ''}`);
    const d = info.download;
    const urls = sourceUrls(info, baseUrl);
    console.log(d.kind === 'zip-archive' ? `  from ${urls[0]} (zip, members ${d.memberDir}*)` : `  from ${urls.join(' | ')}`);
  }
}

async function main(): Promise<number> {
  let args: Args | null;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n${USAGE}`);
    return 1;
  }
  if (!args) {
    console.log(USAGE);
    return 0;
  }
  const dataDir = resolve(process.env.DATA_DIR || './data');
  if (args.list) {
    await list(dataDir, args.names, args.baseUrl);
    return 0;
  }
  if (!args.names.length) {
    console.error(`error: name at least one dataset\n${USAGE}`);
    return 1;
  }
  let failed = 0;
  for (const name of args.names) {
    const builtin = DATASETS[name].builtinDir;
    if (builtin) {
      console.log(`== ${name}: built in (${builtin}), nothing to fetch`);
      continue;
    }
    console.log(`== ${name} -> ${dataDir}/${name}`);
    try {
      const r = await fetchDataset(name, dataDir, { baseUrlOverride: args.baseUrl, log: (m) => console.log(`  ${m}`) });
      console.log(`  done: ${r.written.length} written, ${r.skipped.length} already present`);
    } catch (err) {
      failed++;
      console.error(`error: ${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (failed) console.error(`${failed} of ${args.names.length} dataset(s) failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
