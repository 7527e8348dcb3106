/**
 * Reproduces the tutorial's experiment through the real service (API + BullMQ + worker + Postgres)
 * on real EMNIST: the eight presets on the ByMerge test split (116,323 images, the same 47 classes
 * as Balanced) with a seeded, stratified 85/15 train/test holdout.
 *
 *   npm run build && node --import tsx bench/reproduce-tutorial.ts --epochs 2 [--limit 20000] [--concurrency 2] [--backend wasm]
 *
 * Prints a table in the tutorial's terms beside its figures and writes it to bench/results/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PRESETS, PRESET_NAMES } from '../src/run-spec/presets.js';
import { BYMERGE, ROOT as root, TUTORIAL_OPTIONS, machine, startService, submit } from './support/service.js';
const { values: args } = parseArgs({
  options: {
    ...TUTORIAL_OPTIONS,
    concurrency: { type: 'string', default: '2' },
    presets: { type: 'string', default: PRESET_NAMES.join(',') },
  },
});
const epochs = Number(args.epochs);
const limit = args.limit ? Number(args.limit) : undefined;
const presets = args.presets!.split(',');

interface RunView {
  id: string;
  status: string;
  backend: string | null;
  error: string | null;
  samplesPerSec: number | null;
}
interface Metrics {
  epochs: { epoch: number; loss: number; accuracy: number; valLoss: number | null; valAccuracy: number | null; durationMs: number }[];
  test: { loss: number; accuracy: number; parts: Record<string, number> | null } | null;
}

async function main(): Promise<void> {
  const { base, stop } = await startService({ source: args.data!, workers: Number(args.concurrency), backend: args.backend! });
  const started = Date.now();
  const dataset = {
    name: 'idx',
    train: BYMERGE,
    testFraction: 0.15,
    ...(limit ? { limit } : {}),
  };
  const ids: Record<string, string> = {};
  for (const preset of presets) {
    ids[preset] = await submit(base, '/v1/runs', { name: `tutorial ${preset}`, preset, training: { epochs, seed: Number(args.seed) }, dataset }, preset);
    console.error(`submitted ${preset}: ${ids[preset]}`);
  }

  const results: Record<string, { run: RunView; metrics: Metrics }> = {};
  while (Object.keys(results).length < presets.length) {
    for (const preset of presets) {
      if (results[preset]) continue;
      const run = (await (await fetch(`${base}/v1/runs/${ids[preset]}`)).json()) as RunView;
      if (['succeeded', 'failed', 'cancelled'].includes(run.status)) {
        const metrics = (await (await fetch(`${base}/v1/runs/${ids[preset]}/metrics`)).json()) as Metrics;
        results[preset] = { run, metrics };
        console.error(`${preset}: ${run.status} test=${JSON.stringify(metrics.test)} (${Math.round((Date.now() - started) / 1000)} s)`);
      }
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
  const wallS = (Date.now() - started) / 1000;
  stop();

  const f = (v: number | null | undefined, d = 4) => (v === null || v === undefined ? '—' : v.toFixed(d));
  const lines = [
    `| preset | test loss | test accuracy | final val accuracy | mean s/epoch | samples/s | tutorial test loss | tutorial test accuracy | tutorial note |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |`,
  ];
  let backend = '';
  for (const preset of presets) {
    const { run, metrics } = results[preset]!;
    backend ||= run.backend ?? '';
    const t = PRESETS[preset as keyof typeof PRESETS].tutorial;
    const last = metrics.epochs.at(-1);
    const meanS = metrics.epochs.reduce((s, e) => s + e.durationMs, 0) / Math.max(1, metrics.epochs.length) / 1000;
    lines.push(
      `| ${preset} | ${f(metrics.test?.loss)} | ${f(metrics.test?.accuracy)} | ${f(last?.valAccuracy)} | ${meanS.toFixed(1)} | ${f(run.samplesPerSec, 0)} | ${f(t.testLoss)} | ${f(t.testAccuracy)} | ${t.note}${run.status !== 'succeeded' ? `; run ${run.status}: ${run.error}` : ''} |`,
    );
  }
  const header = [
    `# Tutorial reproduction on real EMNIST (ByMerge test split, 47 classes)`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- data: ${limit ? `seeded stratified sample of ${limit} images from ` : ''}the 116,323-image EMNIST ByMerge test split, seeded stratified 85/15 train/test holdout (seed ${args.seed}); validation split 0.2 of train, as Keras`,
    `- epochs: ${epochs} (the tutorial trains 25 on EMNIST Balanced); batch 250, Adam 0.001, λ as in each preset`,
    `- backend: ${backend}; training processes: ${args.concurrency}`,
    `- machine: ${machine()}`,
    `- wall time: ${(wallS / 60).toFixed(1)} min for all ${presets.length} runs`,
    '',
  ];
  const text = [...header, ...lines, ''].join('\n');
  console.log(text);
  await mkdir(path.join(root, 'bench', 'results'), { recursive: true });
  const out = path.join(root, 'bench', 'results', `reproduce-tutorial-${epochs}ep${limit ? `-limit${limit}` : ''}.md`);
  await writeFile(out, text);
  console.error(`wrote ${path.relative(root, out)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
