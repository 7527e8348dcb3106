/** Response and parameter schemas of the HTTP API (request bodies come from src/run-spec/schema.ts). */
import { Type, type Static } from 'typebox';

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          pointer: Type.String({ description: 'RFC 6901 JSON pointer to the offending field of the request body.' }),
          detail: Type.String(),
        }),
      ),
    ),
  },
  { description: 'RFC 9457 problem details.' },
);

export const RunStatus = Type.Union(
  [Type.Literal('queued'), Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('cancelled')],
  { description: 'queued → running → succeeded | failed | cancelled' },
);

export const LossParts = Type.Object(
  {
    loss: Type.Number({ description: 'Keras-compatible total: dataLoss + kernelPenalty + biasPenalty + activityPenalty.' }),
    dataLoss: Type.Number({ description: 'Mean categorical crossentropy (probabilities clipped to [1e-7, 1-1e-7], as Keras).' }),
    kernelPenalty: Type.Number({ description: 'Σ over layers with a kernel regularizer of l1·Σ|W| + l2·ΣW².' }),
    biasPenalty: Type.Number({ description: 'Σ over layers with a bias regularizer of l1·Σ|b| + l2·Σb².' }),
    activityPenalty: Type.Number({
      description: 'Σ over layers with an activity regularizer of (l1·Σ|a| + l2·Σa²) / batch size (tf.keras semantics), averaged over batches.',
    }),
    accuracy: Type.Number({ description: 'Categorical accuracy (argmax of prediction = argmax of label).' }),
  },
  { description: 'Loss and its parts. Over an epoch: the batch-size weighted mean over its batches, as Keras reports it.' },
);

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** A resource's link (a path), with what it serves. */
export const Link = (description?: string) => Type.String(description === undefined ? {} : { description });

export const TestMetrics = Type.Object({ loss: Type.Number(), accuracy: Type.Number() });

const TensorStats = Type.Object({
  count: Type.Integer(),
  nearZero: Type.Number({ description: 'Fraction of weights with |w| < 1e-3.' }),
  l1: Type.Number({ description: 'Σ|w|' }),
  l2: Type.Number({ description: 'L2 norm, sqrt(Σw²)' }),
  maxAbs: Type.Number(),
});

export const LayerStats = Type.Object(
  {
    layer: Type.String(),
    type: Type.Union([Type.Literal('Conv2D'), Type.Literal('Dense')]),
    kernel: TensorStats,
    bias: Type.Union([TensorStats, Type.Null()]),
    activationMeanAbs: Type.Number({ description: 'Mean |output| of the layer on a fixed probe batch (up to 256 validation images), dropout off.' }),
  },
  { description: 'Weight statistics of one Conv2D or Dense layer.' },
);

export const RunView = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Nullable(Type.String()),
  status: RunStatus,
  dataset: Type.String(),
  paramCount: Type.Integer(),
  backend: Nullable(Type.String({ description: 'The tfjs backend that trains (or trained) the run.' })),
  backendNote: Nullable(Type.String({ description: 'Backends tried first and why they were skipped.' })),
  versions: Nullable(
    Type.Object(
      {
        regula: Type.String(),
        tfjs: Type.String(),
        backend: Type.String(),
        backendDetail: Nullable(Type.String({ description: 'The backend build, e.g. oneDNN version, threading runtime and CPU ISA.' })),
        node: Type.String(),
      },
      { description: 'What a rerun needs besides the spec (which holds the seed) and the backend: the versions the run trained with.' },
    ),
  ),
  error: Nullable(Type.String()),
  cancelRequested: Type.Boolean(),
  test: Nullable(TestMetrics),
  samplesPerSec: Nullable(Type.Number({ description: 'Training throughput of the last epoch.' })),
  priority: Type.Integer({ minimum: 1, maximum: 100, description: 'Queue priority, 1 (soonest) to 100.' }),
  weights: Type.Union([Type.Array(LayerStats), Type.Null()], { description: 'Weight statistics of the final model, per layer.' }),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  spec: Type.Unknown({ description: 'The normalized spec: every default applied.' }),
  links: Type.Object({
    self: Link(),
    events: Link('Server-Sent Events (GET).'),
    metrics: Link(),
    model: Link('tfjs model.json, once the run succeeded.'),
    weights: Link('The weights (binary), once the run succeeded.'),
    lossChart: Link('SVG; .png beside it.'),
    accuracyChart: Link('SVG; .png beside it.'),
    predict: Link('POST images here, once the run succeeded.'),
    cancel: Link('POST to cancel.'),
  }),
});
export type RunView = Static<typeof RunView>;

export const RunList = Type.Object({
  items: Type.Array(RunView),
  total: Type.Integer(),
  limit: Type.Integer(),
  offset: Type.Integer(),
});

export const EpochMetricView = Type.Object({
  epoch: Type.Integer({ minimum: 1 }),
  loss: Type.Number({ description: 'Keras-compatible training loss (penalties included).' }),
  accuracy: Type.Number(),
  valLoss: Nullable(Type.Number({ description: 'Keras-compatible validation loss (penalties included).' })),
  valAccuracy: Nullable(Type.Number()),
  durationMs: Type.Integer(),
  train: Type.Optional(LossParts),
  val: Type.Optional(Nullable(LossParts)),
  weights: Type.Optional(Type.Array(LayerStats, { description: 'Weight statistics per layer at the end of the epoch.' })),
});

export const MetricsView = Type.Object({
  runId: Type.String({ format: 'uuid' }),
  status: RunStatus,
  epochs: Type.Array(EpochMetricView),
  test: Nullable(Type.Object({ loss: Type.Number(), accuracy: Type.Number(), parts: Nullable(LossParts) })),
});

export const RunParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

export const ListQuery = Type.Object({
  status: Type.Optional(RunStatus),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  offset: Type.Integer({ minimum: 0, default: 0 }),
});

export const ModelView = Type.Object({
  format: Type.String(),
  modelTopology: Type.Unknown(),
  weightsManifest: Type.Array(Type.Object({ paths: Type.Array(Type.String()), weights: Type.Array(Type.Unknown()) })),
  sha256: Type.String(),
});
