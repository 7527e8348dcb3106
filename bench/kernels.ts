/**
 * Per-kernel time of one training step (forward + backward + Adam) of the
 * tutorial CNN, from tf.profile, median over several profiled steps.
 *
 *   node --import tsx bench/kernels.ts [--backend onednn|wasm|cpu] [--threads 2]
 *        [--batch 250] [--steps 5] [--top 40] [--md bench/results/kernels-onednn.md]
 *
 * wasm uses Regula's training kernels (src/engine/backends initBackend('wasm')).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { tutorialCnn } from '../packages/tfjs-backend-onednn/test/tutorial-cnn.js';

const { values: opts } = parseArgs({
  options: {
    backend: { type: 'string', default: 'onednn' },
    threads: { type: 'string', default: '2' },
    batch: { type: 'string', default: '250' },
    steps: { type: 'string', default: '5' },
    top: { type: 'string', default: '40' },
    md: { type: 'string' },
  },
});
const backendName = opts.backend ?? 'onednn';
const threads = Number(opts.threads);
const batch = Number(opts.batch);
const steps = Number(opts.steps);
const top = Number(opts.top);

async function activate(): Promise<string> {
  if (backendName === 'onednn') {
    const { registerOnednnBackend } = await import('../packages/tfjs-backend-onednn/src/index.js');
    const reg = await registerOnednnBackend({ threads });
    await tf.setBackend(reg.name);
    return `onednn, ${reg.threads} thread(s), ${reg.info}`;
  }
  if (backendName === 'wasm') {
    const { initBackend } = await import('../src/engine/backends/index.js');
    await initBackend('wasm');
    return 'wasm (XNNPACK, 1 thread) with Regula training kernels';
  }
  await tf.setBackend(backendName);
  return backendName;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const description = await activate();
const model = tutorialCnn();
const xs = tf.randomUniform([batch, 28, 28, 1]);
const ys = tf.oneHot(tf.randomUniform([batch], 0, 47, 'int32'), 47).toFloat();
for (let i = 0; i < 3; i++) await model.trainOnBatch(xs, ys);

const wall: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < Math.max(5, steps); i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await model.trainOnBatch(xs, ys);
  wall.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
}

// kernel key -> per-step summed time
const perKernel = new Map<string, { name: string; shapes: string; calls: number; times: number[] }>();
const totals: number[] = [];
for (let s = 0; s < steps; s++) {
  const p = await tf.profile(async () => {
    await model.trainOnBatch(xs, ys);
  });
  const stepTimes = new Map<string, number>();
  let total = 0;
  for (const k of p.kernels) {
    const shapes = JSON.stringify(k.inputShapes);
    const key = `${k.name} ${shapes}`;
    const ms = Number(k.kernelTimeMs);
    total += ms;
    stepTimes.set(key, (stepTimes.get(key) ?? 0) + ms);
    if (s === 0) {
      const e = perKernel.get(key) ?? { name: k.name, shapes, calls: 0, times: [] };
      e.calls++;
      perKernel.set(key, e);
    }
  }
  totals.push(total);
  for (const [key, ms] of stepTimes) perKernel.get(key)?.times.push(ms);
}

const rows = [...perKernel.values()].map((e) => ({ ...e, ms: median(e.times) })).sort((a, b) => b.ms - a.ms);
const kernelTotal = median(totals);
const wallMedian = median(wall);
const byName = new Map<string, number>();
for (const r of rows) byName.set(r.name, (byName.get(r.name) ?? 0) + r.ms);

const lines: string[] = [];
lines.push(`# Per-kernel time of one training step: ${backendName}`);
lines.push('');
lines.push(`- backend: ${description}`);
lines.push(`- model: tutorial CNN, batch ${batch}, Adam; median of ${steps} profiled steps (tf.profile)`);
lines.push(
  `- machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, Node ${process.version}, ${new Date().toISOString()}, load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
lines.push(
  `- step wall time (trainOnBatch, unprofiled, median of ${wall.length}): ${wallMedian.toFixed(1)} ms -> ${((batch * 1000) / wallMedian).toFixed(0)} samples/s; process CPU time per step ${median(cpu).toFixed(1)} ms`,
);
lines.push(`- sum of kernel times: ${kernelTotal.toFixed(1)} ms; the rest of a profiled step is tfjs/JS overhead outside kernels`);
lines.push('');
lines.push('| ms (median) | % | calls | kernel | input shapes |');
lines.push('|---:|---:|---:|---|---|');
for (const r of rows.slice(0, top)) {
  lines.push(`| ${r.ms.toFixed(2)} | ${((100 * r.ms) / kernelTotal).toFixed(1)} | ${r.calls} | ${r.name} | \`${r.shapes}\` |`);
}
if (rows.length > top) {
  const rest = rows.slice(top).reduce((a, r) => a + r.ms, 0);
  lines.push(`| ${rest.toFixed(2)} | ${((100 * rest) / kernelTotal).toFixed(1)} | | (${rows.length - top} more) | |`);
}
lines.push('');
lines.push('By kernel name:');
lines.push('');
lines.push('| ms | kernel |');
lines.push('|---:|---|');
for (const [name, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
  lines.push(`| ${ms.toFixed(2)} | ${name} |`);
}
const text = lines.join('\n') + '\n';
console.log(text);
if (opts.md) writeFileSync(opts.md, text);
