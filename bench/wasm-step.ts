/**
 * One training step (forward + backward + Adam) of the tutorial CNN on the
 * wasm backend with Regula's training kernels, batch 250.
 *
 *   node --import tsx bench/wasm-step.ts [steps=10] [batch=250]
 */
import * as tf from '@tensorflow/tfjs';
import { tutorialCnn } from '../packages/tfjs-backend-onednn/test/tutorial-cnn.js';
import { initBackend } from '../src/engine/backends/index.js';

const steps = Number(process.argv[2] ?? 10);
const batch = Number(process.argv[3] ?? 250);

const info = await initBackend('wasm');
console.log(`backend: ${info.name}`);

const model = tutorialCnn();

const xs = tf.randomUniform([batch, 28, 28, 1]);
const labels = tf.randomUniform([batch], 0, 47, 'int32');
const ys = tf.oneHot(labels, 47).toFloat();

async function step(): Promise<number> {
  const t0 = performance.now();
  await model.trainOnBatch(xs, ys); // resolves after the loss is read back
  return performance.now() - t0;
}

for (let i = 0; i < 2; i++) await step(); // warm-up (operator creation, heap growth)
const before = tf.memory().numTensors;
// Emscripten's module typings are not installed; HEAPU8 is the wasm heap.
const heap = (): number => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.byteLength / 2 ** 20;
const heapBefore = heap();
const times: number[] = [];
for (let i = 0; i < steps; i++) times.push(await step());
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] ?? NaN;
const mean = times.reduce((a, b) => a + b, 0) / times.length;
console.log(
  `batch ${batch}: median ${median.toFixed(1)} ms/step, mean ${mean.toFixed(1)} ms/step, ` +
    `min ${times[0]?.toFixed(1)} ms -> ${((batch * 1000) / median).toFixed(0)} samples/s (median)`,
);
console.log(`tensors leaked over ${steps} steps: ${tf.memory().numTensors - before}; ` + `wasm heap ${heapBefore.toFixed(0)} -> ${heap().toFixed(0)} MiB`);
