/**
 * Regula's training kernels for the tfjs wasm backend.
 *
 * The stock `@tensorflow/tfjs-backend-wasm` (4.22) cannot train a CNN: it has
 * no `Conv2DBackpropFilter` kernel, and its `Conv2DBackpropInput` is a naive
 * loop (~0.47 s per step for the tutorial's second conv layer at batch 250).
 * Both gradients are convolutions themselves, so we express them with the
 * wasm backend's own XNNPACK-backed `Conv2D` kernel plus cheap data movement
 * (`Transpose`, `PadV2`, `Slice`, `Reverse`, `Reshape`):
 *
 *  - dW = conv2d(x^T, dy^T): the batch axis becomes the channel (reduction)
 *    axis, x's in-channels become the batch, dy is the filter; the forward
 *    stride becomes the filter dilation of this convolution.
 *  - dx = conv2d(pad(dilate(dy)), rot180(W) with in/out channels swapped).
 *
 * Kernels are called directly (`getKernel(...).kernelFunc`) on `TensorInfo`s,
 * not through `tf.*` ops, so nothing is recorded by the engine; every
 * intermediate is released with `backend.disposeData` in a `finally`.
 *
 * Dilations: the Conv2DBackprop* kernels carry no `dilations` attribute (the
 * tfjs-core Conv2D gradient refuses dilations > 1), so the forward dilation is
 * always 1 here, exactly like the stock kernels assume.
 *
 * Anything outside what the XNNPACK formulation covers (non-float32 data, an
 * unexpected result shape) is computed by the cpu backend's reference kernel
 * on a copy of the data (`fallbackOnCpu`), never approximated.
 */
import * as tf from '@tensorflow/tfjs';
import { registerWasmBatchMatMul } from './wasm-matmul.js';
import { registerWasmMaxPoolGrad } from './wasm-maxpool-grad.js';
import { type Backend, type KernelArgs, type TensorInfo, Scratch, fallbackOnCpu, overrideWasmKernel, sameShape } from './wasm-kernel-util.js';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Shape4 = [number, number, number, number];
type DataFormat = 'NHWC' | 'NCHW';
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;

interface SpatialPads {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * Prepares an NHWC tensor for a convolution with the given (possibly
 * negative) spatial paddings: negative paddings become a crop (Slice), the
 * non-negative remainder is returned as explicit padding for the Conv2D
 * kernel (XNNPACK pads implicitly, no copy).
 */
function cropNegativePads(s: Scratch, t: TensorInfo, p: SpatialPads): { t: TensorInfo; pad: tf.backend_util.ExplicitPadding } {
  const [n, h, w, c] = t.shape as Shape4;
  const cropTop = Math.max(0, -p.top);
  const cropBottom = Math.max(0, -p.bottom);
  const cropLeft = Math.max(0, -p.left);
  const cropRight = Math.max(0, -p.right);
  let out = t;
  if (cropTop + cropBottom + cropLeft + cropRight > 0) {
    out = s.run(
      'Slice',
      { x: t },
      {
        begin: [0, cropTop, cropLeft, 0],
        size: [n, h - cropTop - cropBottom, w - cropLeft - cropRight, c],
      },
    );
  }
  const pad: tf.backend_util.ExplicitPadding = [
    [0, 0],
    [Math.max(0, p.top), Math.max(0, p.bottom)],
    [Math.max(0, p.left), Math.max(0, p.right)],
    [0, 0],
  ];
  return { t: out, pad };
}

function toNHWC(s: Scratch, t: TensorInfo, format: DataFormat): TensorInfo {
  return format === 'NHWC' ? t : s.run('Transpose', { x: t }, { perm: [0, 2, 3, 1] });
}

// ---------------------------------------------------------------------------
// Fallback: the cpu backend's reference kernel on a copy of the data.

let forceFallback = false;

export { cpuFallbackCount } from './wasm-kernel-util.js';

/** Test hook: route every Conv2DBackprop* call through the cpu fallback. */
export function setForceCpuFallbackForTesting(on: boolean): void {
  forceFallback = on;
}

/** The attributes both Conv2DBackprop* kernels share. */
interface BackpropAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat: DataFormat;
  dimRoundingMode: RoundingMode;
}

/**
 * The forward convolution's geometry, or null where the XNNPACK formulation does not apply
 * (non-float32 operands, dilations).
 */
function backpropInfo(
  a: BackpropAttrs,
  format: DataFormat,
  xShape: Shape4,
  filterShape: Shape4,
  operands: readonly TensorInfo[],
): tf.backend_util.Conv2DInfo | null {
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(format),
  );
  if (operands.some((t) => t.dtype !== 'float32')) return null;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  return info;
}

/**
 * A Conv2DBackprop* kernel over its two inputs: `impl` (the XNNPACK formulation), or the cpu
 * backend's reference kernel where `impl` declines or the test hook forces it.
 */
function backpropKernel<A>(
  kernelName: string,
  [first, second]: readonly [string, string],
  impl: (backend: Backend, a: TensorInfo, b: TensorInfo, attrs: A) => TensorInfo | null,
) {
  return (args: KernelArgs): TensorInfo => {
    const backend = args.backend as Backend;
    const attrs = args.attrs ?? {};
    const a = args.inputs[first];
    const b = args.inputs[second];
    if (a === undefined || b === undefined) throw new Error(`${kernelName}: missing ${first} or ${second}`);
    const out = forceFallback ? null : impl(backend, a, b, attrs as unknown as A);
    return out ?? fallbackOnCpu(kernelName, backend, { [first]: a, [second]: b }, attrs);
  };
}

// ---------------------------------------------------------------------------
// Conv2DBackpropFilter

interface BackpropFilterAttrs extends BackpropAttrs {
  filterShape: Shape4;
}

/**
 * dW[a,b,ci,co] = sum_{n,i,j} x[n, i*sh + a - pt, j*sw + b - pl, ci] * dy[n,i,j,co]
 *
 * With X' = x^T [Ci,H,W,N] (batch <-> channel) and F' = dy^T [Ho,Wo,N,Co]:
 * dW'[ci,a,b,co] = sum_{i,j,n} X'pad[ci, a + i*sh, b + j*sw, n] * F'[i,j,n,co],
 * i.e. a stride-1 convolution with filter dilation (sh, sw), whose output
 * [Ci,fh,fw,Co] is transposed back to [fh,fw,Ci,Co].
 */
function conv2DBackpropFilterImpl(backend: Backend, x: TensorInfo, dy: TensorInfo, a: BackpropFilterAttrs): TensorInfo | null {
  const format: DataFormat = a.dataFormat === 'NCHW' ? 'NCHW' : 'NHWC';
  const info = backpropInfo(a, format, x.shape as Shape4, a.filterShape, [x, dy]);
  if (!info) return null;
  const { inHeight, inWidth, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth } = info;

  const s = new Scratch(backend);
  try {
    const xN = toNHWC(s, x, format);
    const dyN = toNHWC(s, dy, format);
    if (!sameShape(dyN.shape, [info.batchSize, outHeight, outWidth, info.outChannels])) return null;

    const xT = s.run('Transpose', { x: xN }, { perm: [3, 1, 2, 0] }); // [Ci,H,W,N]
    const dyT = s.run('Transpose', { x: dyN }, { perm: [1, 2, 0, 3] }); // [Ho,Wo,N,Co]
    const { top, left } = info.padInfo;
    // Rows used: -top .. (fh-1) + (Ho-1)*sh - top; same for columns.
    const { t: xIn, pad } = cropNegativePads(s, xT, {
      top,
      left,
      bottom: filterHeight + (outHeight - 1) * strideHeight - top - inHeight,
      right: filterWidth + (outWidth - 1) * strideWidth - left - inWidth,
    });
    const dwT = s.run('Conv2D', { x: xIn, filter: dyT }, { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [strideHeight, strideWidth] }); // [Ci,fh,fw,Co]
    if (!sameShape(dwT.shape, [info.inChannels, filterHeight, filterWidth, info.outChannels])) return null;
    return s.keep(s.run('Transpose', { x: dwT }, { perm: [1, 2, 0, 3] }));
  } finally {
    s.release();
  }
}

const conv2DBackpropFilterKernel = backpropKernel(tf.Conv2DBackpropFilter, ['x', 'dy'], conv2DBackpropFilterImpl);

// ---------------------------------------------------------------------------
// Conv2DBackpropInput

interface BackpropInputAttrs extends BackpropAttrs {
  inputShape: Shape4;
}

/**
 * dx[n,h,w,ci] = sum_{a,b,co} dy[n,i,j,co] * W[a,b,ci,co], h = i*sh + a - pt.
 *
 * dy is dilated by the strides (zeros between rows/columns), padded by
 * fh-1-pt on top (the bottom padding makes the output exactly H rows), and
 * convolved with stride 1 with W rotated by 180 degrees and transposed to
 * [fh,fw,Co,Ci].
 */
function conv2DBackpropInputImpl(backend: Backend, dy: TensorInfo, filter: TensorInfo, a: BackpropInputAttrs): TensorInfo | null {
  const format: DataFormat = a.dataFormat === 'NCHW' ? 'NCHW' : 'NHWC';
  const info = backpropInfo(a, format, a.inputShape, filter.shape as Shape4, [dy, filter]);
  if (!info) return null;
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight: sh, strideWidth: sw } = info;

  const s = new Scratch(backend);
  try {
    const dyN = toNHWC(s, dy, format);
    if (!sameShape(dyN.shape, [batchSize, outHeight, outWidth, outChannels])) return null;

    // Dilate: [N,Ho,Wo,Co] -> [N,Ho*sh,Wo*sw,Co] with dy at multiples of the
    // strides; the (sh-1) trailing zero rows (sw-1 columns) are accounted for
    // in the bottom/right padding below.
    let dyD = dyN;
    if (sh > 1 || sw > 1) {
      const r6 = s.run('Reshape', { x: dyN }, { shape: [batchSize, outHeight, 1, outWidth, 1, outChannels] });
      const p6 = s.run(
        'PadV2',
        { x: r6 },
        {
          paddings: [
            [0, 0],
            [0, 0],
            [0, sh - 1],
            [0, 0],
            [0, sw - 1],
            [0, 0],
          ],
          constantValue: 0,
        },
      );
      dyD = s.run('Reshape', { x: p6 }, { shape: [batchSize, outHeight * sh, outWidth * sw, outChannels] });
    }

    // rot180 + swap in/out channels: [fh,fw,Ci,Co] -> [fh,fw,Co,Ci] reversed on 0,1.
    const fT = s.run('Transpose', { x: filter }, { perm: [0, 1, 3, 2] });
    const fR = s.run('Reverse', { x: fT }, { dims: [0, 1] });

    const { top: pt, left: pl } = info.padInfo;
    const padTop = filterHeight - 1 - pt;
    const padLeft = filterWidth - 1 - pl;
    // Output rows = padTop + Ho*sh + padBottom - fh + 1 = H.
    const padBottom = inHeight + filterHeight - 1 - padTop - outHeight * sh;
    const padRight = inWidth + filterWidth - 1 - padLeft - outWidth * sw;
    const { t: dyIn, pad } = cropNegativePads(s, dyD, {
      top: padTop,
      bottom: padBottom,
      left: padLeft,
      right: padRight,
    });
    const dx = s.run('Conv2D', { x: dyIn, filter: fR }, { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] });
    if (!sameShape(dx.shape, [batchSize, inHeight, inWidth, inChannels])) return null;
    if (format === 'NHWC') return s.keep(dx);
    return s.keep(s.run('Transpose', { x: dx }, { perm: [0, 3, 1, 2] }));
  } finally {
    s.release();
  }
}

const conv2DBackpropInputKernel = backpropKernel(tf.Conv2DBackpropInput, ['dy', 'filter'], conv2DBackpropInputImpl);

// ---------------------------------------------------------------------------
// Registration

/**
 * Registers Regula's training kernels for the 'wasm' backend, replacing the
 * stock ones: Conv2DBackpropFilter (missing in stock), Conv2DBackpropInput
 * (stock is a slow loop), BatchMatMul with transposed operands (stock falls
 * back to a scalar loop, see wasm-matmul.ts) and MaxPoolGrad (stock is slow
 * and routes gradients wrongly for windows without a positive value, see
 * wasm-maxpool-grad.ts). Idempotent; may be called before or after the wasm
 * backend is initialized.
 */
export function registerWasmTrainingKernels(): void {
  overrideWasmKernel(tf.Conv2DBackpropFilter, conv2DBackpropFilterKernel);
  overrideWasmKernel(tf.Conv2DBackpropInput, conv2DBackpropInputKernel);
  registerWasmBatchMatMul();
  registerWasmMaxPoolGrad();
}
