/** BatchMatMul and _FusedMatMul through oneDNN sgemm. */
import { backend_util } from '@tensorflow/tfjs-core';
import { ACT } from '../native.js';
import { allocF32, attr, input, size, type KernelArgs, type NativeKernel } from '../backend.js';

function matmul(args: KernelArgs, fused: boolean) {
  const { inputs, backend, attrs } = args;
  const a = input(inputs, 'a');
  const b = input(inputs, 'b');
  const av = backend.f32(a);
  const bv = backend.f32(b);
  if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
  const transposeA = attr<boolean>(attrs, 'transposeA') === true;
  const transposeB = attr<boolean>(attrs, 'transposeB') === true;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const K2 = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (K !== K2) return null; // let the cpu kernel produce tfjs' error
  if (M === 0 || N === 0 || K === 0) return null;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = size(outerA);
  const batchB = size(outerB);
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  const outer = backend_util.assertAndGetBroadcastShape(outerA, outerB);
  if (size(outer) !== Math.max(batchA, batchB)) return null;
  const outShape = [...outer, M, N];

  let biasV: Float32Array | null = null;
  let act: number = ACT.linear;
  let alpha = 0;
  if (fused) {
    if (inputs.preluActivationWeights != null) return null;
    const activation = attr<string>(attrs, 'activation') ?? 'linear';
    const code = (ACT as Record<string, number>)[activation];
    if (code === undefined) return null;
    act = code;
    alpha = attr<number | undefined>(attrs, 'leakyreluAlpha') ?? 0.2;
    const bias = inputs.bias;
    if (bias != null) {
      biasV = backend.f32(bias);
      if (!biasV || (biasV.length !== N && biasV.length !== 1)) return null;
      if (bias.shape.length > outShape.length) return null;
      // A bias of N elements must broadcast along the last axis only.
      if (biasV.length === N && N !== 1 && bias.shape[bias.shape.length - 1] !== N) return null;
    }
  }
  const out = allocF32(size(outShape));
  const p = new Int32Array([batchA, batchB, M, N, K, transposeA ? 1 : 0, transposeB ? 1 : 0]);
  backend.native.matmul(av, bv, out, p, biasV, act, alpha);
  return backend.output(out, outShape);
}

export const matmulKernels: NativeKernel[] = [
  { kernelName: 'BatchMatMul', kernelFunc: (args) => matmul(args, false) },
  { kernelName: '_FusedMatMul', kernelFunc: (args) => matmul(args, true) },
];
