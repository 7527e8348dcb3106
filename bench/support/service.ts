/**
 * Starts the real service for a benchmark: `node dist/main.js all` (migrations, API, one worker)
 * plus extra worker processes, on a private database, queue prefix and DATA_DIR holding copies of
 * the real EMNIST ByMerge test split (DATA_DIR refuses links that leave it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BYMERGE = {
  images: 'bymerge/emnist-bymerge-test-images-idx3-ubyte.gz',
  labels: 'bymerge/emnist-bymerge-test-labels-idx1-ubyte.gz',
};
/** Where the official EMNIST ByMerge test split lies by default (`--data`). */
export const BYMERGE_TEST_DIR = path.resolve(ROOT, '..', 'shared', 'data', 'emnist-bymerge-test');

/** The command-line options of the scripts that train the tutorial's presets through the service. */
export const TUTORIAL_OPTIONS = {
  epochs: { type: 'string', default: '2' },
  limit: { type: 'string' },
  backend: { type: 'string', default: 'auto' },
  seed: { type: 'string', default: '2020' },
  data: { type: 'string', default: BYMERGE_TEST_DIR },
} as const;

export interface Service {
  base: string;
  stop(): void;
}

/** `root`: the checkout whose built service runs (default: this one). */
export async function startService(opts: { source: string; workers: number; backend: string; root?: string }): Promise<Service> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'regula-bench-data-'));
  await mkdir(path.join(dataDir, 'bymerge'));
  for (const f of [BYMERGE.images, BYMERGE.labels]) await copyFile(path.join(opts.source, path.basename(f)), path.join(dataDir, f));
  const port = 3900 + Math.floor(Math.random() * 90);
  const env = {
    ...process.env,
    DATABASE_URL: process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_bench',
    QUEUE_PREFIX: `bench-${Date.now()}`,
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    TFJS_BACKEND: opts.backend,
    WORKER_CONCURRENCY: '1',
    LOG_LEVEL: 'warn',
  };
  const main = path.join(opts.root ?? ROOT, 'dist', 'main.js');
  const procs: ChildProcess[] = [spawn(process.execPath, [main, 'all'], { env, stdio: ['ignore', 'inherit', 'inherit'] })];
  // `all` runs one worker; more training threads come from separate worker processes.
  for (let i = 1; i < opts.workers; i++) procs.push(spawn(process.execPath, [main, 'worker'], { env, stdio: ['ignore', 'inherit', 'inherit'] }));
  const stop = () => procs.forEach((p) => p.kill('SIGTERM'));
  process.on('SIGINT', () => {
    stop();
    process.exit(130);
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      /* not up yet */
    }
    if (i > 120) {
      stop();
      throw new Error('the service did not come up');
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return { base, stop };
}

/**
 * POSTs a JSON body to the service (a run or a study) and returns the new resource's id; anything but
 * a 202 throws, naming `what`, the status and the answer.
 */
export async function submit(base: string, path: '/v1/runs' | '/v1/studies', body: unknown, what = `POST ${path}`): Promise<string> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 202) throw new Error(`${what}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}
