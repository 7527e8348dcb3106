/**
 * The tutorial's experiment as ONE study request through the real service, on real EMNIST
 * (ByMerge test split, seeded stratified 85/15 holdout), then its comparison table and charts.
 *
 *   npm run build && node --import tsx bench/tutorial-study.ts --epochs 2 --limit 20000 [--workers 2] [--backend auto]
 *
 * Writes bench/results/tutorial-study-<epochs>ep[-limitN].md plus the study's val-accuracy / val-loss charts (SVG and PNG).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BYMERGE, ROOT, TUTORIAL_OPTIONS, machine, startService, submit } from './support/service.js';

const { values: args } = parseArgs({
  options: {
    ...TUTORIAL_OPTIONS,
    workers: { type: 'string', default: '2' },
  },
});

async function main(): Promise<void> {
  const { base, stop } = await startService({ source: args.data!, workers: Number(args.workers), backend: args.backend! });
  const epochs = Number(args.epochs);
  const limit = args.limit ? Number(args.limit) : undefined;
  const started = Date.now();
  const study = {
    id: await submit(base, '/v1/studies', {
      name: 'tutorial on ByMerge',
      preset: 'tutorial',
      training: { epochs, seed: Number(args.seed) },
      dataset: { name: 'idx', train: BYMERGE, testFraction: 0.15, ...(limit ? { limit } : {}) },
    }),
  };
  console.error(`study ${study.id} submitted`);
  for (;;) {
    const s = (await (await fetch(`${base}/v1/studies/${study.id}`)).json()) as { status: string; counts: Record<string, number> };
    console.error(`${Math.round((Date.now() - started) / 1000)} s: ${s.status} ${JSON.stringify(s.counts)}`);
    if (s.status === 'completed' || s.status === 'cancelled') break;
    await new Promise((r) => setTimeout(r, 15_000));
  }
  const wallMin = (Date.now() - started) / 60_000;
  const table = await (await fetch(`${base}/v1/studies/${study.id}/comparison`, { headers: { accept: 'text/markdown' } })).text();
  const runs = (await (await fetch(`${base}/v1/studies/${study.id}`)).json()) as { runs: { backend: string | null; samplesPerSec: number | null }[] };
  const out = path.join(ROOT, 'bench', 'results');
  await mkdir(out, { recursive: true });
  const stem = `tutorial-study-${epochs}ep${limit ? `-limit${limit}` : ''}`;
  for (const chart of ['val-accuracy', 'val-loss']) {
    for (const ext of ['svg', 'png']) {
      const c = await fetch(`${base}/v1/studies/${study.id}/charts/${chart}.${ext}`);
      await writeFile(path.join(out, `${stem}-${chart}.${ext}`), Buffer.from(await c.arrayBuffer()));
    }
  }
  stop();
  const text = [
    `# The tutorial as one study (POST /v1/studies {"preset": "tutorial"})`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- data: ${limit ? `a seeded stratified sample of ${limit} images of ` : ''}EMNIST ByMerge test (116,323 images, 47 classes), stratified 85/15 train/test holdout; validation split 0.2`,
    `- epochs: ${epochs}; batch 250; Adam 0.001; seed ${args.seed}`,
    `- backend: ${runs.runs[0]?.backend}; worker processes: ${args.workers}; samples/s per run (last epoch): ${runs.runs.map((r) => Math.round(r.samplesPerSec ?? 0)).join(', ')}`,
    `- machine: ${machine()}`,
    `- wall time: ${wallMin.toFixed(1)} min`,
    `- charts: ${stem}-val-accuracy.svg/.png, ${stem}-val-loss.svg/.png`,
    '',
    table,
  ].join('\n');
  console.log(text);
  await writeFile(path.join(out, `${stem}.md`), text);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
