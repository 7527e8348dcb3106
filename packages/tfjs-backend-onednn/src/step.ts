/**
 * A whole training step of a Sequential stack in one native call.
 *
 * Through tfjs, one step of the tutorial CNN is ~60 kernels plus tape bookkeeping — several ms
 * of serial JS per step beside the convolutions — and Keras' activity penalties add four more
 * passes (abs/square/sum and their gradients) over the largest activations. Here the forward pass,
 * the softmax cross-entropy from logits, every weight and activity penalty and the backward pass
 * run in C++ (src/native/step.cc): oneDNN primitives for the convolutions, pooling and matmuls,
 * fused OpenMP loops for the rest (the activity penalty's value and gradient and the bias
 * gradient ride on the activation's backward pass). The weights stay in the tfjs variables (read
 * in place, never written); the gradients come back as tensors, so any tfjs optimizer applies them.
 *
 * Semantics (tf.keras 2):
 *  - data loss: mean over the batch of Σ_j y_j (logsumexp(z) − z_j), z the last layer's logits;
 *  - weight penalty l1·Σ|w| + l2·Σw², gradient l1·sign(w) + 2·l2·w (sign(0) = 0);
 *  - activity penalty: the same on the layer's output (after its activation; the probabilities for
 *    the softmax layer), divided by the batch size;
 *  - relu'(0) = 0; max pooling's gradient goes to the window's first maximum;
 *  - Dropout: Regula's seeded masks (kernels/seeded-dropout.ts), keyed per layer by the caller.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type Tensor } from '@tensorflow/tfjs-core';
import { allocF32, OnednnBackend } from './backend.js';
import { dropoutScale, dropoutThreshold } from './kernels/seeded-dropout.js';

/**
 * The window geometry a convolution and a max pooling share in their plan rows (from index 4, in
 * step.cc's order): output height, width and channels, window, strides, then the four paddings.
 */
function windowRow(info: backend_util.Conv2DInfo, outChannels: number): number[] {
  const p = info.padInfo;
  return [
    info.outHeight,
    info.outWidth,
    outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    p.top,
    p.left,
    p.bottom,
    p.right,
  ];
}

/** Numbers per layer in the native plan (src/native/step.cc, kRow). */
export const STEP_ROW = 25;
const KIND = { conv: 0, pool: 1, drop: 2, flat: 3, dense: 4 } as const;
const ACTIVATION = { linear: 0, relu: 1, softmax: 2 } as const;

export interface PenaltyFactors {
  l1: number;
  l2: number;
}

interface Penalties {
  kernelPenalty?: PenaltyFactors | null;
  biasPenalty?: PenaltyFactors | null;
  activityPenalty?: PenaltyFactors | null;
}

export type SequentialLayer =
  | ({
      type: 'conv2d';
      /** HWIO, as tf.layers.conv2d stores it. */
      kernel: Tensor;
      bias: Tensor | null;
      strides: [number, number];
      padding: 'valid' | 'same';
      activation: string;
    } & Penalties)
  | { type: 'maxPooling2d'; poolSize: [number, number]; strides: [number, number]; padding: 'valid' | 'same' }
  | { type: 'dropout'; rate: number }
  | { type: 'flatten' }
  | ({ type: 'dense'; kernel: Tensor; bias: Tensor | null; activation: string } & Penalties);

export interface SequentialStepResult {
  /** The gradient of each of `variables`, in that order (the caller disposes them). */
  grads: Tensor[];
  dataLoss: number;
  kernelPenalty: number;
  biasPenalty: number;
  activityPenalty: number;
  /** Samples whose largest logit is the label's class (first maximum of each). */
  correct: number;
}

function factors(p: PenaltyFactors | null | undefined): [number, number] {
  return p ? [p.l1, p.l2] : [0, 0];
}

export class OnednnSequentialStep {
  private handle: object | null = null;
  private readonly out = new Float64Array(5);
  private readonly keys: Float64Array;

  private constructor(
    private readonly backendName: string,
    readonly inputShape: [number, number, number],
    readonly numClasses: number,
    /** The weights whose gradients `run` returns: kernel, then bias, of each Conv2D / Dense layer. */
    readonly variables: Tensor[],
    private readonly plan: Float64Array,
    layerCount: number,
  ) {
    this.keys = new Float64Array(layerCount);
  }

  /**
   * Plans `layers` (after an input of `inputShape`, HWC) for the onednn backend `backendName`.
   * Returns the reason instead when a layer or its configuration is not supported natively.
   */
  static plan(inputShape: [number, number, number], layers: readonly SequentialLayer[], backendName = 'onednn'): OnednnSequentialStep | string {
    // ONEDNN_DISABLE=SequentialStep keeps callers on their tfjs step (diagnostics, comparisons).
    if ((process.env.ONEDNN_DISABLE ?? '').split(',').includes('SequentialStep')) return 'disabled by ONEDNN_DISABLE';
    if (layers.length === 0) return 'no layers';
    let [h, w, c] = inputShape;
    const rows: number[] = [];
    const variables: Tensor[] = [];
    for (let i = 0; i < layers.length; i++) {
      const L = layers[i]!;
      const row = new Array<number>(STEP_ROW).fill(0);
      row[1] = h;
      row[2] = w;
      row[3] = c;
      switch (L.type) {
        case 'conv2d': {
          if (L.activation !== 'relu' && L.activation !== 'linear') return `layer ${i}: Conv2D activation '${L.activation}'`;
          const ks = L.kernel.shape;
          if (L.kernel.dtype !== 'float32' || ks.length !== 4 || ks[2] !== c) return `layer ${i}: Conv2D kernel shape ${JSON.stringify(ks)}`;
          const info = backend_util.computeConv2DInfo([1, h, w, c], ks as [number, number, number, number], L.strides, 1, L.padding);
          row[0] = KIND.conv;
          row.splice(4, 12, ...windowRow(info, info.outChannels), ACTIVATION[L.activation]);
          [h, w, c] = [info.outHeight, info.outWidth, info.outChannels];
          break;
        }
        case 'maxPooling2d': {
          const info = backend_util.computePool2DInfo([1, h, w, c], L.poolSize, L.strides, 1, L.padding);
          row[0] = KIND.pool;
          row.splice(4, 11, ...windowRow(info, c));
          [h, w] = [info.outHeight, info.outWidth];
          break;
        }
        case 'dropout':
          // rate 0 (or ≥ 1, which Regula's layer also passes through) is the identity.
          row[0] = L.rate > 0 && L.rate < 1 ? KIND.drop : KIND.flat;
          row[4] = h;
          row[5] = w;
          row[6] = c;
          if (row[0] === KIND.drop) {
            row[23] = dropoutThreshold(L.rate);
            row[24] = dropoutScale(L.rate);
          }
          break;
        case 'flatten':
          row[0] = KIND.flat;
          [h, w, c] = [1, 1, h * w * c];
          row[4] = 1;
          row[5] = 1;
          row[6] = c;
          break;
        case 'dense': {
          if (h !== 1 || w !== 1) return `layer ${i}: Dense on a rank-3 input (no Flatten before it)`;
          const isLast = i === layers.length - 1;
          if (!(L.activation === 'relu' || L.activation === 'linear' || (L.activation === 'softmax' && isLast))) {
            return `layer ${i}: Dense activation '${L.activation}'`;
          }
          const ks = L.kernel.shape;
          if (L.kernel.dtype !== 'float32' || ks.length !== 2 || ks[0] !== c) return `layer ${i}: Dense kernel shape ${JSON.stringify(ks)}`;
          row[0] = KIND.dense;
          row[4] = 1;
          row[5] = 1;
          row[6] = ks[1]!;
          row[15] = ACTIVATION[L.activation as 'relu' | 'linear' | 'softmax'];
          c = ks[1]!;
          break;
        }
      }
      if (L.type === 'conv2d' || L.type === 'dense') {
        const oc = row[6]!;
        if (L.bias && (L.bias.dtype !== 'float32' || L.bias.size !== oc)) return `layer ${i}: bias shape ${JSON.stringify(L.bias.shape)}`;
        row[16] = L.bias ? 1 : 0;
        [row[17], row[18]] = factors(L.kernelPenalty);
        [row[19], row[20]] = factors(L.biasPenalty);
        [row[21], row[22]] = factors(L.activityPenalty);
        variables.push(L.kernel);
        if (L.bias) variables.push(L.bias);
      }
      rows.push(...row);
    }
    const last = layers[layers.length - 1]!;
    if (last.type !== 'dense' || last.activation !== 'softmax') return 'the last layer is not Dense + softmax';
    return new OnednnSequentialStep(backendName, inputShape, c, variables, Float64Array.from(rows), layers.length);
  }

  /** Per-layer process CPU ms per step so far (needs ONEDNN_STEP_PROFILE=1 when the step first ran). */
  profile(): string {
    const backend = tf.backend();
    if (!this.handle || !(backend instanceof OnednnBackend)) return '';
    return backend.native.stepProfile(this.handle);
  }

  /**
   * The Conv2D layers that run as one kernel with their ReLU, the max pooling after them and the
   * Dropout after that, if any, once the step has run (before: []), with the layout the last run
   * wrote their output in: 'nhwc', or the blocked layout the next convolution reads ('nChw8c',
   * 'nChw16c'). ONEDNN_STEP_FUSE=0 when the step is created turns the fusion off.
   */
  fusedLayers(): Array<{ layer: number; output: 'nhwc' | 'nChw8c' | 'nChw16c' }> {
    const backend = tf.backend();
    if (!this.handle || !(backend instanceof OnednnBackend)) return [];
    return backend.native.stepFused(this.handle);
  }

  /**
   * One step on a batch: x [B, ...inputShape], labels [B, numClasses] (one-hot or soft),
   * `dropoutKeys[i]` the mask key of layer i (read for Dropout layers only).
   */
  run(x: Tensor, labels: Tensor, dropoutKeys: ArrayLike<number> = []): SequentialStepResult {
    const backend = tf.backend();
    if (tf.getBackend() !== this.backendName || !(backend instanceof OnednnBackend)) {
      throw new Error(`OnednnSequentialStep: the active backend is '${tf.getBackend()}', not '${this.backendName}'`);
    }
    const native = backend.native;
    this.handle ??= native.stepCreate(this.plan);
    const B = x.shape[0] ?? 0;
    const [h, w, c] = this.inputShape;
    if (x.rank !== 4 || x.shape[1] !== h || x.shape[2] !== w || x.shape[3] !== c) {
      throw new Error(`OnednnSequentialStep: x has shape ${JSON.stringify(x.shape)}, expected [B, ${h}, ${w}, ${c}]`);
    }
    if (labels.rank !== 2 || labels.shape[0] !== B || labels.shape[1] !== this.numClasses) {
      throw new Error(`OnednnSequentialStep: labels have shape ${JSON.stringify(labels.shape)}, expected [${B}, ${this.numClasses}]`);
    }
    const xv = backend.f32(x);
    const yv = backend.f32(labels);
    if (!xv || !yv) throw new Error('OnednnSequentialStep: x and labels must be float32');
    const weights = this.variables.map((v) => {
      const values = backend.f32(v);
      if (!values) throw new Error(`OnednnSequentialStep: weight ${JSON.stringify(v.shape)} is not float32 data`);
      return values;
    });
    const grads = this.variables.map((v) => allocF32(v.size));
    for (let i = 0; i < this.keys.length; i++) this.keys[i] = (dropoutKeys[i] ?? 0) >>> 0;
    native.stepRun(this.handle, xv, yv, B, weights, grads, this.keys, this.out);
    const engine = tf.engine();
    return {
      grads: grads.map((g, i) => engine.makeTensorFromTensorInfo(backend.output(g, [...this.variables[i]!.shape]))),
      dataLoss: this.out[0]!,
      kernelPenalty: this.out[1]!,
      biasPenalty: this.out[2]!,
      activityPenalty: this.out[3]!,
      correct: this.out[4]!,
    };
  }
}
