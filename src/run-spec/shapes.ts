/**
 * Shape inference through the layer stack, with Keras' arithmetic, and the parameter count.
 * Rejects what Keras could not build or what Regula will not train, naming the layer's JSON pointer.
 */
import { SpecError } from './errors.js';
import { LIMITS } from './limits.js';
import type { NormalizedLayer, NormalizedSpec, Padding } from './normalized.js';

export type Shape = number[]; // without the batch axis

export interface LayerShape {
  type: NormalizedLayer['type'];
  outputShape: Shape;
  params: number;
}

export interface ShapeReport {
  layers: LayerShape[];
  paramCount: number;
}

/** Keras conv/pool output length along one axis. */
export function outputLength(input: number, window: number, stride: number, padding: Padding): number {
  return padding === 'same' ? Math.ceil(input / stride) : Math.floor((input - window) / stride) + 1;
}

export function inferShapes(spec: NormalizedSpec): ShapeReport {
  let shape: Shape = [...spec.input.shape];
  const layers: LayerShape[] = [];
  let paramCount = 0;
  const last = spec.model.layers.length - 1;

  spec.model.layers.forEach((layer, i) => {
    const at = `/model/layers/${i}`;
    let params = 0;
    switch (layer.type) {
      case 'Conv2D':
      case 'MaxPooling2D': {
        if (shape.length !== 3) {
          throw new SpecError(
            `${at}/type`,
            `${layer.type} needs a 3-D input (height, width, channels) but gets [${shape.join(', ')}]: it cannot follow Flatten or Dense`,
          );
        }
        const [h, w, c] = shape as [number, number, number];
        const window = layer.type === 'Conv2D' ? layer.kernelSize : layer.poolSize;
        const field = layer.type === 'Conv2D' ? 'kernelSize' : 'poolSize';
        const oh = outputLength(h, window[0], layer.strides[0], layer.padding);
        const ow = outputLength(w, window[1], layer.strides[1], layer.padding);
        if (oh < 1 || ow < 1) {
          throw new SpecError(
            `${at}/${field}`,
            `${layer.type} with ${field} ${window.join('x')} on a ${h}x${w} input gives a ${oh}x${ow} output: the spatial size must stay positive`,
          );
        }
        if (layer.type === 'Conv2D') {
          params = window[0] * window[1] * c * layer.filters + (layer.useBias ? layer.filters : 0);
          shape = [oh, ow, layer.filters];
        } else {
          shape = [oh, ow, c];
        }
        break;
      }
      case 'Flatten':
        shape = [shape.reduce((a, b) => a * b, 1)];
        break;
      case 'Dropout':
        break;
      case 'Dense': {
        if (shape.length !== 1) {
          throw new SpecError(`${at}/type`, `Dense needs a flat input but gets [${shape.join(', ')}]: add a Flatten layer before it`);
        }
        params = (shape[0] ?? 0) * layer.units + (layer.useBias ? layer.units : 0);
        shape = [layer.units];
        break;
      }
    }
    paramCount += params;
    layers.push({ type: layer.type, outputShape: [...shape], params });
    if (layer.type === 'Dense' && layer.activation === 'softmax' && i !== last) {
      throw new SpecError(`${at}/activation`, 'softmax is only allowed on the last layer');
    }
  });

  const out = spec.model.layers[last];
  const pointer = `/model/layers/${last}`;
  if (out?.type !== 'Dense') {
    throw new SpecError(`${pointer}/type`, `the last layer must be a Dense softmax layer with ${spec.input.numClasses} units (one per class)`);
  }
  if (out.activation !== 'softmax') {
    throw new SpecError(`${pointer}/activation`, 'the last layer must use the softmax activation (the loss is categorical crossentropy)');
  }
  if (out.units !== spec.input.numClasses) {
    throw new SpecError(`${pointer}/units`, `the softmax layer has ${out.units} units but the dataset has ${spec.input.numClasses} classes`);
  }
  if (paramCount > LIMITS.maxParams) {
    throw new SpecError('/model/layers', `the model has ${paramCount} parameters; the limit is ${LIMITS.maxParams}`);
  }
  const report = { layers, paramCount };
  checkMemory(spec, report);
  return report;
}

/** Optimizer slot variables per parameter (tfjs: Adam m and v; RMSprop mean square and moment; SGD none). */
const OPTIMIZER_SLOTS: Record<NormalizedSpec['training']['optimizer']['type'], number> = { adam: 2, rmsprop: 2, sgd: 0 };

export interface MemoryEstimate {
  /** Bytes that grow with the parameter count (weights, gradients, optimizer slots, checkpoint copies). */
  parameterBytes: number;
  /** Bytes that grow with the batch size (activations, their gradients, convolution patch buffers). */
  batchBytes: number;
  totalBytes: number;
}

/**
 * What one run needs at its peak, from the parameter count, the optimizer and the activations × batch
 * size; the coefficients are LIMITS' (measured by faults/fault-memory.ts, see there).
 */
export function estimateMemory(spec: NormalizedSpec, report: ShapeReport): MemoryEstimate {
  const slots = OPTIMIZER_SLOTS[spec.training.optimizer.type];
  const best = spec.training.earlyStopping?.restoreBestWeights ? 1 : 0;
  const parameterBytes = report.paramCount * 4 * (LIMITS.memory.copiesPerParam + LIMITS.memory.copiesPerSlot * slots + best);
  let perSample = spec.input.shape.reduce((a, b) => a * b, 1);
  let shape: Shape = [...spec.input.shape];
  spec.model.layers.forEach((layer, i) => {
    const out = report.layers[i]?.outputShape ?? shape;
    const size = out.reduce((a, b) => a * b, 1);
    // Forward output kept for the backward pass, its gradient, and a temporary; one more for an activity penalty.
    perSample += size * (LIMITS.memory.copiesPerActivation + ('activityRegularizer' in layer && layer.activityRegularizer ? 1 : 0));
    if (layer.type === 'Conv2D') {
      // Patch (im2col-like) buffers of the convolution's backward pass: window × input channels per output position.
      const cin = shape[2] ?? 1;
      perSample += layer.kernelSize[0] * layer.kernelSize[1] * cin * (out[0] ?? 1) * (out[1] ?? 1);
    }
    shape = out;
  });
  const batchBytes = perSample * 4 * spec.training.batchSize;
  return { parameterBytes, batchBytes, totalBytes: parameterBytes + batchBytes };
}

/** Rejects a run whose estimated peak memory is over LIMITS.maxRunMemoryBytes, naming the field to change. */
export function checkMemory(spec: NormalizedSpec, report: ShapeReport): MemoryEstimate {
  const m = estimateMemory(spec, report);
  if (m.totalBytes > LIMITS.maxRunMemoryBytes) {
    const mb = (b: number) => `${Math.round(b / 2 ** 20)} MB`;
    const what = `training this model needs about ${mb(m.totalBytes)} (${mb(m.parameterBytes)} for ${report.paramCount} parameters with the ${spec.training.optimizer.type} optimizer's state and checkpoints, ${mb(m.batchBytes)} for activations at batch size ${spec.training.batchSize}); the limit is ${mb(LIMITS.maxRunMemoryBytes)}`;
    // Point at what dominates: the batch size when activations alone would fit a smaller batch.
    if (m.batchBytes > m.parameterBytes && m.parameterBytes + m.batchBytes / spec.training.batchSize <= LIMITS.maxRunMemoryBytes) {
      throw new SpecError('/training/batchSize', `${what}: use a smaller batch size`);
    }
    throw new SpecError('/model/layers', `${what}: use fewer or smaller layers`);
  }
  return m;
}
