/** Hard limits on what one run may ask for (shape inference and the schema enforce them). */
export const LIMITS = {
  maxEpochs: 500,
  maxBatchSize: 8192,
  maxLayers: 64,
  /** Trainable + non-trainable parameters of the whole model. */
  maxParams: 50_000_000,
  /**
   * Estimated peak memory of one run (spec/shapes.ts estimateMemory), checked at validation. Under
   * the 4 GiB a wasm32 engine can address at all, leaving room for the dataset; the worker's
   * training threads also get a JS heap ceiling (TRAINING_HEAP_LIMIT_MB).
   */
  maxRunMemoryBytes: 3 * 2 ** 30,
  /**
   * The estimate's coefficients, in float32 copies, measured (faults/fault-memory.ts, peak RSS of
   * `node dist/main.js all` on wasm over a tiny spec's; faults/results/fault-memory.md): a run with
   * Adam needed 146 B (3.3 M parameters) and 131 B (13.3 M) per parameter, i.e. ~37 float32 copies —
   * weights, gradients, the update's temporaries, the weight statistics, the checkpoint packed in
   * the thread and received by the main thread, the wasm allocator's slack and garbage not yet
   * collected. Split as 13 per parameter plus 12 per optimizer slot variable (Adam has 2), so the
   * estimate covers both measurements. Per activation: the forward output, its gradient, a temporary.
   */
  memory: { copiesPerParam: 13, copiesPerSlot: 12, copiesPerActivation: 3 },
} as const;
