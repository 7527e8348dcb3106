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
 *
 * takeCheckpoint() and restoreCheckpoint() read and write the whole training state (train.ts calls
 * them after every epoch and before the first): model weights, early stopping's best weights and
 * counters, the optimizer's state and the shuffle position.
 */
import * as tf from '@tensorflow/tfjs';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import type { EarlyStopping } from './early-stopping.js';
import type { BuiltModel } from './model.js';
import type { StoppedEarly, TensorSpec, TrainingCheckpoint } from './types.js';

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

/** The optimizer's slot variables' shapes, in getWeights() order after 'iter' (see makeOptimizer). */
function slotShapes(type: NormalizedSpec['training']['optimizer']['type'], trainable: readonly tf.Variable[]): number[][] {
  const shapes = trainable.map((v) => [...v.shape]);
  switch (type) {
    case 'sgd':
      return [];
    case 'adam': // m, then v
    case 'rmsprop': // mean squares, then moments (not centered)
      return [...shapes, ...shapes];
  }
}

/** Early stopping's best weights, as the training loop keeps them (train.ts' WeightSnapshot). */
export interface BestWeights {
  /** The copies; null when there is none. */
  readonly tensors: readonly tf.Tensor[] | null;
  /** Takes ownership of copies read from a checkpoint. */
  load(tensors: tf.Tensor[]): void;
}

/** The live training state a checkpoint is taken from and restored into. */
export interface CheckpointState {
  spec: NormalizedSpec;
  built: BuiltModel;
  optimizer: tf.Optimizer;
  snapshot: BestWeights;
  stopper: EarlyStopping | null;
}

/** The training state after `epoch`, read off the live tensors (it owns no tensor afterwards). */
export async function takeCheckpoint(st: CheckpointState, epoch: number, stoppedEarly: StoppedEarly | null): Promise<TrainingCheckpoint> {
  const names = st.built.model.weights.map((w) => w.originalName);
  const weights: NamedTensor[] = st.built.variables.map((tensor, i) => ({ name: names[i] ?? tensor.name, tensor }));
  const best = st.snapshot.tensors;
  const bestNamed: NamedTensor[] = (best ?? []).map((tensor, i) => ({ name: `best/${names[i] ?? i}`, tensor }));
  const opt = await st.optimizer.getWeights();
  try {
    const w = await packTensors([...weights, ...bestNamed]);
    const o = await packTensors(opt);
    return {
      epoch,
      weights: w.bytes,
      optimizer: o.bytes,
      specs: {
        format: 1,
        optimizer: st.spec.training.optimizer.type,
        iterations: st.optimizer.iterations,
        weights: w.specs.slice(0, weights.length),
        bestWeights: best ? w.specs.slice(weights.length) : null,
        optimizerWeights: o.specs,
        adamBetaPowers: adamBetaPowers(st.optimizer),
        earlyStopping: st.stopper?.state() ?? null,
        stoppedEarly,
        shuffle: { seed: st.spec.training.seed, nextEpoch: epoch + 1 },
      },
    };
  } finally {
    // getWeights() returns the optimizer's own variables, except 'iter': a fresh scalar.
    if (opt[0]?.name === 'iter') opt[0].tensor.dispose();
  }
}

/** Puts a checkpoint's state into a freshly built model and optimizer. Returns its stoppedEarly. */
export async function restoreCheckpoint(st: CheckpointState, cp: TrainingCheckpoint): Promise<StoppedEarly | null> {
  const s = cp.specs;
  const type = st.spec.training.optimizer.type;
  if (s.format !== 1) throw new Error(`checkpoint format ${String(s.format)} is not supported`);
  if (s.optimizer !== type) throw new Error(`checkpoint: written by a ${s.optimizer} optimizer, the spec trains with ${type}`);
  const shapes = st.built.variables.map((v) => [...v.shape]);
  assertShapes('weights', shapes, s.weights);
  if (s.bestWeights) assertShapes('best weights', shapes, s.bestWeights);
  assertShapes('optimizer', [[], ...slotShapes(type, st.built.trainable)], s.optimizerWeights);
  if (s.optimizerWeights[0]?.name !== 'iter') throw new Error("checkpoint: the optimizer state does not start with 'iter'");

  const w = unpackTensors(cp.weights, [...s.weights, ...(s.bestWeights ?? [])]);
  const n = st.built.variables.length;
  try {
    if (w.end !== cp.weights.byteLength) throw new Error(`checkpoint: weights buffer has ${cp.weights.byteLength} bytes, its specs ${w.end}`);
    st.built.variables.forEach((v, i) => v.assign(w.tensors[i]!));
  } catch (err) {
    tf.dispose(w.tensors);
    throw err;
  }
  tf.dispose(w.tensors.slice(0, n));
  if (s.bestWeights) st.snapshot.load(w.tensors.slice(n));

  const o = unpackTensors(cp.optimizer, s.optimizerWeights);
  try {
    if (o.end !== cp.optimizer.byteLength) throw new Error(`checkpoint: optimizer buffer has ${cp.optimizer.byteLength} bytes, its specs ${o.end}`);
    // setWeights() makes its slot variables from these values (sharing their data), so the
    // originals can go; it also sets the iteration count and Adam's β powers.
    await st.optimizer.setWeights(o.tensors.map((tensor, i) => ({ name: s.optimizerWeights[i]!.name, tensor })));
  } finally {
    tf.dispose(o.tensors);
  }
  if (st.optimizer.iterations !== s.iterations) throw new Error(`checkpoint: optimizer restored at step ${st.optimizer.iterations}, expected ${s.iterations}`);
  if (s.adamBetaPowers) setAdamBetaPowers(st.optimizer, s.adamBetaPowers);
  if (st.stopper && s.earlyStopping) st.stopper.load(s.earlyStopping);
  return s.stoppedEarly;
}
