/**
 * Fused Adam for the onednn backend.
 *
 * tfjs' AdamOptimizer.applyGradients runs 13 kernels per variable (mul, add,
 * square, div, sqrt, ...), each a full pass over the weights plus tfjs'
 * per-kernel bookkeeping. On the onednn backend this replaces it with one
 * native kernel per variable (_OnednnAdam) that performs the very same
 * float32 operations in the same order — the results are bit-identical —
 * and keeps tfjs' bookkeeping (moment variables and their names, accBeta
 * updates, iteration count). Other backends use the original method.
 */
import * as tfc from '@tensorflow/tfjs-core';
import { allocF32, input, type KernelArgs, type NativeKernel } from './backend.js';

export const ONEDNN_ADAM = '_OnednnAdam';

interface Moment {
  originalName: string;
  variable: tfc.Variable;
}

interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tfc.Variable;
  accBeta2: tfc.Variable;
  accumulatedFirstMoment: Array<Moment | undefined>;
  accumulatedSecondMoment: Array<Moment | undefined>;
  incrementIterations(): void;
}

type NamedGradients = tfc.NamedTensorMap | Array<{ name: string; tensor: tfc.Tensor }>;
type ApplyGradients = (this: tfc.AdamOptimizer, variableGradients: NamedGradients) => void;

function adamKernel({ inputs, backend, attrs }: KernelArgs) {
  const value = input(inputs, 'value');
  const w = backend.f32(value);
  const m = backend.f32(input(inputs, 'm'));
  const v = backend.f32(input(inputs, 'v'));
  const g = backend.f32(input(inputs, 'grad'));
  const scalars = attrs.scalars as number[];
  if (!w || !m || !v || !g || m.length !== w.length || v.length !== w.length || g.length !== w.length) return null;
  const ow = allocF32(w.length);
  const om = allocF32(w.length);
  const ov = allocF32(w.length);
  backend.native.adam(w, m, v, g, ow, om, ov, Float32Array.from(scalars));
  return [backend.output(ow, value.shape), backend.output(om, value.shape), backend.output(ov, value.shape)];
}

export const adamKernels: NativeKernel[] = [{ kernelName: ONEDNN_ADAM, kernelFunc: adamKernel }];

let original: ApplyGradients | undefined;

/** Installs the fused path for `backendName`; false when AdamOptimizer cannot be patched. */
export function installFusedAdam(backendName: string): boolean {
  if (original) return true;
  const proto = tfc.AdamOptimizer.prototype as unknown as { applyGradients: ApplyGradients };
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'applyGradients');
  if (!descriptor?.writable) return false;
  const base = proto.applyGradients;
  proto.applyGradients = function applyGradients(this: tfc.AdamOptimizer, variableGradients: NamedGradients): void {
    const self = this as unknown as AdamInternals;
    const list = Array.isArray(variableGradients) ? variableGradients : null;
    const varNames = list ? list.map((v) => v.name) : Object.keys(variableGradients);
    const gradientOf = (name: string, i: number): tfc.Tensor | undefined => (list ? list[i]?.tensor : (variableGradients as tfc.NamedTensorMap)[name]);
    const registered = tfc.engine().registeredVariables;
    const eligible =
      tfc.getBackend() === backendName &&
      varNames.every((name, i) => {
        const value = registered[name];
        const grad = gradientOf(name, i);
        return value?.dtype === 'float32' && (grad == null || (grad.dtype === 'float32' && grad.size === value.size));
      });
    if (!eligible) {
      base.call(this, variableGradients);
      return;
    }
    tfc.tidy(() => {
      // sub(1, accBeta) in float32, like the original.
      const oneMinusAccBeta1 = Math.fround(1 - self.accBeta1.dataSync()[0]!);
      const oneMinusAccBeta2 = Math.fround(1 - self.accBeta2.dataSync()[0]!);
      const scalars = Array.from(
        Float32Array.of(self.beta1, 1 - self.beta1, self.beta2, 1 - self.beta2, oneMinusAccBeta1, oneMinusAccBeta2, self.epsilon, -self.learningRate),
      );
      varNames.forEach((name, i) => {
        const value = registered[name]!;
        const trainable = false;
        if (self.accumulatedFirstMoment[i] == null) {
          self.accumulatedFirstMoment[i] = {
            originalName: `${name}/m`,
            variable: tfc.tidy(() => tfc.zerosLike(value).variable(trainable)),
          };
        }
        if (self.accumulatedSecondMoment[i] == null) {
          self.accumulatedSecondMoment[i] = {
            originalName: `${name}/v`,
            variable: tfc.tidy(() => tfc.zerosLike(value).variable(trainable)),
          };
        }
        const gradient = gradientOf(name, i);
        if (gradient == null) return;
        const firstMoment = self.accumulatedFirstMoment[i]!.variable;
        const secondMoment = self.accumulatedSecondMoment[i]!.variable;
        const [newValue, newFirst, newSecond] = tfc.engine().runKernel(
          ONEDNN_ADAM,
          { value, m: firstMoment, v: secondMoment, grad: gradient } as never,
          {
            scalars,
          } as never,
        ) as tfc.Tensor[];
        firstMoment.assign(newFirst!);
        secondMoment.assign(newSecond!);
        value.assign(newValue!);
      });
      self.accBeta1.assign(tfc.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tfc.mul(self.accBeta2, self.beta2));
    });
    self.incrementIterations();
  };
  original = base;
  return true;
}

/** Restores tfjs' own AdamOptimizer.applyGradients. */
export function uninstallFusedAdam(): void {
  if (!original) return;
  (tfc.AdamOptimizer.prototype as unknown as { applyGradients: ApplyGradients }).applyGradients = original;
  original = undefined;
}
