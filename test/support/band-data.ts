/**
 * Small learnable data for engine tests: each class lights its own band of image rows over seeded
 * noise (a linear congruential generator, so every run sees the same pixels).
 */
import type { TrainingData } from '../../src/engine/types.js';

const D = 28 * 28;

export interface BandDataOptions {
  classes: number;
  train: number;
  test: number;
  /** LCG seed for the noise. */
  seed: number;
  noise: number;
  signal: number;
  /** Sample i has class (i · stride) mod classes. */
  stride: number;
}

export function bandData(o: BandDataOptions): TrainingData {
  let s = o.seed;
  const noise = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  const make = (n: number) => {
    const images = new Float32Array(n * D);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = (i * o.stride) % o.classes;
      labels[i] = c;
      for (let p = 0; p < D; p++) images[i * D + p] = o.noise * noise() + (Math.floor(p / 28 / 9) === c ? o.signal : 0);
    }
    return { images, labels, count: n };
  };
  return { train: make(o.train), test: make(o.test), numClasses: o.classes };
}
