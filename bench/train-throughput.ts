/**
 * Training throughput of the tutorial CNN through model.fit, per backend.
 *
 *   node --import tsx bench/train-throughput.ts [--steps 20] [--batch 250] [--runs 3]
 *        [--backends wasm,onednn:1,onednn:2] [--cpu] [--md bench/results/train-throughput.md]
 *
 * Each backend runs in its own child process (clean RSS and tensor counts):
 * a warm-up fit of 2 batches, then `runs` fits of `steps` batches each
 * (epochs: 1, shuffle: false). Reported: samples/s and ms/step (median run),
 * tfjs numTensors and process RSS before the first and after the last run.
 * wasm uses Regula's training kernels (src/engine/backends initBackend('wasm'));
 * onednn:N is the oneDNN backend with N OpenMP threads; --cpu adds tfjs' pure
 * JS backend (slow: 2 steps).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    steps: { type: 'string', default: '20' },
    batch: { type: 'string', default: '250' },
    runs: { type: 'string', default: '3' },
    backends: { type: 'string', default: 'wasm,onednn:1,onednn:2' },
    cpu: { type: 'boolean', default: false },
    md: { type: 'string' },
    child: { type: 'string' },
  },
});

interface RunResult {
  ms: number;
  /** process CPU time (user + system, all threads) during the run */
  cpuMs: number;
  rssMB: number;
  numTensors: number;
}

interface ChildResult {
  backend: string;
  description: string;
  steps: number;
  batch: number;
  runs: RunResult[];
  before: { rssMB: number; numTensors: number };
  error?: string;
}

const rssMB = () => process.memoryUsage().rss / 2 ** 20;

async function child(spec: string): Promise<ChildResult> {
  const tf = await import('@tensorflow/tfjs');
  const { tutorialCnn } = await import('../packages/tfjs-backend-onednn/test/tutorial-cnn.js');
  const [kind, threadsText] = spec.split(':');
  const steps = kind === 'cpu' ? Math.min(2, Number(opts.steps)) : Number(opts.steps);
  const batch = Number(opts.batch);
  const runsWanted = kind === 'cpu' ? 1 : Number(opts.runs);
  let description: string = spec;
  if (kind === 'onednn') {
    const { registerOnednnBackend } = await import('../packages/tfjs-backend-onednn/src/index.js');
    const reg = await registerOnednnBackend({ threads: Number(threadsText ?? 2) });
    await tf.setBackend(reg.name);
    description = `onednn, ${reg.threads} thread(s) (${reg.info.split(' omp_max')[0]})`;
  } else if (kind === 'wasm') {
    const { initBackend } = await import('../src/engine/backends/index.js');
    await initBackend('wasm');
    description = 'wasm (XNNPACK, 1 thread) + Regula training kernels';
  } else {
    await tf.setBackend(kind!);
  }

  const model = tutorialCnn();
  const n = steps * batch;
  const xs = tf.randomUniform([n, 28, 28, 1]);
  const ys = tf.oneHot(tf.randomUniform([n], 0, 47, 'int32'), 47).toFloat();
  const fitOpts = { batchSize: batch, epochs: 1, shuffle: false, verbose: 0 } as const;

  // Warm-up: primitive creation, Adam's moment variables, buffer pool.
  const warmX = xs.slice(0, Math.min(n, 2 * batch));
  const warmY = ys.slice(0, Math.min(n, 2 * batch));
  await model.fit(warmX, warmY, fitOpts);
  tf.dispose([warmX, warmY]);

  const before = { rssMB: rssMB(), numTensors: tf.memory().numTensors };
  const runs: RunResult[] = [];
  for (let r = 0; r < runsWanted; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await model.fit(xs, ys, fitOpts);
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    runs.push({ ms, cpuMs: (c.user + c.system) / 1000, rssMB: rssMB(), numTensors: tf.memory().numTensors });
  }
  return { backend: spec, description, steps, batch, runs, before };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

if (opts.child) {
  try {
    console.log(`RESULT ${JSON.stringify(await child(opts.child))}`);
  } catch (err) {
    console.log(`RESULT ${JSON.stringify({ backend: opts.child, error: err instanceof Error ? err.message : String(err) })}`);
  }
  process.exit(0);
}

const specs = (opts.backends ?? '').split(',').filter(Boolean);
if (opts.cpu) specs.push('cpu');
const self = fileURLToPath(import.meta.url);
const load0 = os.loadavg();
const results: ChildResult[] = [];
for (const spec of specs) {
  const args = ['--import', 'tsx', self, '--child', spec, '--steps', opts.steps!, '--batch', opts.batch!, '--runs', opts.runs!];
  const res = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const line = res.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) {
    results.push({ backend: spec, error: `child failed (status ${res.status}): ${res.stderr.slice(-500)}` } as ChildResult);
    continue;
  }
  const r = JSON.parse(line.slice(7)) as ChildResult;
  results.push(r);
  if (!r.error) {
    const ms = median(r.runs.map((x) => x.ms));
    console.error(`${spec}: ${((r.steps * r.batch * 1000) / ms).toFixed(0)} samples/s`);
  } else {
    console.error(`${spec}: ${r.error}`);
  }
}
const load1 = os.loadavg();

const lines: string[] = [];
lines.push('# Training throughput: tutorial CNN through model.fit');
lines.push('');
lines.push(`- date: ${new Date().toISOString()}`);
lines.push(
  `- machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
);
lines.push(`- Node ${process.version}; load average ${load0.map((l) => l.toFixed(2)).join(' ')} at start, ${load1.map((l) => l.toFixed(2)).join(' ')} at end`);
lines.push(
  `- model: Conv2D(32,3x3,relu) MaxPool2 Dropout.25 Conv2D(64,3x3,relu) MaxPool2 Dropout.25 Flatten Dense(256,relu) Dense(47,softmax); categorical crossentropy; Adam`,
);
lines.push(
  `- per backend: warm-up fit of 2 batches, then ${opts.runs} fit(s) of ${opts.steps} batches of ${opts.batch} (epochs 1, shuffle false); samples/s and ms/step from the median run`,
);
lines.push('');
lines.push(
  '- CPU ms/step: process CPU time (user + system, all threads) per step, median run. On a busy machine wall time includes waiting for a core; CPU time does not, so for 1 thread `batch * 1000 / CPU ms` estimates an idle core.',
);
lines.push('');
lines.push('| backend | samples/s | ms/step | CPU ms/step | runs (ms/step) | numTensors before → after | RSS MiB before → after |');
lines.push('|---|---:|---:|---:|---|---|---|');
for (const r of results) {
  if (r.error) {
    lines.push(`| ${r.backend} | — | — | — | ${r.error.replace(/\|/g, '/').slice(0, 200)} | | |`);
    continue;
  }
  const ms = median(r.runs.map((x) => x.ms));
  const cpuMs = median(r.runs.map((x) => x.cpuMs));
  const last = r.runs[r.runs.length - 1]!;
  const perRun = r.runs.map((x) => (x.ms / r.steps).toFixed(1));
  const shown = perRun.length > 6 ? [...perRun.slice(0, 3), '…', ...perRun.slice(-2)] : perRun;
  lines.push(
    `| ${r.description} | ${((r.steps * r.batch * 1000) / ms).toFixed(0)} | ${(ms / r.steps).toFixed(1)} | ${(cpuMs / r.steps).toFixed(1)} | ${shown.join(', ')} | ${r.before.numTensors} → ${last.numTensors} | ${r.before.rssMB.toFixed(0)} → ${last.rssMB.toFixed(0)} |`,
  );
}
for (const r of results) {
  if (r.error || r.runs.length < 5) continue;
  lines.push('');
  lines.push(`${r.backend}, per run: RSS MiB ${r.runs.map((x) => x.rssMB.toFixed(0)).join(' ')}; numTensors ${r.runs.map((x) => x.numTensors).join(' ')}`);
}
const text = lines.join('\n') + '\n';
console.log(text);
if (opts.md) writeFileSync(opts.md, text);
