/** Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter (NHWC). */
import { backend_util } from '@tensorflow/tfjs-core';
import { ACT, CONV_PARAMS } from '../native.js';
import { allocF32, attr, input, size, type KernelArgs, type NativeKernel } from '../backend.js';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

function convInfo(
  xShape: number[],
  filterShape: number[],
  strides: [number, number] | number,
  dilations: [number, number] | number,
  pad: Pad,
  rounding: Rounding,
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    dilations,
    pad,
    rounding,
    false,
    'channelsLast',
  );
}

function params(c: backend_util.Conv2DInfo, hasBias: boolean, act: number): Int32Array {
  const p = new Int32Array(CONV_PARAMS);
  p.set([
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.outChannels,
    c.filterHeight,
    c.filterWidth,
    c.outHeight,
    c.outWidth,
    c.strideHeight,
    c.strideWidth,
    c.dilationHeight,
    c.dilationWidth,
    c.padInfo.top,
    c.padInfo.left,
    c.padInfo.bottom,
    c.padInfo.right,
    hasBias ? 1 : 0,
    act,
  ]);
  return p;
}

function nhwc(dataFormat: unknown): boolean {
  return dataFormat == null || dataFormat === 'NHWC';
}

/** Conv2D, or FusedConv2D (`fused`: plus bias and activation) in one oneDNN primitive. */
function convForward({ inputs, backend, attrs }: KernelArgs, fused: boolean) {
  const x = input(inputs, 'x');
  const filter = input(inputs, 'filter');
  const xv = backend.f32(x);
  const wv = backend.f32(filter);
  if (!xv || !wv || x.shape.length !== 4 || !nhwc(attrs.dataFormat)) return null;
  let act: number = ACT.linear;
  if (fused) {
    if (inputs.preluActivationWeights != null) return null;
    const code = (ACT as Record<string, number>)[attr<string>(attrs, 'activation') ?? 'linear'];
    if (code === undefined) return null;
    act = code;
  }
  const c = convInfo(x.shape, filter.shape, attr(attrs, 'strides'), attr(attrs, 'dilations'), attr(attrs, 'pad'), attr(attrs, 'dimRoundingMode'));
  let bv: Float32Array | null = null;
  const bias = fused ? inputs.bias : null;
  if (bias != null) {
    bv = backend.f32(bias);
    if (!bv || bv.length !== c.outChannels) return null;
  }
  const out = allocF32(size(c.outShape));
  const alpha = fused ? (attr<number | undefined>(attrs, 'leakyreluAlpha') ?? 0.2) : 0;
  backend.native.convForward(xv, wv, bv, out, params(c, bv != null, act), alpha);
  return backend.output(out, c.outShape);
}

/**
 * The gradients of a convolution: Conv2DBackpropInput (`of` 'input': dx from dy and the filter) and
 * Conv2DBackpropFilter (`of` 'filter': dW from x and dy).
 */
function convBackward({ inputs, backend, attrs }: KernelArgs, of: 'input' | 'filter') {
  const [a, b] = of === 'input' ? [input(inputs, 'dy'), input(inputs, 'filter')] : [input(inputs, 'x'), input(inputs, 'dy')];
  const av = backend.f32(a);
  const bv = backend.f32(b);
  const xShape = of === 'input' ? attr<number[]>(attrs, 'inputShape') : a.shape;
  const filterShape = of === 'input' ? b.shape : attr<number[]>(attrs, 'filterShape');
  if (!av || !bv || xShape.length !== 4 || !nhwc(attrs.dataFormat)) return null;
  const c = convInfo(xShape, filterShape, attr(attrs, 'strides'), 1, attr(attrs, 'pad'), attr(attrs, 'dimRoundingMode'));
  const p = params(c, false, ACT.linear);
  const outShape = of === 'input' ? xShape : filterShape;
  const out = allocF32(size(outShape));
  if (of === 'input') backend.native.convBackwardData(av, bv, out, p);
  else backend.native.convBackwardWeights(av, bv, out, p);
  return backend.output(out, outShape);
}

export const convKernels: NativeKernel[] = [
  { kernelName: 'Conv2D', kernelFunc: (args) => convForward(args, false) },
  { kernelName: 'FusedConv2D', kernelFunc: (args) => convForward(args, true) },
  { kernelName: 'Conv2DBackpropInput', kernelFunc: (args) => convBackward(args, 'input') },
  { kernelName: 'Conv2DBackpropFilter', kernelFunc: (args) => convBackward(args, 'filter') },
];
