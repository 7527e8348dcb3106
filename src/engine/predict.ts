/**
 * Inference with stored models: loads a tfjs layers model from its artifact (cached by weight
 * hash, least recently used first out) and returns class probabilities.
 */
import * as tf from '@tensorflow/tfjs';

export interface StoredModel {
  modelTopology: unknown;
  weightSpecs: unknown;
  weightData: Uint8Array;
  sha256: string;
}

export class Predictor {
  private readonly cache = new Map<string, Promise<tf.LayersModel>>();

  constructor(
    private readonly ready: () => Promise<void>,
    private readonly capacity = 8,
  ) {}

  private load(m: StoredModel): Promise<tf.LayersModel> {
    const hit = this.cache.get(m.sha256);
    if (hit) {
      this.cache.delete(m.sha256);
      this.cache.set(m.sha256, hit);
      return hit;
    }
    const weights = m.weightData.slice().buffer;
    const loading = this.ready().then(() =>
      tf.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: m.modelTopology as tf.io.ModelJSON['modelTopology'],
          weightSpecs: m.weightSpecs as tf.io.WeightsManifestEntry[],
          weightData: weights,
        }),
      ),
    );
    loading.catch(() => this.cache.delete(m.sha256));
    this.cache.set(m.sha256, loading);
    while (this.cache.size > this.capacity) {
      const oldest = this.cache.keys().next().value as string;
      const evicted = this.cache.get(oldest);
      this.cache.delete(oldest);
      void evicted?.then((model) => model.dispose());
    }
    return loading;
  }

  /** `count` upright 28×28 images in [0, 1], row-major → count × classes probabilities. */
  async predict(m: StoredModel, images: Float32Array, count: number): Promise<Float32Array[]> {
    const model = await this.load(m);
    const probs = tf.tidy(() => model.predict(tf.tensor4d(images, [count, 28, 28, 1])) as tf.Tensor2D);
    const flat = await probs.data();
    probs.dispose();
    const classes = probs.shape[1];
    return Array.from({ length: count }, (_, i) => Float32Array.from(flat.subarray(i * classes, (i + 1) * classes)));
  }

  dispose(): void {
    for (const p of this.cache.values()) void p.then((model) => model.dispose());
    this.cache.clear();
  }
}
