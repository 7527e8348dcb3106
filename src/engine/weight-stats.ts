/**
 * Per-layer weight and activation statistics (see LayerStats in types.ts): the evidence for the
 * tutorial's claim that L1 drives weights to zero while L2 only shrinks them.
 *
 * One tidy pass: the probe batch goes through the layers one by one (dropout off), every figure is
 * a tf reduction, all of them are stacked into one tensor and read with a single `data()`.
 */
import * as tf from '@tensorflow/tfjs';
import type { BuiltLayer, BuiltModel } from './model.js';
import type { LayerStats, TensorStats } from './types.js';

/** |w| below this counts as zero. */
export const NEAR_ZERO = 1e-3;
/** The probe batch holds at most this many images. */
export const PROBE_SIZE = 256;

type WeightedLayer = BuiltLayer & { type: 'Conv2D' | 'Dense'; kernel: tf.Variable };
const isWeighted = (l: BuiltLayer): l is WeightedLayer => l.kernel !== null && (l.type === 'Conv2D' || l.type === 'Dense');

/** Figures per tensor, in this order: nearZero fraction, Σ|w|, sqrt(Σw²), max|w|. */
const PER_TENSOR = 4;

function tensorFigures(w: tf.Tensor): tf.Scalar[] {
  const abs = tf.abs(w);
  return [tf.mean(tf.cast(tf.less(abs, NEAR_ZERO), 'float32')), tf.sum(abs), tf.sqrt(tf.sum(tf.square(w))), tf.max(abs)] as tf.Scalar[];
}

function toStats(v: Float32Array, at: number, count: number): TensorStats {
  return { count, nearZero: v[at]!, l1: v[at + 1]!, l2: v[at + 2]!, maxAbs: v[at + 3]! };
}

/**
 * Stats of every Conv2D and Dense layer of `built`, in model order, with activations measured on
 * `probe` (inference mode). Creates no lasting tensors.
 */
export async function layerStats(built: BuiltModel, probe: tf.Tensor4D): Promise<LayerStats[]> {
  const weighted = built.layers.filter(isWeighted);
  const figures = tf.tidy(() => {
    const scalars: tf.Scalar[] = [];
    let x: tf.Tensor = probe;
    for (const l of built.layers) {
      x = l.layer.apply(x, { training: false }) as tf.Tensor;
      if (!isWeighted(l)) continue;
      scalars.push(...tensorFigures(l.kernel));
      if (l.bias !== null) scalars.push(...tensorFigures(l.bias));
      scalars.push(tf.mean(tf.abs(x)) as tf.Scalar);
    }
    return tf.stack(scalars);
  });
  let v: Float32Array;
  try {
    v = (await figures.data()) as Float32Array;
  } finally {
    figures.dispose();
  }
  const out: LayerStats[] = [];
  let at = 0;
  for (const l of weighted) {
    const kernel = toStats(v, at, l.kernel.size);
    at += PER_TENSOR;
    let bias: TensorStats | null = null;
    if (l.bias !== null) {
      bias = toStats(v, at, l.bias.size);
      at += PER_TENSOR;
    }
    out.push({ layer: l.layer.name, type: l.type, kernel, bias, activationMeanAbs: v[at++]! });
  }
  return out;
}
