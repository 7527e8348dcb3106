/** What the load benchmarks (load-http.ts, load-sse.ts) submit: a small CNN on the emnist-mini fixture. */
import { fixtureDataset } from '../../test/support/client.js';

const layers = [
  { type: 'Conv2D', filters: 8, kernelSize: 3, activation: 'relu', kernelRegularizer: { type: 'l2', l2: 0.001 } },
  { type: 'MaxPooling2D', poolSize: 2 },
  { type: 'Flatten' },
  { type: 'Dense', units: 47, activation: 'softmax' },
];

export function loadSpec(name: string, training: { epochs: number; batchSize: number; validationSplit?: number; seed?: number }) {
  return { name, model: { layers }, training, dataset: fixtureDataset };
}
