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

function conv2D({ inputs, backend, attrs }: KernelArgs) {
  const x = input(inputs, 'x');
  const filter = input(inputs, 'filter');
  const xv = backend.f32(x);
  const wv = backend.f32(filter);
  if (!xv || !wv || x.shape.length !== 4 || !nhwc(attrs.dataFormat)) return null;
  const c = convInfo(
    x.shape,
    filter.shape,
    attr(attrs, 'strides'),
    attr(attrs, 'dilations'),
    attr(attrs, 'pad'),
    attr(attrs, 'dimRoundingMode'),
  );
  const out = allocF32(size(c.outShape));
  backend.native.convForward(xv, wv, null, out, params(c, false, ACT.linear), 0);
  return backend.output(out, c.outShape);
}

function fusedConv2D({ inputs, backend, attrs }: KernelArgs) {
  const x = input(inputs, 'x');
  const filter = input(inputs, 'filter');
  const xv = backend.f32(x);
  const wv = backend.f32(filter);
  if (!xv || !wv || x.shape.length !== 4 || !nhwc(attrs.dataFormat)) return null;
  if (inputs.preluActivationWeights != null) return null;
  const activation = attr<string>(attrs, 'activation') ?? 'linear';
  const act = (ACT as Record<string, number>)[activation];
  if (act === undefined) return null;
  const c = convInfo(
    x.shape,
    filter.shape,
    attr(attrs, 'strides'),
    attr(attrs, 'dilations'),
    attr(attrs, 'pad'),
    attr(attrs, 'dimRoundingMode'),
  );
  let bv: Float32Array | null = null;
  const bias = inputs.bias;
  if (bias != null) {
    bv = backend.f32(bias);
    if (!bv || bv.length !== c.outChannels) return null;
  }
  const out = allocF32(size(c.outShape));
  const alpha = attr<number | undefined>(attrs, 'leakyreluAlpha') ?? 0.2;
  backend.native.convForward(xv, wv, bv, out, params(c, bv != null, act), alpha);
  return backend.output(out, c.outShape);
}

function conv2DBackpropInput({ inputs, backend, attrs }: KernelArgs) {
  const dy = input(inputs, 'dy');
  const filter = input(inputs, 'filter');
  const dyv = backend.f32(dy);
  const wv = backend.f32(filter);
  const inputShape = attr<number[]>(attrs, 'inputShape');
  if (!dyv || !wv || inputShape.length !== 4 || !nhwc(attrs.dataFormat)) return null;
  const c = convInfo(inputShape, filter.shape, attr(attrs, 'strides'), 1, attr(attrs, 'pad'), attr(attrs, 'dimRoundingMode'));
  const dx = allocF32(size(inputShape));
  backend.native.convBackwardData(dyv, wv, dx, params(c, false, ACT.linear));
  return backend.output(dx, inputShape);
}

function conv2DBackpropFilter({ inputs, backend, attrs }: KernelArgs) {
  const x = input(inputs, 'x');
  const dy = input(inputs, 'dy');
  const xv = backend.f32(x);
  const dyv = backend.f32(dy);
  const filterShape = attr<number[]>(attrs, 'filterShape');
  if (!xv || !dyv || x.shape.length !== 4 || !nhwc(attrs.dataFormat)) return null;
  const c = convInfo(x.shape, filterShape, attr(attrs, 'strides'), 1, attr(attrs, 'pad'), attr(attrs, 'dimRoundingMode'));
  const dw = allocF32(size(filterShape));
  backend.native.convBackwardWeights(xv, dyv, dw, params(c, false, ACT.linear));
  return backend.output(dw, filterShape);
}

export const convKernels: NativeKernel[] = [
  { kernelName: 'Conv2D', kernelFunc: conv2D },
  { kernelName: 'FusedConv2D', kernelFunc: fusedConv2D },
  { kernelName: 'Conv2DBackpropInput', kernelFunc: conv2DBackpropInput },
  { kernelName: 'Conv2DBackpropFilter', kernelFunc: conv2DBackpropFilter },
];
