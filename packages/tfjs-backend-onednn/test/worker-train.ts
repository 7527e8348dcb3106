/** Worker entry for worker.test.ts: registers the backend and trains a small CNN. */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { registerOnednnBackend } from '../src/index.js';

try {
  const reg = await registerOnednnBackend({ threads: 2 });
  await tf.setBackend(reg.name);
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.dropout({ rate: 0.25 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy' });
  const labels = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32');
  const h = await model.fit(tf.randomUniform([16, 8, 8, 1]), tf.oneHot(labels, 3).toFloat(), {
    epochs: 2,
    batchSize: 8,
    verbose: 0,
  });
  parentPort?.postMessage({ backend: tf.getBackend(), loss: h.history.loss });
} catch (err) {
  parentPort?.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}
