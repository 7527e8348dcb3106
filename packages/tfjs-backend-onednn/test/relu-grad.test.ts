/**
 * _OnednnReluGrad (the fused conv path's relu + bias gradient) against tfjs on cpu:
 * dx = dy * step(y) bit for bit, dbias = Σ dx per channel within float tolerance, for channel
 * counts below and above the kernel's 512-channel block and sizes that split unevenly between threads.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { onednnKernelStats } from '../src/index.js';
import { nativeAvailable, randomArray, setup, worstRatio } from './helpers.js';

beforeAll(async () => {
  if (nativeAvailable) await setup(2);
});

describe.skipIf(!nativeAvailable)('_OnednnReluGrad', () => {
  for (const [rows, channels] of [
    [1, 1],
    [7, 3],
    [50 * 26 * 26, 32],
    [1001, 64],
    [333, 600],
  ] as const) {
    it(`${rows} x ${channels}`, async () => {
      const n = rows * channels;
      const dyv = randomArray(n, 1 + channels, -1, 1);
      const yv = randomArray(n, 2 + channels, -1, 1).map((v) => Math.max(0, v)); // a relu output: many exact zeros
      await tf.setBackend('cpu');
      const expected = tf.tidy(() => {
        const dx = tf.mul(tf.tensor2d(dyv, [rows, channels]), tf.step(tf.tensor2d(yv, [rows, channels])));
        return [Float32Array.from(dx.dataSync()), Float32Array.from(tf.sum(dx, 0).dataSync())];
      });
      await tf.setBackend('onednn');
      const dy = tf.tensor2d(dyv, [rows, channels]);
      const y = tf.tensor2d(yv, [rows, channels]);
      onednnKernelStats(true);
      const [dx, db] = tf.engine().runKernel('_OnednnReluGrad', { dy, y } as never) as tf.Tensor[];
      expect(onednnKernelStats()._OnednnReluGrad).toEqual({ native: 1, fallback: 0 });
      const dxv = dx!.dataSync() as Float32Array;
      expect(Buffer.from(dxv.buffer, dxv.byteOffset, dxv.byteLength).equals(Buffer.from(expected[0]!.buffer))).toBe(true);
      expect(worstRatio(db!.dataSync() as Float32Array, expected[1]!, 1e-4, 1e-4)).toBeLessThanOrEqual(1);
      tf.dispose([dy, y, dx!, db!]);
    });
  }
});
