/**
 * Kernels behind the fused-conv op path (see ../fused.ts):
 *  - _OnednnConv2D: conv + bias + (relu|linear) in one oneDNN primitive, NHWC;
 *  - _OnednnReluGrad: dx = dy * step(y) and the per-channel bias gradient in
 *    one pass over the activation.
 */
import { getKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { allocF32, input, type KernelArgs, type NativeKernel, type OnednnBackend } from '../backend.js';
import { convKernels } from './conv.js';

export const ONEDNN_CONV2D = '_OnednnConv2D';
export const ONEDNN_RELU_GRAD = '_OnednnReluGrad';

const fusedConv2D = convKernels.find((k) => k.kernelName === 'FusedConv2D')!.kernelFunc;

function conv({ inputs, backend, attrs }: KernelArgs) {
  return fusedConv2D({ inputs, backend, attrs: { ...attrs, dataFormat: 'NHWC', dilations: 1 } });
}

function reluGrad({ inputs, backend }: KernelArgs) {
  const dy = input(inputs, 'dy');
  const y = input(inputs, 'y');
  const dyv = backend.f32(dy);
  const yv = backend.f32(y);
  if (!dyv || !yv || dy.shape.length === 0) return null;
  const channels = dy.shape[dy.shape.length - 1]!;
  if (channels === 0) return null;
  const dx = allocF32(dyv.length);
  const db = allocF32(channels);
  backend.native.reluGrad(dyv, yv, dx, db, channels);
  return [backend.output(dx, dy.shape), backend.output(db, [channels])];
}

function cpuKernel(name: string): KernelFunc {
  const k = getKernel(name, 'cpu');
  if (!k) throw new Error(`tfjs cpu kernel ${name} is not registered`);
  return k.kernelFunc;
}

/** _OnednnReluGrad from cpu kernels: Step, Multiply, Sum. */
const reluGradFallback: KernelFunc = ({ inputs, backend }) => {
  const dy = inputs.dy as TensorInfo;
  const y = inputs.y as TensorInfo;
  const cpu = backend as OnednnBackend;
  const step = cpuKernel('Step')({ inputs: { x: y }, backend, attrs: { alpha: 0 } }) as TensorInfo;
  const dx = cpuKernel('Multiply')({ inputs: { a: dy, b: step }, backend }) as TensorInfo;
  cpu.disposeIntermediateTensorInfo(step);
  const axes = dy.shape.slice(0, -1).map((_, i) => i);
  const db = cpuKernel('Sum')({ inputs: { x: dx }, backend, attrs: { axis: axes, keepDims: false } }) as TensorInfo;
  return [dx, db];
};

export const fusedKernels: NativeKernel[] = [
  { kernelName: ONEDNN_CONV2D, kernelFunc: conv, fallback: () => getKernel('FusedConv2D', 'cpu')?.kernelFunc },
  { kernelName: ONEDNN_RELU_GRAD, kernelFunc: reluGrad, fallback: () => reluGradFallback },
];
