/**
 * Seeded Dropout: Keras' inverted dropout whose masks are a pure function of
 * (seed, epoch, step, layer index, element index).
 *
 * Why not tfjs' own: tf.layers.dropout either takes no seed (a fresh Math.random() stream: no run
 * can be replayed) or one fixed seed, which tfjs reuses for every call and so freezes the mask
 * across batches. Here every step of every layer gets its own key, so
 *  - the same spec and seed give the same masks, hence bit-identical reruns on one backend;
 *  - a run resumed from an epoch checkpoint draws exactly the masks an uninterrupted one would;
 *  - a native backend can compute the same masks (kernel `RegulaSeededDropout`): the element hash is
 *    plain uint32 arithmetic, specified here and implemented identically in C++.
 *
 *   mix32(h)  = murmur3-style finaliser (below)
 *   key       = mix32(mix32(mix32(mix32(seed ^ 0x9e3779b9) ^ epoch) ^ step) ^ layer)
 *   u(i)      = mix32(key ^ mix32(i))                       (i: flat NHWC index)
 *   keep(i)   = u(i) >= floor(rate · 2^32)                  (P(keep) = 1 − rate)
 *   y(i)      = keep(i) ? x(i) · fround(1 / (1 − rate)) : 0
 *
 * Serialised as Keras' `Dropout` (class name and config), so exported models load in plain tfjs.
 */
import * as tf from '@tensorflow/tfjs';

export const SEEDED_DROPOUT_KERNEL = 'RegulaSeededDropout';

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The mask key of one layer at one step of one epoch. */
export function dropoutKey(seed: number, epoch: number, step: number, layer: number): number {
  return mix32(mix32(mix32(mix32((seed >>> 0) ^ 0x9e3779b9) ^ epoch) ^ step) ^ layer);
}

export function dropoutThreshold(rate: number): number {
  return Math.min(0xffffffff, Math.floor(rate * 2 ** 32));
}

/** The multiplier of every element: fround(1/(1−rate)) where kept, 0 where dropped. */
export function dropoutMultipliers(size: number, rate: number, key: number): Float32Array {
  const threshold = dropoutThreshold(rate);
  const scale = Math.fround(1 / (1 - rate));
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    if (mix32(key ^ mix32(i)) >= threshold) out[i] = scale;
  }
  return out;
}

/** y = x masked and scaled; dy gets the same mask. Uses the backend's native kernel when it has one. */
export function seededDropout(x: tf.Tensor, rate: number, key: number): tf.Tensor {
  if (tf.getKernel(SEEDED_DROPOUT_KERNEL, tf.getBackend()) !== undefined) {
    const run = (t: tf.Tensor): tf.Tensor => tf.engine().runKernel(SEEDED_DROPOUT_KERNEL, { x: t }, { key, rate } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const f = tf.customGrad(((t: tf.Tensor) => ({ value: run(t), gradFunc: (dy: tf.Tensor) => run(dy) })) as unknown as Parameters<typeof tf.customGrad>[0]);
    return (f as unknown as (t: tf.Tensor) => tf.Tensor)(x);
  }
  return tf.tidy(() => tf.mul(x, tf.tensor(dropoutMultipliers(x.size, rate, key), x.shape, 'float32')));
}

/** Where in training the model is: set by the training loop before every step's forward pass. */
export class DropoutClock {
  epoch = 0;
  step = 0;
  constructor(readonly seed: number) {}
  at(epoch: number, step: number): void {
    this.epoch = epoch;
    this.step = step;
  }
}

interface SeededDropoutArgs {
  name: string;
  rate: number;
  /** The layer's index in the spec: part of its masks' key. */
  index: number;
  clock: DropoutClock;
}

export class SeededDropout extends tf.layers.Layer {
  /** Keras' and tfjs' class name: the saved topology is a plain Dropout layer. */
  static className = 'Dropout';
  private readonly rate: number;
  private readonly index: number;
  private readonly clock: DropoutClock;

  constructor(args: SeededDropoutArgs) {
    super({ name: args.name });
    this.rate = args.rate;
    this.index = args.index;
    this.clock = args.clock;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    if (!kwargs.training || this.rate <= 0 || this.rate >= 1) return x;
    const c = this.clock;
    return seededDropout(x, this.rate, dropoutKey(c.seed, c.epoch, c.step, this.index));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}
