/**
 * Studies that fill the machine (issue 10): the tutorial study (its 8 presets), 1 epoch, trained
 * one run at a time with every core, against packed — several runs at once, fewer threads each.
 *
 *   npm run build && node --import tsx bench/study-packing.ts [--limit N] [--backend onednn] [--modes 1x2,2x1]
 *
 * For each mode `<runs>x<threads>` a fresh `node dist/main.js all` (WORKER_CONCURRENCY=<runs>,
 * TRAINING_THREADS_PER_RUN=<threads>, its own PostgreSQL schema and queue prefix, a DATA_DIR holding
 * copies of the EMNIST ByMerge test split from --data) trains the same seeded study; the wall time
 * is from the study's submission to its last run finishing. Prints a table (mode, wall time, the
 * runs' summed samples/s, the slowest run) and writes it to bench/results/study-packing[-limitN].md.
 * Without --limit it trains on the full split (79,099 training images per run).
 *
 * Environment: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/regula_bench), REDIS_URL.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { MAIN, ROOT, say, sleep, until } from '../faults/support.js';
import { submit } from './support/service.js';

const { values: args } = parseArgs({
  options: {
    limit: { type: 'string' },
    backend: { type: 'string', default: 'onednn' },
    modes: { type: 'string', default: '1x2,2x1' },
    seed: { type: 'string', default: '2020' },
    data: { type: 'string', default: path.resolve(ROOT, '..', 'shared', 'data', 'emnist-bymerge-test') },
  },
});
const DB = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_bench';
const FILES = ['emnist-bymerge-test-images-idx3-ubyte.gz', 'emnist-bymerge-test-labels-idx1-ubyte.gz'];

interface StudyView {
  status: string;
  runs: { id: string; status: string; samplesPerSec: number | null; startedAt: string | null; finishedAt: string | null; backend: string | null }[];
}

async function runMode(mode: string, dataDir: string): Promise<string> {
  const [runs, threads] = mode.split('x').map(Number) as [number, number];
  const id = randomBytes(4).toString('hex');
  const schema = `bench_pack_${id}`;
  const port = 4100 + Math.floor(Math.random() * 800);
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [MAIN, 'all'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      DATABASE_URL: `${DB}?schema=${schema}`,
      QUEUE_PREFIX: `bench-pack-${id}`,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      TFJS_BACKEND: args.backend,
      WORKER_CONCURRENCY: String(runs),
      TRAINING_THREADS_PER_RUN: String(threads),
      LOG_LEVEL: 'warn',
      AUTH: 'off',
    },
  });
  try {
    await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 120_000);
    const limit = args.limit ? Number(args.limit) : undefined;
    const started = Date.now();
    const study = {
      id: await submit(base, '/v1/studies', {
        name: `packing ${mode}`,
        preset: 'tutorial',
        training: { epochs: 1, seed: Number(args.seed) },
        dataset: { name: 'idx', train: { images: `bymerge/${FILES[0]}`, labels: `bymerge/${FILES[1]}` }, testFraction: 0.15, ...(limit ? { limit } : {}) },
      }),
    };
    let view: StudyView;
    for (;;) {
      view = (await (await fetch(`${base}/v1/studies/${study.id}`)).json()) as StudyView;
      if (view.runs.every((r) => !['queued', 'running'].includes(r.status))) break;
      await sleep(2000);
    }
    const wallS = (Date.now() - started) / 1000;
    const failed = view.runs.filter((r) => r.status !== 'succeeded');
    const sps = view.runs.map((r) => r.samplesPerSec ?? 0);
    const slowest = Math.max(...view.runs.map((r) => (r.startedAt && r.finishedAt ? Date.parse(r.finishedAt) - Date.parse(r.startedAt) : 0))) / 1000;
    say(`${mode}: ${view.runs.length} runs, wall ${wallS.toFixed(1)} s, ${failed.length} not succeeded, backend ${view.runs[0]?.backend}`);
    return `| ${runs} × ${threads} | ${wallS.toFixed(1)} | ${Math.round(sps.reduce((a, b) => a + b, 0) / sps.length)} | ${slowest.toFixed(1)} | ${view.runs[0]?.backend ?? '?'} | ${failed.length ? `${failed.length} runs did not succeed` : 'all 8 succeeded'} |`;
  } finally {
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
    const client = new pg.Client({ connectionString: DB });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await client.end();
  }
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'regula-pack-data-'));
  try {
    await mkdir(path.join(dataDir, 'bymerge'));
    for (const f of FILES) await copyFile(path.join(args.data!, f), path.join(dataDir, 'bymerge', f));
    const rows: string[] = [];
    for (const mode of args.modes!.split(',')) rows.push(await runMode(mode.trim(), dataDir));
    const table = [
      `# The tutorial study (8 presets), 1 epoch: packed vs one at a time (\`bench/study-packing.ts\`)`,
      '',
      `Date: ${new Date().toISOString()}. Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, load average at the end ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(
          ' / ',
        )}. Data: EMNIST ByMerge test split${args.limit ? `, limit ${args.limit} images` : ' (full: 79,099 training images per run)'}. Backend ${args.backend}.`,
      '',
      '| runs at once × threads per run | study wall time s | mean samples/s per run | slowest run s | backend | outcome |',
      '|---|---:|---:|---:|---|---|',
      ...rows,
      '',
    ].join('\n');
    console.log(table);
    const out = path.join(ROOT, 'bench', 'results', `study-packing${args.limit ? `-limit${args.limit}` : ''}.md`);
    await writeFile(out, table);
    say(`written ${path.relative(ROOT, out)}`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
