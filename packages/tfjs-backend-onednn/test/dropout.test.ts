/**
 * The native dropout path must be bit-identical to tfjs' own (same Alea
 * stream, same float32 rounding), seeded or not.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { aleaState, aleaStatesAt } from '../src/dropout.js';
import { loadNative } from '../src/native.js';
import { randomArray, setup, nativeAvailable } from './helpers.js';

beforeAll(async () => {
  if (nativeAvailable) await setup(2);
});

describe.skipIf(!nativeAvailable)('fast dropout', () => {
  it('native Alea reproduces tf.randomUniform bit for bit', async () => {
    await tf.setBackend('cpu');
    for (const seed of [1, 42, 0.123456, 'abc']) {
      const expected = tf.randomUniform([10_000], 0, 1, 'float32', seed).dataSync();
      const out = new Float32Array(10_000);
      loadNative().uniform(out, aleaState(String(seed)), 0, 1);
      expect(Buffer.from(out.buffer).equals(Buffer.from(expected.buffer as ArrayBuffer))).toBe(true);
      const scaled = tf.randomUniform([1000], -3, 5, 'float32', seed).dataSync();
      const out2 = new Float32Array(1000);
      loadNative().uniform(out2, aleaState(String(seed)), -3, 8);
      expect(Array.from(out2)).toEqual(Array.from(scaled));
    }
  });

  it('jumping ahead in Alea continues the stream exactly', () => {
    const native = loadNative();
    for (const seed of ['1', 'abc', '0.5']) {
      const whole = new Float32Array(300_001);
      native.uniform(whole, aleaState(seed), 0, 1);
      const offsets = [0, 1, 2, 3, 99_999, 150_000, 300_000];
      const states = aleaStatesAt(aleaState(seed), offsets)!;
      offsets.forEach((j, i) => {
        const tail = new Float32Array(300_001 - j);
        native.uniform(tail, states.slice(4 * i, 4 * i + 4), 0, 1);
        expect(Buffer.from(tail.buffer).equals(Buffer.from(whole.buffer, 4 * j)), `offset ${j}`).toBe(true);
      });
    }
  });

  it('tf.dropout on onednn equals tf.dropout on cpu for the same seed', async () => {
    const x = randomArray(70 * 13 * 13 * 32, 5); // > 2^18 elements: generated in parallel segments
    for (const [rate, seed] of [
      [0.25, 7],
      [0.5, 12345],
      [0.1, 3.5],
    ] as const) {
      await tf.setBackend('cpu');
      const expected = tf.tidy(() => tf.dropout(tf.tensor(x, [70, 13, 13, 32]), rate, undefined, seed).dataSync());
      await tf.setBackend('onednn');
      const actual = tf.tidy(() => tf.dropout(tf.tensor(x, [70, 13, 13, 32]), rate, undefined, seed).dataSync());
      expect(Buffer.from(actual.buffer as ArrayBuffer).equals(Buffer.from(expected.buffer as ArrayBuffer))).toBe(true);
    }
  });

  it('tf.layers.dropout with a seed trains identically (gradient flows through the mask)', async () => {
    const x = randomArray(6 * 10, 9);
    const grads: Float32Array[] = [];
    for (const backend of ['cpu', 'onednn']) {
      await tf.setBackend(backend);
      const layer = tf.layers.dropout({ rate: 0.3, seed: 99 });
      const g = tf.tidy(() =>
        tf
          .grad((t: tf.Tensor) => tf.sum(tf.mul(layer.apply(t, { training: true }) as tf.Tensor, 3)))(tf.tensor(x, [6, 10]))
          .dataSync(),
      );
      grads.push(Float32Array.from(g));
    }
    expect(Array.from(grads[1]!)).toEqual(Array.from(grads[0]!));
  });

  it('falls back to the original for noise shapes', async () => {
    await tf.setBackend('onednn');
    const y = tf.tidy(() => tf.dropout(tf.ones([4, 5]), 0.5, [4, 1], 3).dataSync());
    await tf.setBackend('cpu');
    const z = tf.tidy(() => tf.dropout(tf.ones([4, 5]), 0.5, [4, 1], 3).dataSync());
    expect(Array.from(y)).toEqual(Array.from(z));
  });
});
