/**
 * Sum / Mean / Max / Min of float32 data over axes that form one contiguous
 * block once size-1 dimensions are ignored (x viewed as [outer, reduced, inner]).
 */
import { util } from '@tensorflow/tfjs-core';
import { REDUCE } from '../native.js';
import { allocF32, input, size, type KernelArgs, type NativeKernel } from '../backend.js';

interface Split {
  outer: number;
  reduced: number;
  inner: number;
}

/** Splits shape into [outer, reduced, inner], or null when the axes are not one block. */
export function splitAxes(shape: readonly number[], axes: readonly number[]): Split | null {
  const isReduced = shape.map((_, i) => axes.includes(i));
  let lo = -1;
  let hi = -1;
  for (let i = 0; i < shape.length; i++) {
    if (isReduced[i] && shape[i] !== 1) {
      if (lo < 0) lo = i;
      hi = i;
    }
  }
  if (lo < 0) return { outer: size(shape), reduced: 1, inner: 1 };
  for (let i = lo; i <= hi; i++) {
    if (!isReduced[i] && shape[i] !== 1) return null;
  }
  return {
    outer: size(shape.slice(0, lo)),
    reduced: size(shape.slice(lo, hi + 1)),
    inner: size(shape.slice(hi + 1)),
  };
}

function reduction(op: number, axisAttr: 'axis' | 'reductionIndices') {
  return ({ inputs, backend, attrs }: KernelArgs) => {
    const x = input(inputs, 'x');
    const xv = backend.f32(x);
    if (!xv) return null;
    const axes = util.parseAxisParam(attrs[axisAttr] as number | number[], x.shape);
    const split = splitAxes(x.shape, axes);
    if (!split) return null;
    // Max/Min of an empty reduction is left to the cpu kernel's semantics.
    if (split.reduced === 0 && op !== REDUCE.sum) return null;
    const keepDims = attrs.keepDims === true;
    const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const out = allocF32(size(outShape));
    backend.native.reduce(xv, out, split.outer, split.reduced, split.inner, op);
    return backend.output(out, outShape);
  };
}

export const reduceKernels: NativeKernel[] = [
  { kernelName: 'Sum', kernelFunc: reduction(REDUCE.sum, 'axis') },
  { kernelName: 'Mean', kernelFunc: reduction(REDUCE.mean, 'axis') },
  { kernelName: 'Max', kernelFunc: reduction(REDUCE.max, 'reductionIndices') },
  { kernelName: 'Min', kernelFunc: reduction(REDUCE.min, 'axis') },
];
