/** The trained model as a stored artifact: what predict.ts loads back. */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { ModelArtifact, WeightSpec } from './types.js';

/** Serialise the inference model (probabilities out) the way tfjs `model.save()` does, weights in one buffer. */
export async function exportModel(model: tf.LayersModel): Promise<ModelArtifact> {
  let artifact: ModelArtifact | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const parts = a.weightData === undefined ? [] : Array.isArray(a.weightData) ? a.weightData : [a.weightData];
      const size = parts.reduce((s, b) => s + b.byteLength, 0);
      const weightData = new Uint8Array(size);
      let off = 0;
      for (const b of parts) {
        weightData.set(new Uint8Array(b), off);
        off += b.byteLength;
      }
      artifact = {
        format: 'tfjs-layers-model',
        modelTopology: a.modelTopology as object,
        weightSpecs: (a.weightSpecs ?? []).map((w): WeightSpec => ({ name: w.name, shape: [...w.shape], dtype: w.dtype })),
        weightData,
        sha256: createHash('sha256').update(weightData).digest('hex'),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifact) throw new Error('model.save() produced no artifacts');
  return artifact;
}
