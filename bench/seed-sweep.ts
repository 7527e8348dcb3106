/**
 * One preset over several seeds through the real service, on the full ByMerge test split
 * (85/15 holdout): per seed, the validation accuracy of every epoch and the test metrics, and how
 * many seeds ended above the majority-class rate ("recovered").
 *
 *   npm run build && node --import tsx bench/seed-sweep.ts --preset l1-activity --seeds 1,2,3,4,5 --epochs 3 \
 *        [--backend onednn] [--concurrency 1] [--root <another checkout, built>] [--out bench/results/x.json]
 *
 * --root runs another built checkout's service (dist/main.js) with this script, e.g. the code
 * before a fix, so that before and after are measured the same way.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BYMERGE, BYMERGE_TEST_DIR, machine, startService, submit } from './support/service.js';

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string', default: 'l1-activity' },
    seeds: { type: 'string', default: '1,2,3,4,5' },
    epochs: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'onednn' },
    concurrency: { type: 'string', default: '1' },
    root: { type: 'string' },
    label: { type: 'string', default: 'current' },
    data: { type: 'string', default: BYMERGE_TEST_DIR },
    out: { type: 'string' },
  },
});

/** The share of the largest class ('1') in the ByMerge test split: 6,400 of 116,323. */
const MAJORITY = 6400 / 116323;

interface Metrics {
  epochs: { epoch: number; valAccuracy: number | null; valLoss: number | null; accuracy: number; durationMs: number }[];
  test: { loss: number; accuracy: number } | null;
}

async function main(): Promise<void> {
  const seeds = args.seeds!.split(',').map(Number);
  const epochs = Number(args.epochs);
  const { base, stop } = await startService({
    source: args.data!,
    workers: Number(args.concurrency),
    backend: args.backend!,
    ...(args.root ? { root: args.root } : {}),
  });
  const started = Date.now();
  const ids = new Map<number, string>();
  for (const seed of seeds) {
    const body = {
      name: `${args.preset} seed ${seed}`,
      preset: args.preset,
      training: { epochs, seed },
      dataset: { name: 'idx', train: BYMERGE, testFraction: 0.15 },
    };
    ids.set(seed, await submit(base, '/v1/runs', body, `seed ${seed}`));
  }
  const rows: { seed: number; status: string; backend: string | null; samplesPerSec: number | null; valAccuracy: (number | null)[]; test: Metrics['test'] }[] =
    [];
  for (const seed of seeds) {
    for (;;) {
      const run = (await (await fetch(`${base}/v1/runs/${ids.get(seed)}`)).json()) as {
        status: string;
        backend: string | null;
        samplesPerSec: number | null;
        error: string | null;
      };
      if (['succeeded', 'failed', 'cancelled'].includes(run.status)) {
        const m = (await (await fetch(`${base}/v1/runs/${ids.get(seed)}/metrics`)).json()) as Metrics;
        rows.push({
          seed,
          status: run.status,
          backend: run.backend,
          samplesPerSec: run.samplesPerSec,
          valAccuracy: m.epochs.map((e) => e.valAccuracy),
          test: m.test,
        });
        console.error(
          `seed ${seed}: ${run.status} val=${m.epochs.map((e) => e.valAccuracy?.toFixed(3)).join(' → ')} test=${m.test?.accuracy.toFixed(4)} (${Math.round((Date.now() - started) / 1000)} s)${run.error ? ` ${run.error}` : ''}`,
        );
        break;
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
  stop();
  const recovered = rows.filter((r) => (r.test?.accuracy ?? 0) > 2 * MAJORITY).length;
  const summary = {
    label: args.label,
    preset: args.preset,
    epochs,
    seeds,
    backend: rows[0]?.backend ?? null,
    machine: machine(),
    date: new Date().toISOString(),
    wallSeconds: Math.round((Date.now() - started) / 1000),
    majorityRate: MAJORITY,
    recovered,
    rows,
  };
  console.log(JSON.stringify(summary, null, 2));
  if (args.out) {
    await mkdir(path.dirname(path.resolve(args.out)), { recursive: true });
    await writeFile(path.resolve(args.out), JSON.stringify(summary, null, 2) + '\n');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
