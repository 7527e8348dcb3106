import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/run-spec/errors.js';
import { normalizeRegularizer, normalizeSpec } from '../../src/run-spec/normalize.js';
import { tutorialLayers } from '../../src/run-spec/presets.js';
import { outputLength } from '../../src/run-spec/shapes.js';
import { specError } from '../support/spec-error.js';

/** The tutorial's baseline CNN (Keras code in the tutorial, tfjs-style arguments). */
const TUTORIAL_LAYERS = tutorialLayers();

const ctx = { numClasses: 47, seed: 1 };

describe('normalizeSpec', () => {
  it("applies the tutorial's defaults", () => {
    const { spec } = normalizeSpec({ model: { layers: TUTORIAL_LAYERS } }, ctx);
    expect(spec.training).toEqual({
      epochs: 25,
      batchSize: 250,
      validationSplit: 0.2,
      optimizer: { type: 'adam', learningRate: 0.001 },
      shuffle: true,
      seed: 1,
      earlyStopping: null,
    });
    expect(spec.dataset).toEqual({ name: 'emnist-balanced', limit: null, seed: 1 });
    expect(spec.input).toEqual({ shape: [28, 28, 1], numClasses: 47 });
    expect(spec.model.layers[0]).toEqual({
      type: 'Conv2D',
      filters: 32,
      kernelSize: [3, 3],
      strides: [1, 1],
      padding: 'valid',
      activation: 'relu',
      useBias: true,
      kernelRegularizer: null,
      biasRegularizer: null,
      activityRegularizer: null,
    });
    expect(spec.model.layers[1]).toEqual({ type: 'MaxPooling2D', poolSize: [2, 2], strides: [2, 2], padding: 'valid' });
  });

  it("uses each optimizer's Keras default learning rate and keeps an explicit seed", () => {
    const { spec } = normalizeSpec({ model: { layers: TUTORIAL_LAYERS }, training: { optimizer: { type: 'sgd' }, seed: 9 } }, ctx);
    expect(spec.training.optimizer).toEqual({ type: 'sgd', learningRate: 0.01 });
    expect(spec.training.seed).toBe(9);
  });

  it('infers the tutorial CNN shapes and its 1.2M parameters like Keras model.summary()', () => {
    const { shapes } = normalizeSpec({ model: { layers: TUTORIAL_LAYERS } }, ctx);
    expect(shapes.layers.map((l) => l.outputShape)).toEqual([
      [26, 26, 32],
      [13, 13, 32],
      [13, 13, 32],
      [11, 11, 64],
      [5, 5, 64],
      [5, 5, 64],
      [1600],
      [256],
      [47],
    ]);
    // Keras: 320 + 18,496 + 409,856 + 12,079 = 440,751
    expect(shapes.layers.map((l) => l.params)).toEqual([320, 0, 0, 18496, 0, 0, 0, 409856, 12079]);
    expect(shapes.paramCount).toBe(440751);
  });

  it('computes same/valid output lengths with strides as Keras does', () => {
    expect(outputLength(28, 3, 1, 'valid')).toBe(26);
    expect(outputLength(28, 3, 2, 'valid')).toBe(13);
    expect(outputLength(28, 3, 2, 'same')).toBe(14);
    expect(outputLength(5, 2, 2, 'valid')).toBe(2);
    expect(outputLength(5, 2, 2, 'same')).toBe(3);
  });

  it('rejects a negative spatial size, naming the layer', () => {
    const e = specError(() =>
      normalizeSpec(
        { model: { layers: [{ type: 'Conv2D', filters: 4, kernelSize: 30 }, { type: 'Flatten' }, { type: 'Dense', units: 47, activation: 'softmax' }] } },
        ctx,
      ),
    );
    expect(e.pointer).toBe('/model/layers/0/kernelSize');
    expect(e.message).toMatch(/-1x-1/);
  });

  it('rejects Dense on a 4-D input (missing Flatten)', () => {
    const e = specError(() =>
      normalizeSpec(
        {
          model: {
            layers: [
              { type: 'Conv2D', filters: 4, kernelSize: 3 },
              { type: 'Dense', units: 47, activation: 'softmax' },
            ],
          },
        },
        ctx,
      ),
    );
    expect(e.pointer).toBe('/model/layers/1/type');
    expect(e.message).toMatch(/Flatten/);
  });

  it('rejects a softmax layer whose units differ from the class count', () => {
    const e = specError(() => normalizeSpec({ model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units: 10, activation: 'softmax' }] } }, ctx));
    expect(e.pointer).toBe('/model/layers/1/units');
    expect(e.message).toMatch(/47 classes/);
  });

  it('rejects a model that does not end in softmax, and Conv2D after Flatten', () => {
    expect(specError(() => normalizeSpec({ model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units: 47 }] } }, ctx)).pointer).toBe(
      '/model/layers/1/activation',
    );
    expect(
      specError(() =>
        normalizeSpec(
          { model: { layers: [{ type: 'Flatten' }, { type: 'Conv2D', filters: 2, kernelSize: 1 }, { type: 'Dense', units: 47, activation: 'softmax' }] } },
          ctx,
        ),
      ).pointer,
    ).toBe('/model/layers/1/type');
  });

  it('rejects models over the parameter limit', () => {
    const e = specError(() =>
      normalizeSpec(
        {
          model: {
            layers: [
              { type: 'Flatten' },
              { type: 'Dense', units: 65536 },
              { type: 'Dense', units: 65536 },
              { type: 'Dense', units: 47, activation: 'softmax' },
            ],
          },
        },
        ctx,
      ),
    );
    expect(e.pointer).toBe('/model/layers');
  });
});

describe('normalizeRegularizer (Keras factors, explicit)', () => {
  it('l1() and l2() default to 0.01 like Keras', () => {
    expect(normalizeRegularizer({ type: 'l1' }, '/r')).toEqual({ type: 'l1', l1: 0.01, l2: 0 });
    expect(normalizeRegularizer({ type: 'l2' }, '/r')).toEqual({ type: 'l2', l1: 0, l2: 0.01 });
  });

  it('l1_l2 turns a missing factor off instead of the 0.01 tfjs slips in', () => {
    expect(normalizeRegularizer({ type: 'l1_l2', l1: 0.05 }, '/r')).toEqual({ type: 'l1_l2', l1: 0.05, l2: 0 });
    expect(normalizeRegularizer({ type: 'l1_l2', l2: 0.02 }, '/r')).toEqual({ type: 'l1_l2', l1: 0, l2: 0.02 });
  });

  it('refuses a factor that the type does not take', () => {
    expect(() => normalizeRegularizer({ type: 'l1', l2: 0.1 }, '/r')).toThrow(SpecError);
    expect(specError(() => normalizeRegularizer({ type: 'l2', l1: 0.1 }, '/x')).pointer).toBe('/x/l1');
  });
});
