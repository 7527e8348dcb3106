/** Hard limits on what one run may ask for (shape inference and the schema enforce them). */
export const LIMITS = {
  maxEpochs: 500,
  maxBatchSize: 8192,
  maxLayers: 64,
  /** Trainable + non-trainable parameters of the whole model. */
  maxParams: 50_000_000,
} as const;
