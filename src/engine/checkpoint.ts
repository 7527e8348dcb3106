/**
 * Checkpoint buffers: tensors' values back to back in one byte array, described by TensorSpecs.
 *
 * Restoring an optimizer goes through tfjs' own optimizer.setWeights(): for Adam and RMSprop it
 * creates the slot variables from the given values (the lazy creation in applyGradients() only
 * happens for slots that do not exist yet), sets the iteration count and, for Adam, the
 * β₁ᵗ/β₂ᵗ accumulators from it. No gradient step is taken, so nothing but the state moves.
 *
 * One detail setWeights() gets slightly wrong for an exact resume: it recomputes Adam's β₁ᵗ/β₂ᵗ
 * as pow(β, t + 1), while training keeps them as a running float32 product, and the two differ in
 * the last bit for some t. A resumed run would then drift from the uninterrupted one by ~1e-7, so
 * the checkpoint keeps the running products themselves (adamBetaPowers) and puts them back.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorSpec } from './types.js';

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads the tensors' values (it does not dispose them). float32 and int32 only: 4 bytes a value. */
export async function packTensors(named: readonly NamedTensor[]): Promise<{ bytes: Uint8Array; specs: TensorSpec[] }> {
  const specs: TensorSpec[] = named.map(({ name, tensor }) => {
    if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') throw new Error(`checkpoint: tensor ${name} has dtype ${tensor.dtype}`);
    return { name, shape: [...tensor.shape], dtype: tensor.dtype };
  });
  const values = await Promise.all(named.map(({ tensor }) => tensor.data()));
  const bytes = new Uint8Array(values.reduce((s, v) => s + v.byteLength, 0));
  let off = 0;
  for (const v of values) {
    bytes.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), off);
    off += v.byteLength;
  }
  return { bytes, specs };
}

/**
 * New tensors (the caller owns them) for `specs`, read from `bytes` starting at `offset`.
 * Returns where the next tensor would start. Throws when the buffer is too short.
 */
export function unpackTensors(bytes: Uint8Array, specs: readonly TensorSpec[], offset = 0): { tensors: tf.Tensor[]; end: number } {
  const tensors: tf.Tensor[] = [];
  let off = offset;
  try {
    for (const s of specs) {
      const n = size(s.shape);
      if (off + n * 4 > bytes.byteLength) throw new Error(`checkpoint: buffer too short for ${s.name} (${bytes.byteLength} bytes)`);
      // A copy: the stored buffer may not be 4-byte aligned (a Node Buffer from the pool).
      const copy = bytes.slice(off, off + n * 4).buffer;
      tensors.push(tf.tensor(s.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy), s.shape, s.dtype));
      off += n * 4;
    }
  } catch (err) {
    tf.dispose(tensors);
    throw err;
  }
  return { tensors, end: off };
}

/** Throws unless `actual` has exactly the shapes of `expected` (a checkpoint of another model). */
export function assertShapes(what: string, expected: readonly (readonly number[])[], actual: readonly TensorSpec[]): void {
  if (expected.length !== actual.length) throw new Error(`checkpoint: ${what}: ${actual.length} tensors stored, the model has ${expected.length}`);
  expected.forEach((shape, i) => {
    const got = actual[i]!.shape;
    if (got.length !== shape.length || got.some((d, j) => d !== shape[j])) {
      throw new Error(`checkpoint: ${what}: ${actual[i]!.name} has shape [${got.join(', ')}], the model's has [${shape.join(', ')}]`);
    }
  });
}

/** tfjs' AdamOptimizer keeps its running β₁ᵗ, β₂ᵗ in these (private) scalar variables. */
interface AdamInternals {
  accBeta1?: unknown;
  accBeta2?: unknown;
}

function betaVariables(optimizer: tf.Optimizer): [tf.Variable, tf.Variable] | null {
  const o = optimizer as unknown as AdamInternals;
  return o.accBeta1 instanceof tf.Variable && o.accBeta2 instanceof tf.Variable ? [o.accBeta1, o.accBeta2] : null;
}

/** Adam's running β₁ᵗ and β₂ᵗ (float32 values, exact in JSON); null for other optimizers. */
export function adamBetaPowers(optimizer: tf.Optimizer): [number, number] | null {
  const vars = betaVariables(optimizer);
  if (!vars) return null;
  return [vars[0].dataSync()[0]!, vars[1].dataSync()[0]!];
}

/** Puts back what adamBetaPowers() read (after setWeights()). False if the optimizer has no such state. */
export function setAdamBetaPowers(optimizer: tf.Optimizer, powers: readonly [number, number]): boolean {
  const vars = betaVariables(optimizer);
  if (!vars) return false;
  vars.forEach((v, i) => {
    const t = tf.scalar(powers[i]!, 'float32');
    v.assign(t);
    t.dispose();
  });
  return true;
}
