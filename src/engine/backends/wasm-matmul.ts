/**
 * BatchMatMul for the wasm backend: transposed operands via XNNPACK.
 *
 * The stock wasm BatchMatMul only uses XNNPACK's fully-connected operator
 * when neither operand is transposed and both batch dimensions are 1; any
 * transpose flag sends it to a scalar triple loop. Backprop through a Dense
 * layer needs exactly those products (dW = x^T·dy, dx = dy·W^T): for the
 * tutorial's Dense(256) at batch 250 they took ~160 ms each. Here the
 * transposed operand is materialized with the Transpose kernel (a copy of a
 * few hundred KB) and the stock kernel runs its XNNPACK path.
 */
import * as tf from '@tensorflow/tfjs';
import { type Backend, type KernelArgs, type TensorInfo, Scratch, overrideWasmKernel, stockWasmKernel } from './wasm-kernel-util.js';

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function batchSize(shape: readonly number[]): number {
  return shape.slice(0, -2).reduce((p, d) => p * d, 1);
}

function batchMatMulKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const stock = stockWasmKernel(tf.BatchMatMul);
  if (stock === null) throw new Error('wasm BatchMatMul kernel is not registered');
  const { a, b } = args.inputs;
  const attrs = args.attrs ?? {};
  const transposeA = attrs.transposeA === true;
  const transposeB = attrs.transposeB === true;
  if (
    a === undefined ||
    b === undefined ||
    (!transposeA && !transposeB) ||
    a.shape.length < 2 ||
    b.shape.length < 2 ||
    batchSize(a.shape) !== 1 ||
    batchSize(b.shape) !== 1 ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32'
  ) {
    return stock.kernelFunc(args);
  }
  const backend = args.backend as Backend;
  const s = new Scratch(backend);
  try {
    const a2 = transposeA ? s.run('Transpose', { x: a }, { perm: swapLastTwo(a.shape.length) }) : a;
    const b2 = transposeB ? s.run('Transpose', { x: b }, { perm: swapLastTwo(b.shape.length) }) : b;
    return stock.kernelFunc({
      inputs: { a: a2, b: b2 },
      backend,
      attrs: { ...attrs, transposeA: false, transposeB: false },
    });
  } finally {
    s.release();
  }
}

/** Replaces the wasm BatchMatMul kernel (idempotent). */
export function registerWasmBatchMatMul(): void {
  overrideWasmKernel(tf.BatchMatMul, batchMatMulKernel);
}
