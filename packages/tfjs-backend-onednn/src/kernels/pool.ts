/**
 * MaxPool / MaxPoolGrad / AvgPool / AvgPoolGrad (NHWC). MaxPool keeps oneDNN's
 * argmax workspace next to its output values, so MaxPoolGrad (which receives
 * that output) scatters without recomputing; if the workspace is missing it
 * recomputes the forward pass.
 */
import { backend_util } from '@tensorflow/tfjs-core';
import { POOL_PARAMS } from '../native.js';
import { allocF32, attr, input, size, type KernelArgs, type NativeKernel } from '../backend.js';
import { bufferPool } from '../buffer-pool.js';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

interface Workspace {
  key: string;
  ws: Uint8Array;
}

/** Output values of a MaxPool -> the workspace that produced them. */
const workspaces = new WeakMap<Float32Array, Workspace>();

function poolInfo(args: KernelArgs, xShape: number[]): backend_util.Conv2DInfo {
  return backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attr<[number, number] | number>(args.attrs, 'filterSize'),
    attr<[number, number] | number>(args.attrs, 'strides'),
    1,
    attr<Pad>(args.attrs, 'pad'),
    attr<Rounding>(args.attrs, 'dimRoundingMode'),
  );
}

function params(c: backend_util.Conv2DInfo, alg: 0 | 1 | 2): Int32Array {
  const p = new Int32Array(POOL_PARAMS);
  p.set([
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.outHeight,
    c.outWidth,
    c.filterHeight,
    c.filterWidth,
    c.strideHeight,
    c.strideWidth,
    c.padInfo.top,
    c.padInfo.left,
    c.padInfo.bottom,
    c.padInfo.right,
    alg,
  ]);
  return p;
}

function pool(args: KernelArgs, alg: 0 | 1) {
  const { inputs, backend } = args;
  const x = input(inputs, 'x');
  const xv = backend.f32(x);
  if (!xv || x.shape.length !== 4) return null;
  const c = poolInfo(args, x.shape);
  const p = params(c, alg);
  const y = allocF32(size(c.outShape));
  if (alg === 0) {
    const ws = bufferPool.allocBytes(backend.native.poolWorkspaceSize(p));
    backend.native.poolForward(xv, y, p, ws);
    workspaces.set(y, { key: p.join(','), ws });
    bufferPool.attach(y, ws); // recycled with y's buffer
  } else {
    backend.native.poolForward(xv, y, p, null);
  }
  return backend.output(y, c.outShape);
}

function maxPoolGrad(args: KernelArgs) {
  const { inputs, backend } = args;
  const dy = input(inputs, 'dy');
  const x = input(inputs, 'input');
  const y = input(inputs, 'output');
  const dyv = backend.f32(dy);
  const xv = backend.f32(x);
  const yv = backend.f32(y);
  if (!dyv || !xv || !yv || x.shape.length !== 4) return null;
  const c = poolInfo(args, x.shape);
  const p = params(c, 0);
  const key = p.join(',');
  let ws = workspaces.get(yv);
  if (!ws || ws.key !== key) {
    const recomputed = new Uint8Array(backend.native.poolWorkspaceSize(p));
    backend.native.poolForward(xv, allocF32(size(c.outShape)), p, recomputed);
    ws = { key, ws: recomputed };
  }
  const dx = allocF32(size(x.shape));
  backend.native.poolBackward(dyv, ws.ws, dx, p);
  return backend.output(dx, x.shape);
}

function avgPoolGrad(args: KernelArgs) {
  const { inputs, backend } = args;
  const dy = input(inputs, 'dy');
  const x = input(inputs, 'input');
  const dyv = backend.f32(dy);
  if (!dyv || x.dtype !== 'float32' || x.shape.length !== 4) return null;
  const c = poolInfo(args, x.shape);
  const dx = allocF32(size(x.shape));
  // tfjs' AvgPoolGrad divides by the full window size, padding included.
  backend.native.poolBackward(dyv, null, dx, params(c, 2));
  return backend.output(dx, x.shape);
}

export const poolKernels: NativeKernel[] = [
  { kernelName: 'MaxPool', kernelFunc: (args) => pool(args, 0) },
  { kernelName: 'MaxPoolGrad', kernelFunc: maxPoolGrad },
  { kernelName: 'AvgPool', kernelFunc: (args) => pool(args, 1) },
  { kernelName: 'AvgPoolGrad', kernelFunc: avgPoolGrad },
];
