/**
 * The tutorial's table through the service, as studies with repeated seeds, on the full ByMerge
 * test split (116,323 images, 85/15 holdout), with the tutorial's sixteen charts.
 *
 *   npm run build && node --import tsx bench/reproduce-tutorial-study.ts --epochs 25 \
 *       --seeds 1,2,3 --seeded-presets baseline,l2-activity,l1-activity [--other-seeds 1] \
 *       [--backend onednn] [--workers 1] [--root <built checkout>] [--out bench/results/reproduce-tutorial-25ep]
 *
 * Two studies: the seeded presets × --seeds, and the other presets × --other-seeds (all eight
 * presets × --seeds with --seeded-presets all). Writes <out>.md (table beside the tutorial's figures,
 * spreads, wall times), <out>.json (every run's epochs and test metrics), and per preset the
 * loss and accuracy charts (training and validation, every seed) as SVG and PNG in <out>/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chartPng, overlayChart, type Series } from '../src/charts/index.js';
import { PRESETS, PRESET_NAMES } from '../src/run-spec/presets.js';
import type { EpochRow as StoredEpochRow } from '../src/events/run-events.js';
import { BYMERGE, BYMERGE_TEST_DIR, ROOT, machine, startService, submit } from './support/service.js';

const { values: args } = parseArgs({
  options: {
    epochs: { type: 'string', default: '25' },
    seeds: { type: 'string', default: '1,2,3' },
    'seeded-presets': { type: 'string', default: 'baseline,l2-activity,l1-activity' },
    'other-seeds': { type: 'string', default: '1' },
    backend: { type: 'string', default: 'onednn' },
    workers: { type: 'string', default: '1' },
    root: { type: 'string' },
    limit: { type: 'string' },
    data: { type: 'string', default: BYMERGE_TEST_DIR },
    out: { type: 'string', default: 'bench/results/reproduce-tutorial-25ep' },
    /** Report on studies already submitted to a running service instead of starting one: `--attach http://127.0.0.1:3944 --studies id1,id2`. */
    attach: { type: 'string' },
    studies: { type: 'string' },
  },
});

type Spread = { n: number; mean: number; sd: number; min: number; max: number };
interface VariantSummary {
  variant: string;
  runs: number;
  finished: number;
  seeds: number[];
  collapsed: number;
  metrics: Record<string, Spread | null>;
  overlapsWith: string[];
}
interface RunView {
  id: string;
  name: string;
  status: string;
  variant: string | null;
  backend: string | null;
  samplesPerSec: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  spec: { training: { seed: number } };
}
/** An epoch as GET /v1/runs/{id}/metrics lists it (its headline figures are all this script reads). */
type EpochRow = Omit<StoredEpochRow, 'details'>;

const epochs = Number(args.epochs);
const seeds = args.seeds!.split(',').map(Number);
const seeded = args['seeded-presets'] === 'all' ? [...PRESET_NAMES] : args['seeded-presets']!.split(',');
const others = PRESET_NAMES.filter((p) => !seeded.includes(p));
const otherSeeds = args['other-seeds']!.split(',').map(Number);

async function main(): Promise<void> {
  const attached = args.attach !== undefined;
  const { base, stop } = attached
    ? { base: args.attach!, stop: () => {} }
    : await startService({ source: args.data!, workers: Number(args.workers), backend: args.backend!, ...(args.root ? { root: args.root } : {}) });
  const started = Date.now();
  const dataset = { name: 'idx', train: BYMERGE, testFraction: 0.15, ...(args.limit ? { limit: Number(args.limit) } : {}) };
  const studies: { id: string; presets: string[]; seeds: number[] }[] = (args.studies ?? '')
    .split(',')
    .filter(Boolean)
    .map((id) => ({ id, presets: [], seeds: [] }));
  for (const [presets, s] of attached
    ? []
    : ([
        [seeded, seeds],
        [others, otherSeeds],
      ] as const)) {
    if (presets.length === 0) continue;
    const body = { name: `tutorial ${epochs}ep`, variants: presets.map((p) => ({ label: p, preset: p })), seeds: s, training: { epochs }, dataset };
    studies.push({ id: await submit(base, '/v1/studies', body, 'study'), presets: [...presets], seeds: [...s] });
  }
  console.error(`studies: ${studies.map((s) => s.id).join(', ')}`);

  const runs: RunView[] = [];
  const variants: VariantSummary[] = [];
  for (const study of studies) {
    for (;;) {
      const s = (await (await fetch(`${base}/v1/studies/${study.id}`)).json()) as { status: string; runs: RunView[]; counts: Record<string, number> };
      // Attached: report what has finished so far (the spreads are over succeeded runs only).
      if (s.status === 'completed' || s.status === 'cancelled' || attached) {
        runs.push(...s.runs);
        break;
      }
      console.error(`${new Date().toISOString()} study ${study.id}: ${JSON.stringify(s.counts)} (${Math.round((Date.now() - started) / 60000)} min)`);
      await new Promise((r) => setTimeout(r, 60_000));
    }
    const cmp = (await (await fetch(`${base}/v1/studies/${study.id}/comparison`)).json()) as { variants: VariantSummary[] };
    variants.push(...cmp.variants);
  }
  const firstStart = Math.min(...runs.map((r) => (r.startedAt ? Date.parse(r.startedAt) : Infinity)));
  const wallS = (attached && Number.isFinite(firstStart) ? Date.now() - firstStart : Date.now() - started) / 1000;
  const unfinished = runs.filter((r) => r.status !== 'succeeded').length;
  const curves = new Map<string, EpochRow[]>();
  for (const r of runs) curves.set(r.id, ((await (await fetch(`${base}/v1/runs/${r.id}/metrics`)).json()) as { epochs: EpochRow[] }).epochs);
  stop();

  const outBase = path.resolve(ROOT, args.out!);
  const chartDir = outBase;
  await mkdir(chartDir, { recursive: true });
  const charts: string[] = [];
  for (const preset of PRESET_NAMES) {
    const mine = runs.filter((r) => r.variant === preset);
    if (mine.length === 0) continue;
    for (const kind of ['loss', 'accuracy'] as const) {
      const series: Series[] = [];
      for (const which of ['Training', 'Validation'] as const) {
        for (const r of mine) {
          const pts = (curves.get(r.id) ?? []).map((e) => ({
            epoch: e.epoch,
            value: kind === 'loss' ? (which === 'Training' ? e.loss : e.valLoss) : which === 'Training' ? e.accuracy : e.valAccuracy,
          }));
          series.push({ label: `${which} ${kind} (seed ${r.spec.training.seed})`, group: `${which} ${kind}`, points: pts });
        }
      }
      const svg = await overlayChart(
        `${preset}: ${kind} (${mine.length} seed${mine.length > 1 ? 's' : ''})`,
        kind === 'loss' ? 'Loss value' : 'Accuracy value',
        series,
      );
      const file = path.join(chartDir, `${preset}-${kind}`);
      await writeFile(`${file}.svg`, svg);
      await writeFile(`${file}.png`, await chartPng(svg, 1));
      charts.push(path.relative(path.dirname(outBase), `${file}.svg`));
    }
  }

  const f = (v: number | null | undefined, d = 4) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
  const pm = (s: Spread | null | undefined, d = 4) => (s ? (s.n > 1 ? `${f(s.mean, d)} ± ${f(s.sd, d)}` : f(s.mean, d)) : '—');
  const range = (s: Spread | null | undefined) => (s && s.n > 1 ? `${f(s.min)} – ${f(s.max)}` : '—');
  const runSeconds = (r: RunView) => (r.startedAt && r.finishedAt ? (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000 : null);
  const lines = [
    '| preset | seeds | test accuracy (mean ± sd) | range | test loss, Keras (mean ± sd) | collapsed | tutorial test accuracy | tutorial test loss | tutorial note | mean s/run | samples/s |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |',
  ];
  for (const preset of PRESET_NAMES) {
    const v = variants.find((x) => x.variant === preset);
    if (!v) continue;
    const t = PRESETS[preset].tutorial;
    const mine = runs.filter((r) => r.variant === preset);
    const secs = mine.map(runSeconds).filter((x): x is number => x !== null);
    const sps = mine.map((r) => r.samplesPerSec).filter((x): x is number => x !== null);
    lines.push(
      `| ${preset} | ${v.seeds.join(', ')} | ${pm(v.metrics.testAccuracy)} | ${range(v.metrics.testAccuracy)} | ${pm(v.metrics.testLoss)} | ${v.collapsed} of ${v.finished} | ${f(t.testAccuracy)} | ${f(t.testLoss)} | ${t.note} | ${f(secs.reduce((a, b) => a + b, 0) / Math.max(1, secs.length), 0)} | ${f(sps.reduce((a, b) => a + b, 0) / Math.max(1, sps.length), 0)} |`,
    );
  }
  const perRun = [
    '| run | preset | seed | status | test accuracy | test loss | final val accuracy | wall s | samples/s |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of runs) {
    const c = curves.get(r.id) ?? [];
    const test = (r as unknown as { test: { accuracy: number; loss: number } | null }).test;
    perRun.push(
      `| ${r.id.slice(0, 8)} | ${r.variant} | ${r.spec.training.seed} | ${r.status}${r.error ? ` (${r.error})` : ''} | ${f(test?.accuracy)} | ${f(test?.loss)} | ${f(c.at(-1)?.valAccuracy)} | ${f(runSeconds(r), 0)} | ${f(r.samplesPerSec, 0)} |`,
    );
  }
  const text = [
    `# The tutorial's table at ${epochs} epochs, through the service`,
    '',
    `- date: ${new Date().toISOString()}; machine: ${machine()}; load average at the end ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
    `- data: the 116,323-image EMNIST ByMerge test split (47 classes, as Balanced), seeded stratified 85/15 train/test holdout per seed; validation split 0.2 of train (Keras)${args.limit ? `; sample of ${args.limit}` : ''}`,
    `- training: the tutorial's CNN and eight presets, ${epochs} epochs, batch 250, Adam 0.001 (tf.keras ε), λ as in each preset; backend ${runs[0]?.backend ?? '?'}; ${args.workers} training process(es)`,
    `- seeds: ${seeded.join(', ')} × {${seeds.join(', ')}}; ${others.length ? `${others.join(', ')} × {${otherSeeds.join(', ')}}` : ''} (a seed sets weights, shuffles, dropout masks and the holdout)`,
    `- wall time: ${(wallS / 60).toFixed(1)} min for ${runs.length} runs${unfinished ? ` — **${unfinished} run(s) not succeeded at the time of this report** (the figures are over succeeded runs)` : ''}`,
    `- "collapsed": test accuracy within 0.5 pp of the test split's majority-class rate (the model predicts one class)`,
    '',
    ...lines,
    '',
    '## Every run',
    '',
    ...perRun,
    '',
    '## Charts (training and validation, every seed)',
    '',
    ...charts.map((c) => `![${path.basename(c, '.svg')}](${c.split(path.sep).join('/')})`),
    '',
  ].join('\n');
  await writeFile(`${outBase}.md`, text);
  await writeFile(
    `${outBase}.json`,
    JSON.stringify(
      { epochs, seeds, seeded, others, otherSeeds, wallSeconds: wallS, variants, runs: runs.map((r) => ({ ...r, epochs: curves.get(r.id) })) },
      null,
      2,
    ) + '\n',
  );
  console.log(text);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
