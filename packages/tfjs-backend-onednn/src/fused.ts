/**
 * Fused conv + bias + relu for training on the onednn backend.
 *
 * While gradients are recorded, tfjs' `fused.conv2d` (what tf.layers.conv2d
 * calls) falls back to three kernels — Conv2D, Add(bias), Relu — and its
 * gradient to Step, Multiply, Sum: six passes over every activation, the
 * largest tensors of a CNN. This module swaps `fused.conv2d` on tfjs-core's
 * (mutable) `fused` namespace for a version that, on the onednn backend,
 * runs one kernel (_OnednnConv2D: a oneDNN convolution with bias and a relu
 * post-op) whose registered gradient computes relu's and the bias' gradients
 * in one pass (_OnednnReluGrad) and the input / filter gradients lazily (only
 * those the tape needs: not the input image's). The math is the same
 * (dx = dy * step(y)); only the convolution's summation order differs.
 * Other backends, layouts, activations and dilations use the original.
 */
import * as tfc from '@tensorflow/tfjs-core';
import { CorePatch } from './core-patch.js';
import { ONEDNN_CONV2D, ONEDNN_RELU_GRAD } from './kernels/fused.js';

type FusedConv2D = typeof tfc.fused.conv2d;
type FusedConvArgs = Parameters<FusedConv2D>[0];

const patch = new CorePatch<FusedConv2D>((core) => core.fused as Record<string, unknown>, 'conv2d');
let gradientRegistered = false;

function isOne(d: unknown): boolean {
  return d == null || d === 1 || (Array.isArray(d) && d.every((v) => v === 1));
}

function registerGradient(): void {
  if (gradientRegistered) return;
  gradientRegistered = true;
  tfc.registerGradient({
    kernelName: ONEDNN_CONV2D,
    inputsToSave: ['x', 'filter'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter, y] = saved as [tfc.Tensor4D, tfc.Tensor4D, tfc.Tensor4D];
      const { strides, pad, dimRoundingMode, activation } = attrs as unknown as {
        strides: [number, number] | number;
        pad: FusedConvArgs['pad'];
        dimRoundingMode?: 'floor' | 'round' | 'ceil';
        activation: string;
      };
      const g = dy as tfc.Tensor4D;
      let dz: tfc.Tensor4D = g;
      let dbias: tfc.Tensor | undefined;
      if (activation === 'relu') {
        [dz, dbias] = tfc.engine().runKernel(ONEDNN_RELU_GRAD, { dy: g, y } as never) as [tfc.Tensor4D, tfc.Tensor];
      }
      const convAttrs = { strides, pad, dataFormat: 'NHWC', dimRoundingMode };
      return {
        x: () =>
          tfc.engine().runKernel(
            'Conv2DBackpropInput',
            { dy: dz, filter } as never,
            {
              ...convAttrs,
              inputShape: x.shape,
            } as never,
          ) as tfc.Tensor,
        filter: () =>
          tfc.engine().runKernel(
            'Conv2DBackpropFilter',
            { x, dy: dz } as never,
            {
              ...convAttrs,
              filterShape: filter.shape,
            } as never,
          ) as tfc.Tensor,
        bias: () => dbias ?? tfc.sum(dz, [0, 1, 2]),
      };
    },
  });
}

/** Installs the fused path for `backendName`; false when tfjs-core cannot be patched. */
export function installFusedConv(backendName: string): boolean {
  const fast = (base: FusedConv2D) =>
    ((args: FusedConvArgs) => {
      const { x, filter, bias } = args;
      const activation = args.activation ?? 'linear';
      if (
        tfc.getBackend() !== backendName ||
        !(x instanceof tfc.Tensor) ||
        !(filter instanceof tfc.Tensor) ||
        x.rank !== 4 ||
        filter.rank !== 4 ||
        x.dtype !== 'float32' ||
        filter.dtype !== 'float32' ||
        x.shape[3] !== filter.shape[2] ||
        (args.dataFormat ?? 'NHWC') !== 'NHWC' ||
        !isOne(args.dilations) ||
        args.preluActivationWeights != null ||
        (activation !== 'relu' && activation !== 'linear')
      ) {
        return base(args);
      }
      if (bias != null && (!(bias instanceof tfc.Tensor) || bias.dtype !== 'float32' || bias.rank !== 1 || bias.size !== filter.shape[3])) {
        return base(args);
      }
      const inputs = bias != null ? { x, filter, bias } : { x, filter };
      const attrs = { strides: args.strides, pad: args.pad, dimRoundingMode: args.dimRoundingMode, activation };
      return tfc.engine().runKernel(ONEDNN_CONV2D, inputs as never, attrs as never) as tfc.Tensor4D;
    }) as FusedConv2D;
  return patch.install(fast, registerGradient);
}

/** Restores tfjs' own fused.conv2d. */
export function uninstallFusedConv(): void {
  patch.uninstall();
}
