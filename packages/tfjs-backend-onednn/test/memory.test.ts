/**
 * 20 consecutive model.fit runs on onednn: no tensor growth, no growth of
 * live native buffers, and RSS flat after warm-up.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { onednnPoolStats } from '../src/index.js';
import { setup, nativeAvailable } from './helpers.js';
import { tutorialCnn } from './tutorial-cnn.js';

beforeAll(async () => {
  if (nativeAvailable) await setup(2);
});

describe.skipIf(!nativeAvailable)('memory', () => {
  it('has no tensor, buffer or RSS growth across 20 fit runs', async () => {
    await tf.setBackend('onednn');
    const model = tutorialCnn();
    const xs = tf.randomUniform([256, 28, 28, 1]);
    const ys = tf.oneHot(tf.randomUniform([256], 0, 47, 'int32'), 47).toFloat();
    const tensors: number[] = [];
    const live: number[] = [];
    const rss: number[] = [];
    for (let run = 0; run < 20; run++) {
      await model.fit(xs, ys, { batchSize: 64, epochs: 1, verbose: 0 });
      tensors.push(tf.memory().numTensors);
      live.push(onednnPoolStats().liveBuffers);
      rss.push(process.memoryUsage().rss / 2 ** 20);
    }
    console.log('numTensors', tensors.join(' '));
    console.log('live native buffers', live.join(' '));
    console.log('RSS MiB', rss.map((r) => r.toFixed(0)).join(' '));
    expect(new Set(tensors).size).toBe(1);
    expect(Math.max(...live.slice(1))).toBeLessThanOrEqual(live[1]!);
    expect(rss[19]! - rss[4]!).toBeLessThan(40);
    tf.dispose([xs, ys]);
    model.dispose();
  });
});
