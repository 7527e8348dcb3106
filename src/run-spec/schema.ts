/**
 * The language users speak: one TypeBox schema per concept. These schemas drive request
 * validation (Ajv), the TypeScript types (Static) and the OpenAPI document — one source.
 *
 * Layer and dataset unions are `oneOf` + `discriminator` (OpenAPI 3 style) so that a bad layer
 * gets an error about *its* class, not a list of every class it failed to be.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { LIMITS } from './limits.js';
import { DATASET_NAMES, type DatasetName } from './datasets.js';

export { DATASET_NAMES, type DatasetName };
import { PRESET_NAMES, type PresetName } from './presets.js';

/** A tagged union rendered as oneOf + discriminator; its static type is the union of the members. */
function TaggedUnion<T extends TSchema[]>(tag: string, members: [...T], options: Record<string, unknown> = {}) {
  return Type.Unsafe<Static<T[number]>>({
    ...options,
    type: 'object',
    oneOf: members,
    discriminator: { propertyName: tag },
    required: [tag],
  });
}

const Size2 = (description: string, max: number) =>
  Type.Union([Type.Integer({ minimum: 1, maximum: max }), Type.Array(Type.Integer({ minimum: 1, maximum: max }), { minItems: 2, maxItems: 2 })], {
    description,
  });

export const Activation = Type.Union(
  [
    Type.Literal('linear'),
    Type.Literal('relu'),
    Type.Literal('sigmoid'),
    Type.Literal('tanh'),
    Type.Literal('softmax'),
    Type.Literal('elu'),
    Type.Literal('selu'),
    Type.Literal('softplus'),
  ],
  { description: 'Keras activation name.' },
);
export type Activation = Static<typeof Activation>;

export const Regularizer = Type.Object(
  {
    type: Type.Union([Type.Literal('l1'), Type.Literal('l2'), Type.Literal('l1_l2')], {
      description:
        'Keras regularizer: l1 → l1·Σ|x|, l2 → l2·Σx², l1_l2 → l1·Σ|x| + l2·Σx² (Elastic Net). ' +
        'An activity penalty is divided by the batch size, as in tf.keras.',
    }),
    l1: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1000,
        description: 'L1 factor. Default 0.01 for type l1; 0 for l1_l2 (a missing factor is off, never a hidden 0.01).',
      }),
    ),
    l2: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1000,
        description: 'L2 factor. Default 0.01 for type l2; 0 for l1_l2.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type Regularizer = Static<typeof Regularizer>;

const regularizers = {
  kernelRegularizer: Type.Optional(Regularizer),
  biasRegularizer: Type.Optional(Regularizer),
  activityRegularizer: Type.Optional(Regularizer),
};

const Conv2DLayer = Type.Object(
  {
    type: Type.Literal('Conv2D'),
    filters: Type.Integer({ minimum: 1, maximum: 2048 }),
    kernelSize: Size2('Kernel height and width (one number for a square kernel).', 64),
    activation: Type.Optional(Activation),
    padding: Type.Optional(Type.Union([Type.Literal('valid'), Type.Literal('same')], { default: 'valid' })),
    strides: Type.Optional(Size2('Strides (default 1).', 64)),
    useBias: Type.Optional(Type.Boolean({ default: true })),
    ...regularizers,
  },
  { additionalProperties: false, title: 'Conv2D' },
);

const MaxPooling2DLayer = Type.Object(
  {
    type: Type.Literal('MaxPooling2D'),
    poolSize: Type.Optional(Size2('Pool height and width (default 2).', 64)),
    strides: Type.Optional(Size2('Strides (default: the pool size).', 64)),
    padding: Type.Optional(Type.Union([Type.Literal('valid'), Type.Literal('same')], { default: 'valid' })),
  },
  { additionalProperties: false, title: 'MaxPooling2D' },
);

const DropoutLayer = Type.Object(
  {
    type: Type.Literal('Dropout'),
    rate: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
  },
  { additionalProperties: false, title: 'Dropout' },
);

const FlattenLayer = Type.Object({ type: Type.Literal('Flatten') }, { additionalProperties: false, title: 'Flatten' });

const DenseLayer = Type.Object(
  {
    type: Type.Literal('Dense'),
    units: Type.Integer({ minimum: 1, maximum: 65536 }),
    activation: Type.Optional(Activation),
    useBias: Type.Optional(Type.Boolean({ default: true })),
    ...regularizers,
  },
  { additionalProperties: false, title: 'Dense' },
);

export const Layer = TaggedUnion('type', [Conv2DLayer, MaxPooling2DLayer, DropoutLayer, FlattenLayer, DenseLayer], {
  description: 'A layer, by its Keras class name with tfjs-style (camelCase) arguments.',
});
export type Layer = Static<typeof Layer>;

export const Optimizer = Type.Object(
  {
    type: Type.Union([Type.Literal('adam'), Type.Literal('sgd'), Type.Literal('rmsprop')], { default: 'adam' }),
    learningRate: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 10,
        description: 'Default: Keras defaults (adam 0.001, sgd 0.01, rmsprop 0.001).',
      }),
    ),
  },
  { additionalProperties: false },
);

export const Training = Type.Object(
  {
    epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.maxEpochs, default: 25 })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.maxBatchSize, default: 250 })),
    validationSplit: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 0.9,
        default: 0.2,
        description: 'Fraction of the training data held out for validation: the last part, before shuffling, as in Keras.',
      }),
    ),
    optimizer: Type.Optional(Optimizer),
    shuffle: Type.Optional(Type.Boolean({ default: true })),
    seed: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2 ** 31 - 1,
        description: 'Seed for weight initialisation, shuffling, dropout and sampling. Chosen and recorded when absent.',
      }),
    ),
    earlyStopping: Type.Optional(
      Type.Object(
        {
          monitor: Type.Optional(
            Type.Union([Type.Literal('val_loss'), Type.Literal('val_accuracy'), Type.Literal('loss'), Type.Literal('accuracy')], {
              default: 'val_loss',
              description: 'The epoch figure to watch (losses include the penalties, as in Keras). val_* need validationSplit > 0.',
            }),
          ),
          patience: Type.Optional(
            Type.Integer({
              minimum: 0,
              default: 0,
              description:
                'Epochs without improvement after which training stops (Keras: stops when the wait counter reaches patience, never after the first epoch).',
            }),
          ),
          minDelta: Type.Optional(
            Type.Number({
              minimum: 0,
              default: 0,
              description:
                'An improvement must beat the best value by more than this (min mode: current + minDelta < best; max mode: current - minDelta > best).',
            }),
          ),
          restoreBestWeights: Type.Optional(
            Type.Boolean({
              default: false,
              description:
                'When training stops early, put back the weights of the best epoch (the first monitored epoch if none improved); test metrics and the saved model use them. ' +
                'As in tf.keras 2.x, nothing is restored when all epochs run.',
            }),
          ),
          mode: Type.Optional(
            Type.Union([Type.Literal('auto'), Type.Literal('min'), Type.Literal('max')], {
              default: 'auto',
              description: 'Whether smaller (min) or larger (max) is better; auto: max for accuracy, min for loss.',
            }),
          ),
          baseline: Type.Optional(
            Type.Number({
              description:
                'Keras baseline: the wait counter only resets on epochs that also beat this value, so training stops after `patience` epochs that do not reach it.',
            }),
          ),
          startFromEpoch: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Warm-up: the first this many epochs are not monitored.' })),
        },
        {
          additionalProperties: false,
          description:
            'Stop training when the monitored figure stops improving: tf.keras 2.x EarlyStopping (2.12–2.15) semantics, checked at the end of every epoch.',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

const IdxFiles = Type.Object(
  {
    images: Type.String({ minLength: 1, maxLength: 512, description: 'IDX (optionally .gz) image file, relative to DATA_DIR.' }),
    labels: Type.String({ minLength: 1, maxLength: 512, description: 'IDX (optionally .gz) label file, relative to DATA_DIR.' }),
  },
  { additionalProperties: false },
);

const limit = Type.Optional(
  Type.Integer({
    minimum: 1,
    maximum: 10_000_000,
    description: 'Train on a seeded, stratified sample of at most this many training images (the test split shrinks in proportion).',
  }),
);

const NamedDataset = Type.Object(
  {
    name: Type.Unsafe<DatasetName>({
      type: 'string',
      enum: [...DATASET_NAMES],
      description:
        'An EMNIST split, MNIST or Fashion-MNIST, read from DATA_DIR/<name>/ with the official file names (`npm run data:fetch -- <name>`), ' +
        'or `emnist-sample`, built in: 3,760 + 940 real EMNIST characters that need no download.',
    }),
    limit,
  },
  { additionalProperties: false, title: 'NamedDataset' },
);

const IdxDataset = Type.Object(
  {
    name: Type.Literal('idx'),
    train: IdxFiles,
    test: Type.Optional(IdxFiles),
    testFraction: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 0.5, description: 'Holdout fraction when no test files are given (default 0.15).' }),
    ),
    transposed: Type.Optional(Type.Boolean({ description: 'Images are stored transposed, as in EMNIST (default true).' })),
    classNames: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: 1000,
        description: 'Names of the classes, by label index (predictions return them). Default: the indices.',
      }),
    ),
    limit,
  },
  { additionalProperties: false, title: 'IdxDataset' },
);

export const Dataset = TaggedUnion('name', [NamedDataset, IdxDataset]);
export type Dataset = Static<typeof Dataset>;

/** Queue priority when a request gives none: the middle, so a request can go either way. */
export const DEFAULT_PRIORITY = 50;

export const Priority = Type.Integer({
  minimum: 1,
  maximum: 100,
  description:
    `Queue priority, 1 (soonest) to 100; default ${DEFAULT_PRIORITY}. Waiting runs start in priority order, then submission order. ` +
    'It orders waiting runs only: a running run is never preempted.',
});

export const RunRequest = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    preset: Type.Optional(
      Type.Unsafe<PresetName>({
        type: 'string',
        enum: [...PRESET_NAMES],
        description: "One of the tutorial's configurations (GET /v1/presets) instead of `model`; training and dataset still override.",
      }),
    ),
    model: Type.Optional(
      Type.Object(
        {
          layers: Type.Array(Layer, { minItems: 1, maxItems: LIMITS.maxLayers }),
        },
        { additionalProperties: false, description: 'The layer stack. Required unless `preset` is given.' },
      ),
    ),
    training: Type.Optional(Training),
    dataset: Type.Optional(Dataset),
    priority: Type.Optional(Priority),
  },
  {
    additionalProperties: false,
    // What Swagger UI's "Try it out" sends (without an example it builds one from every field,
    // preset and model together, which is refused): the tutorial's CNN on the built-in sample.
    examples: [{ name: 'first run', preset: 'baseline', training: { epochs: 2 }, dataset: { name: 'emnist-sample', limit: 2000 } }],
  },
);
export type RunRequest = Static<typeof RunRequest>;
