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
          throw new SpecError(`${at}/type`, `${layer.type} needs a 3-D input (height, width, channels) but gets [${shape.join(', ')}]: it cannot follow Flatten or Dense`);
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
  return { layers, paramCount };
}
