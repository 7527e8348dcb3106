/**
 * Throughput of the SERVICE's training loop — engine `train()` with `checkpoints: true`, the
 * function the worker's training thread calls — for all eight tutorial presets, with model.fit
 * (onednn) and wasm beside them, on real EMNIST ByMerge images.
 *
 *   node --import tsx bench/train-loop-throughput.ts [--steps 40] [--threads 2] [--epochs 2]
 *        [--presets baseline,l2-activity] [--rounds 1] [--tfjs-step] [--fit] [--wasm] [--md bench/results/train-loop-….md]
 *
 * Data: the ByMerge test split (../shared/data/emnist-bymerge-test, IDX gz) loaded with the engine's
 * data layer (src/engine/data) as a seeded `limit` sample sized so that one epoch is exactly
 * `steps` batches of 250 after Keras' 0.2 validation split. Each preset runs in its own child
 * process (onednn, `threads` OpenMP threads) for `epochs` epochs; the figure is the run's own
 * `samplesPerSec` (what a submitted run records: training batches only, not the validation pass,
 * the weight statistics or the checkpoint). Epoch 1 includes primitive creation (warm-up); the
 * table shows every epoch and takes the best of epochs ≥ 2 as "warm".
 * `--tfjs-step`: each preset also with the tfjs autodiff step (ONEDNN_DISABLE=SequentialStep), right
 * after the native one, so before/after share the machine's load.
 * `--fit`: the same images through the tutorial CNN's model.fit on onednn; `--wasm`: model.fit on
 * wasm (2 steps, it is ~10x slower).
 * `--rounds N`: the presets run N times, in reverse order every other round, and each one's warm
 * figure is its best over the rounds. Why: this machine's speed drifts by ±20 % from one minute to
 * the next (a shared host), so one pass through the presets in a fixed order compares a preset run
 * in a fast minute with one run in a slow minute; interleaving and taking each one's best compares
 * them at the machine's speed, not at its weather.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    steps: { type: 'string', default: '40' },
    threads: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '1' },
    presets: { type: 'string' },
    /** Also run each preset with the tfjs autodiff step (ONEDNN_DISABLE=SequentialStep), interleaved. */
    'tfjs-step': { type: 'boolean', default: false },
    fit: { type: 'boolean', default: false },
    wasm: { type: 'boolean', default: false },
    data: { type: 'string', default: path.resolve(ROOT, '..', 'shared', 'data', 'emnist-bymerge-test') },
    md: { type: 'string' },
    child: { type: 'string' },
  },
});

const BATCH = 250;
const VALIDATION = 0.2;

interface ChildResult {
  label: string;
  description: string;
  /** samples/s per epoch (loop) or per fit run (model.fit). */
  rates: number[];
  /** CPU ms (user + system, all threads) per step, per epoch (loop only). */
  cpuMs?: number[];
  /** With --rounds: rates and cpuMs of each round (rates/cpuMs above are round 1's). */
  rounds?: Array<{ rates: number[]; cpuMs: number[] }>;
  numTensors: number[];
  rssMB: number;
  error?: string;
}

async function loadData(trainCount: number) {
  const { loadDataset } = await import('../src/engine/data/load.js');
  // limit: trainCount/(1-VALIDATION) training images (its own seeded test sample comes along).
  const limit = Math.round(trainCount / (1 - VALIDATION));
  return loadDataset(
    {
      name: 'idx',
      train: { images: 'emnist-bymerge-test-images-idx3-ubyte.gz', labels: 'emnist-bymerge-test-labels-idx1-ubyte.gz' },
      testFraction: 0.15,
      limit,
      seed: 7,
    },
    opts.data!,
  );
}

async function childLoop(preset: string, threads: number, steps: number, epochs: number): Promise<ChildResult> {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend } = await import('../src/engine/backends/index.js');
  const { normalizeSpec } = await import('../src/run-spec/normalize.js');
  const { train } = await import('../src/engine/train.js');
  const info = await initBackend('onednn', () => {}, { threads });
  const data = await loadData(steps * BATCH);
  const { spec } = normalizeSpec(
    { preset, training: { epochs, batchSize: BATCH, validationSplit: VALIDATION, seed: 2020 } } as never,
    { seed: 2020, numClasses: data.numClasses, inputShape: [28, 28, 1] } as never,
  );
  const rates: number[] = [];
  const cpuMs: number[] = [];
  const numTensors: number[] = [];
  let first: NodeJS.CpuUsage | null = null;
  const result = await train(
    spec,
    { train: data.train, test: data.test, numClasses: data.numClasses },
    {
      checkpoints: true,
      progressIntervalMs: 0,
      onEvent: (e) => {
        // Process CPU time (all threads) from the end of batch 1 to the end of the last batch.
        if (e.type === 'batch' && e.batch === 1) first = process.cpuUsage();
        if (e.type === 'batch' && e.batch === e.batches && first) {
          const c = process.cpuUsage(first);
          cpuMs.push((c.user + c.system) / 1000 / (e.batches - 1));
        }
        if (e.type === 'epoch') {
          rates.push(e.samplesPerSec);
          numTensors.push(tf.memory().numTensors);
        }
      },
    },
  );
  if (result.status !== 'completed') throw new Error(`run ${result.status}`);
  const path = process.env.ONEDNN_DISABLE?.includes('SequentialStep') ? 'tfjs step' : 'native step';
  return {
    label: preset,
    description: `service loop, ${path}, ${info.name} ${threads} thread(s)`,
    rates,
    cpuMs,
    numTensors,
    rssMB: process.memoryUsage().rss / 2 ** 20,
  };
}

async function childFit(backend: 'onednn' | 'wasm', threads: number, steps: number, runs: number): Promise<ChildResult> {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend } = await import('../src/engine/backends/index.js');
  const { tutorialCnn } = await import('../packages/tfjs-backend-onednn/test/tutorial-cnn.js');
  const info = await initBackend(backend, () => {}, { threads });
  const data = await loadData(steps * BATCH);
  const n = steps * BATCH;
  const xs = tf.tensor4d(data.train.images.subarray(0, n * 784), [n, 28, 28, 1]);
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(data.train.labels.subarray(0, n), 'int32'), data.numClasses).toFloat());
  const model = tutorialCnn();
  const fitOpts = { batchSize: BATCH, epochs: 1, shuffle: false, verbose: 0 } as const;
  await model.fit(xs.slice(0, 2 * BATCH), ys.slice(0, 2 * BATCH), fitOpts); // warm-up (leaks 2 slices; fine here)
  const rates: number[] = [];
  const numTensors: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await model.fit(xs, ys, fitOpts);
    rates.push((n * 1000) / (performance.now() - t0));
    numTensors.push(tf.memory().numTensors);
  }
  return {
    label: `model.fit (${backend})`,
    description: backend === 'wasm' ? 'tfjs model.fit, wasm (1 thread) + Regula training kernels' : `tfjs model.fit, ${info.name} ${threads} thread(s)`,
    rates,
    numTensors,
    rssMB: process.memoryUsage().rss / 2 ** 20,
  };
}

if (opts.child) {
  const [kind, name] = opts.child.split('=');
  const threads = Number(opts.threads);
  const steps = Number(opts.steps);
  try {
    const r =
      kind === 'loop'
        ? await childLoop(name!, threads, steps, Number(opts.epochs))
        : await childFit(name as 'onednn' | 'wasm', name === 'wasm' ? 1 : threads, name === 'wasm' ? Math.min(steps, 4) : steps, name === 'wasm' ? 1 : 2);
    console.log(`RESULT ${JSON.stringify(r)}`);
  } catch (err) {
    console.log(`RESULT ${JSON.stringify({ label: opts.child, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })}`);
  }
  process.exit(0);
}

const { PRESET_NAMES } = await import('../src/run-spec/presets.js');
const presets = opts.presets ? opts.presets.split(',') : [...PRESET_NAMES];
const jobs = presets.flatMap((p) => (opts['tfjs-step'] ? [`loop=${p}`, `tfjsloop=${p}`] : [`loop=${p}`]));
if (opts.fit) jobs.push('fit=onednn');
if (opts.wasm) jobs.push('fit=wasm');
const self = fileURLToPath(import.meta.url);
const load0 = os.loadavg();
const t0 = Date.now();
const results: ChildResult[] = [];
const rounds = Math.max(1, Number(opts.rounds));
const byJob = new Map<string, ChildResult>();
const order: string[] = [];
for (let round = 0; round < rounds; round++) {
  const loops = jobs.filter((j) => j.includes('loop='));
  // model.fit and wasm are reference points: once, in the first round.
  const thisRound = round === 0 ? jobs : round % 2 === 1 ? [...loops].reverse() : loops;
  for (const job of thisRound) order.push(job);
}
for (const job of order) {
  const args = ['--import', 'tsx', self, '--child', job, '--steps', opts.steps!, '--threads', opts.threads!, '--epochs', opts.epochs!, '--data', opts.data!];
  const env = job.startsWith('tfjsloop=') ? { ...process.env, ONEDNN_DISABLE: 'SequentialStep' } : process.env;
  const res = spawnSync(
    process.execPath,
    args.map((a) => a.replace(/^tfjsloop=/, 'loop=')),
    { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, cwd: ROOT, env },
  );
  const line = res.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  const r: ChildResult = line
    ? (JSON.parse(line.slice(7)) as ChildResult)
    : { label: job, description: job, rates: [], numTensors: [], rssMB: 0, error: `child failed (status ${res.status}): ${res.stderr.slice(-800)}` };
  const seen = byJob.get(job);
  if (!seen) {
    r.rounds = [{ rates: r.rates, cpuMs: r.cpuMs ?? [] }];
    byJob.set(job, r);
    results.push(r);
  } else if (!r.error) {
    seen.rounds!.push({ rates: r.rates, cpuMs: r.cpuMs ?? [] });
  }
  console.error(r.error ? `${job}: ${r.error}` : `${job}: ${r.rates.map((x) => x.toFixed(0)).join(', ')} samples/s`);
}
const load1 = os.loadavg();

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length === 0 ? NaN : v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}
// Warm: epochs ≥ 2 of every round (epoch 1 creates the primitives); the best rate, the median CPU.
const warmOf = (xs: number[]) => (xs.length > 1 ? xs.slice(1) : xs);
const allRounds = (r: ChildResult) => r.rounds ?? [{ rates: r.rates, cpuMs: r.cpuMs ?? [] }];
const warmCpu = (r: ChildResult) => median(allRounds(r).flatMap((x) => warmOf(x.cpuMs)));
const warm = (r: ChildResult) => {
  const rates = allRounds(r).flatMap((x) => warmOf(x.rates));
  return rates.length > 0 ? Math.max(...rates) : NaN;
};
const base = results.find((r) => r.label === 'baseline' && !r.error && r.description.includes('native'));
const tfjsBase = results.find((r) => r.label === 'baseline' && !r.error && r.description.includes('tfjs step'));
const lines: string[] = [];
lines.push('# Training throughput: the service loop (engine train(), checkpoints on), eight presets');
lines.push('');
lines.push(`- date: ${new Date().toISOString()}; wall ${Math.round((Date.now() - t0) / 1000)} s`);
lines.push(`- machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; Node ${process.version}`);
lines.push(`- load average ${load0.map((l) => l.toFixed(2)).join(' ')} at start, ${load1.map((l) => l.toFixed(2)).join(' ')} at end`);
lines.push(
  `- data: EMNIST ByMerge test split, seeded sample: ${opts.steps} batches of ${BATCH} per epoch (+ ${VALIDATION} validation), ${opts.epochs} epoch(s) per preset`,
);
lines.push(
  `- figure: the run's own samplesPerSec per epoch (training batches only); "warm" is the best epoch after the first${rounds > 1 ? `, over ${rounds} rounds (the presets in reverse order every other round; rounds separated by " / ")` : ''}`,
);
lines.push('');
lines.push('- CPU ms/step: process CPU time (user + system, all threads) per step from batch 2 to the last, per epoch. Wall time on a busy');
lines.push('  machine includes waiting for a core, CPU time does not: `250 * 1000 * threads / CPU ms` is what the threads would give on idle cores.');
lines.push('');
lines.push('- warm CPU ms/step: median over epochs ≥ 2; "idle-core estimate" = 250 · 1000 · threads / warm CPU ms/step (assumes the');
lines.push('  threads overlap perfectly; the serial JS part of a step does not, so a quiet machine gives somewhat less).');
lines.push('');
lines.push(
  '| path | samples/s per epoch | warm samples/s | vs baseline (same path, wall) | CPU ms/step per epoch | warm CPU ms/step | CPU vs baseline | idle-core estimate samples/s | numTensors after each epoch | RSS MiB |',
);
lines.push('|---|---|---:|---:|---|---:|---:|---:|---|---:|');
for (const r of results) {
  if (r.error) {
    lines.push(`| ${r.label} | — | — | — | ${r.error.split('\n')[0]!.replace(/\|/g, '/').slice(0, 200)} | |`);
    continue;
  }
  const w = warm(r);
  const ref = r.description.includes('tfjs step') ? tfjsBase : r.description.includes('native') ? base : undefined;
  const rel = ref ? `${((w / warm(ref) - 1) * 100).toFixed(1)} %` : '';
  const cpu = allRounds(r)
    .map((x) => x.cpuMs.map((c) => c.toFixed(1)).join(', '))
    .join(' / ');
  const wc = warmCpu(r);
  const refCpu = ref ? warmCpu(ref) : NaN;
  const cpuRel = Number.isFinite(wc) && Number.isFinite(refCpu) ? `${((wc / refCpu - 1) * 100).toFixed(1)} %` : '';
  const est = Number.isFinite(wc) ? ((BATCH * 1000 * Number(opts.threads)) / wc).toFixed(0) : '';
  lines.push(
    `| ${r.label} (${r.description}) | ${allRounds(r)
      .map((x) => x.rates.map((v) => v.toFixed(0)).join(', '))
      .join(
        ' / ',
      )} | ${w.toFixed(0)} | ${rel} | ${cpu} | ${Number.isFinite(wc) ? wc.toFixed(1) : ''} | ${cpuRel} | ${est} | ${r.numTensors.join(', ')} | ${r.rssMB.toFixed(0)} |`,
  );
}
const text = lines.join('\n') + '\n';
console.log(text);
if (opts.md) {
  writeFileSync(opts.md, text);
  writeFileSync(opts.md.replace(/\.md$/, '.json'), JSON.stringify({ load0, load1, results }, null, 1) + '\n');
}
