/**
 * Limits from memory, not only the parameter count (issue 12, item 2): validation estimates a
 * run's peak memory from its parameters, optimizer slots and activations × batch size, and
 * refuses what is over LIMITS.maxRunMemoryBytes with the field to change. The coefficients are
 * calibrated by faults/fault-memory.ts (faults/results/fault-memory.md).
 */
import { describe, expect, it } from 'vitest';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import type { SpecError } from '../../src/run-spec/errors.js';
import { estimateMemory } from '../../src/run-spec/shapes.js';
import { LIMITS } from '../../src/run-spec/limits.js';
import { PRESETS } from '../../src/run-spec/presets.js';
import type { RunRequest } from '../../src/run-spec/schema.js';
import { specError } from '../support/spec-error.js';

const ctx = { numClasses: 47, seed: 1 };
const denseNet = (units: number, extra: Record<string, unknown> = {}) =>
  ({
    model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units }, { type: 'Dense', units: 47, activation: 'softmax' }] },
    ...extra,
  }) as unknown as RunRequest;

function refusal(req: RunRequest): SpecError {
  return specError(() => normalizeSpec(req, ctx));
}

describe('memory limit at validation', () => {
  it("refuses the issue's 58,000-unit Dense layer (48 M parameters, under the parameter limit) naming /model/layers", () => {
    const e = refusal(denseNet(58_000));
    expect(e.pointer).toBe('/model/layers');
    expect(e.message).toMatch(
      /^training this model needs about \d+ MB \(\d+ MB for 48\d{6} parameters with the adam optimizer's state and checkpoints, \d+ MB for activations at batch size 250\); the limit is 3072 MB: use fewer or smaller layers$/,
    );
  });

  it('names /training/batchSize when the activations of a big batch are what does not fit', () => {
    const req = {
      model: {
        layers: [
          { type: 'Conv2D', filters: 512, kernelSize: 3, padding: 'same', activation: 'relu' },
          { type: 'Flatten' },
          { type: 'Dense', units: 47, activation: 'softmax' },
        ],
      },
      training: { batchSize: 4096 },
    } as unknown as RunRequest;
    const e = refusal(req);
    expect(e.pointer).toBe('/training/batchSize');
    expect(e.message).toMatch(/use a smaller batch size$/);
    // The same model at the tutorial's batch size fits.
    expect(() => normalizeSpec({ ...req, training: { batchSize: 32 } } as unknown as RunRequest, ctx)).not.toThrow();
  });

  it('counts optimizer slots: the same model is cheaper with SGD than with Adam', () => {
    const adam = normalizeSpec(denseNet(4000), ctx);
    const sgd = normalizeSpec(denseNet(4000, { training: { optimizer: { type: 'sgd' } } }), ctx);
    expect(estimateMemory(sgd.spec, sgd.shapes).parameterBytes).toBeLessThan(estimateMemory(adam.spec, adam.shapes).parameterBytes);
  });

  it("accepts the tutorial's presets with room to spare", () => {
    for (const name of Object.keys(PRESETS)) {
      const { spec, shapes } = normalizeSpec({ preset: name } as unknown as RunRequest, ctx);
      expect(estimateMemory(spec, shapes).totalBytes, name).toBeLessThan(LIMITS.maxRunMemoryBytes / 4);
    }
  });
});
