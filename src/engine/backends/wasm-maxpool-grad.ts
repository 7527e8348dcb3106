/**
 * MaxPoolGrad for the wasm backend.
 *
 * The stock wasm kernel (4.22) seeds its running maximum with
 * `numeric_limits<float>::min()` (the smallest *positive* float) and keeps the
 * *last* maximum: windows whose values are all <= 0 send their gradient to the
 * wrong element (or lose it), and ties go to the last position, unlike
 * TensorFlow and the tfjs cpu backend (first position). It is also slow
 * (~150 ms for [250,26,26,32] -> [250,13,13,32]).
 *
 * This kernel reproduces the cpu backend's semantics exactly (running max
 * seeded with -Infinity, strict '>' so the first maximum in window scan order
 * wins, NaN never selected, padding excluded; overlapping windows accumulate)
 * in one pass over the input, reading and writing the wasm heap directly.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelArgs, type TensorInfo, fallbackOnCpu, overrideWasmKernel } from './wasm-kernel-util.js';

type Shape4 = [number, number, number, number];

function maxPoolGradKernel(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const attrs = args.attrs ?? {};
  const { dy, input } = args.inputs;
  if (dy === undefined || input === undefined) throw new Error('MaxPoolGrad: missing dy or input');
  const info = tf.backend_util.computePool2DInfo(
    input.shape as Shape4,
    attrs.filterSize as [number, number] | number,
    attrs.strides as [number, number] | number,
    1,
    attrs.pad as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth } = info;
  const dyShapeOk = dy.shape.length === 4 && dy.shape[0] === batchSize && dy.shape[1] === outHeight && dy.shape[2] === outWidth && dy.shape[3] === channels;
  if (input.dtype !== 'float32' || dy.dtype !== 'float32' || !dyShapeOk || info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    return fallbackOnCpu(tf.MaxPoolGrad, backend, args.inputs as Record<string, TensorInfo>, attrs);
  }

  const out = backend.makeOutput(input.shape, 'float32');
  // Views are taken after the allocation above (which may grow the heap).
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const g = backend.typedArrayFromHeap(dy) as Float32Array;
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  dx.fill(0);

  const rowStride = inWidth * channels;
  const { top: padTop, left: padLeft } = info.padInfo;
  let gOff = 0;
  for (let b = 0; b < batchSize; b++) {
    const bOff = b * inHeight * rowStride;
    for (let yR = 0; yR < outHeight; yR++) {
      const rCorner = yR * strideHeight - padTop;
      const rMin = Math.max(0, rCorner);
      const rMax = Math.min(inHeight, rCorner + effectiveFilterHeight);
      for (let yC = 0; yC < outWidth; yC++) {
        const cCorner = yC * strideWidth - padLeft;
        const cMin = Math.max(0, cCorner);
        const cMax = Math.min(inWidth, cCorner + effectiveFilterWidth);
        const winOff = bOff + rMin * rowStride + cMin * channels;
        for (let d = 0; d < channels; d++) {
          // First maximum in row-major window order; NaN never wins.
          let best = -Infinity;
          let bestOff = -1;
          for (let r = rMin, rOff = winOff + d; r < rMax; r++, rOff += rowStride) {
            for (let c = cMin, off = rOff; c < cMax; c++, off += channels) {
              const v = x[off] as number;
              if (v > best) {
                best = v;
                bestOff = off;
              }
            }
          }
          if (bestOff >= 0) dx[bestOff] = (dx[bestOff] as number) + (g[gOff + d] as number);
        }
        gOff += channels;
      }
    }
  }
  return out;
}

/** Replaces the wasm MaxPoolGrad kernel (idempotent). */
export function registerWasmMaxPoolGrad(): void {
  overrideWasmKernel(tf.MaxPoolGrad, maxPoolGradKernel);
}
