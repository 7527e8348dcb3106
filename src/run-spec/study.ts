/**
 * Studies: one request, many runs. A study is a base run request plus either a regularizer grid,
 * an explicit list of variants, or the tutorial's eight presets; this module expands it into
 * labelled run requests (pure, no I/O).
 */
import { Type, type Static } from 'typebox';
import { SpecError } from './errors.js';
import { PRESET_NAMES } from './presets.js';
import { Dataset, type Layer, Priority, RunRequest, Training, type Regularizer } from './schema.js';

const Base = Type.Object(
  {
    preset: RunRequest.properties.preset,
    model: RunRequest.properties.model,
    training: Type.Optional(Training),
    dataset: Type.Optional(Dataset),
  },
  { additionalProperties: false, description: 'What every run of the study shares (a model or a run preset, training, dataset).' },
);

const Target = Type.Union([Type.Literal('kernel'), Type.Literal('bias'), Type.Literal('activity'), Type.Literal('kernel+bias')]);
type Target = Static<typeof Target>;

const Grid = Type.Object(
  {
    type: Type.Array(Type.Union([Type.Literal('l1'), Type.Literal('l2'), Type.Literal('l1_l2')]), { minItems: 1, maxItems: 3, uniqueItems: true }),
    target: Type.Array(Target, {
      minItems: 1,
      maxItems: 4,
      uniqueItems: true,
      description: 'Which slot of every Conv2D and Dense layer gets the regularizer.',
    }),
    lambda: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 1000 }), {
      minItems: 1,
      maxItems: 10,
      uniqueItems: true,
      description: 'Factors to try; l1_l2 uses λ for both l1 and l2.',
    }),
    includeBaseline: Type.Optional(Type.Boolean({ default: true, description: 'Also run the base model without regularizers (the reference for deltas).' })),
  },
  { additionalProperties: false, description: 'Every combination type × target × λ, applied to all Conv2D and Dense layers of the base model.' },
);

const Variant = Type.Object(
  {
    label: Type.String({ minLength: 1, maxLength: 100 }),
    preset: RunRequest.properties.preset,
    model: RunRequest.properties.model,
    training: Type.Optional(Training),
    dataset: Type.Optional(Dataset),
  },
  { additionalProperties: false, description: 'One run: its fields replace the base ones (training fields are merged).' },
);

export const StudyRequest = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    preset: Type.Optional(
      Type.Unsafe<'tutorial'>({ type: 'string', enum: ['tutorial'], description: "The tutorial's eight configurations (GET /v1/presets)." }),
    ),
    base: Type.Optional(Base),
    grid: Type.Optional(Grid),
    variants: Type.Optional(Type.Array(Variant, { minItems: 1, maxItems: 32 })),
    training: Type.Optional(Training),
    dataset: Type.Optional(Dataset),
    priority: Type.Optional(Priority),
    seeds: Type.Optional(
      Type.Array(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 }), {
        minItems: 1,
        maxItems: 20,
        uniqueItems: true,
        description:
          'Run every variant once per seed (training.seed; it also seeds the data sampling and the holdout). The comparison then reports mean, sd, min and max per variant.',
        examples: [[1, 2, 3]],
      }),
    ),
    repeats: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 20,
        description: 'Shorthand for `seeds`: seeds s, s+1, …, s+repeats−1, where s is training.seed (default 1).',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Exactly one of `preset`, `grid` or `variants`. `training` and `dataset` at the top level are shorthands for `base.training` / `base.dataset`. ' +
      'At most one of `seeds` or `repeats`: every variant then runs once per seed.',
    // What Swagger UI's "Try it out" sends: the tutorial's eight configurations on the built-in sample.
    examples: [{ name: 'tutorial on the sample', preset: 'tutorial', training: { epochs: 2 }, dataset: { name: 'emnist-sample', limit: 2000 } }],
  },
);
export type StudyRequest = Static<typeof StudyRequest>;

export interface StudyVariant {
  label: string;
  /** The seed this run repeats the variant with, when the study has `seeds` or `repeats`. */
  seed: number | null;
  request: RunRequest;
  /** Pointer prefix in the study request, for errors about this variant. */
  pointer: string;
}

export const MAX_STUDY_RUNS = 64;

function withRegularizer(layers: Layer[], type: Regularizer['type'], target: Target, lambda: number): Layer[] {
  const reg: Regularizer = type === 'l1' ? { type, l1: lambda } : type === 'l2' ? { type, l2: lambda } : { type, l1: lambda, l2: lambda };
  const slots: ('kernelRegularizer' | 'biasRegularizer' | 'activityRegularizer')[] =
    target === 'kernel+bias' ? ['kernelRegularizer', 'biasRegularizer'] : [`${target}Regularizer`];
  return layers.map((l) => {
    if (l.type !== 'Conv2D' && l.type !== 'Dense') return l;
    const copy: Layer = stripRegs(l);
    return { ...copy, ...Object.fromEntries(slots.map((s) => [s, reg])) };
  });
}

const TYPE_LABEL = { l1: 'L1', l2: 'L2', l1_l2: 'Elastic Net' } as const;

/** Expands a study request into labelled run requests. Throws SpecError naming the field at fault. */
export function expandStudy(req: StudyRequest): StudyVariant[] {
  const modes = (['preset', 'grid', 'variants'] as const).filter((k) => req[k] !== undefined);
  if (modes.length !== 1) {
    throw new SpecError(modes.length ? `/${modes[1]}` : '/preset', 'give exactly one of preset, grid or variants');
  }
  const base = req.base ?? {};
  const training = { ...base.training, ...req.training };
  const dataset = req.dataset ?? base.dataset;
  const shared = {
    ...(Object.keys(training).length ? { training } : {}),
    ...(dataset ? { dataset } : {}),
  };
  const name = (label: string) => (req.name ? `${req.name}: ${label}` : label);
  let variants: StudyVariant[];

  if (req.preset === 'tutorial') {
    if (base.model || base.preset) throw new SpecError('/base', 'the tutorial study defines the models; give only training and dataset');
    variants = PRESET_NAMES.map((p) => ({ label: p, seed: null, pointer: '', request: { name: name(p), preset: p, ...shared } }));
  } else if (req.grid) {
    const baseLayers = base.model?.layers;
    if (!baseLayers) throw new SpecError('/base/model', 'a grid study needs base.model (the layers to regularize)');
    const g = req.grid;
    variants = [];
    if (g.includeBaseline ?? true)
      variants.push({
        label: 'baseline',
        seed: null,
        pointer: '/base',
        request: { name: name('baseline'), model: { layers: baseLayers.map(stripRegs) }, ...shared },
      });
    for (const type of g.type)
      for (const target of g.target)
        for (const lambda of g.lambda) {
          const label = `${TYPE_LABEL[type]} ${target} λ=${lambda}`;
          variants.push({
            label,
            seed: null,
            pointer: '/grid',
            request: { name: name(label), model: { layers: withRegularizer(baseLayers, type, target, lambda) }, ...shared },
          });
        }
  } else {
    variants = (req.variants ?? []).map((v, i) => {
      const vTraining = { ...training, ...v.training };
      const layersSource =
        v.model || v.preset
          ? { ...(v.model ? { model: v.model } : {}), ...(v.preset ? { preset: v.preset } : {}) }
          : { ...(base.model ? { model: base.model } : {}), ...(base.preset ? { preset: base.preset } : {}) };
      return {
        label: v.label,
        seed: null,
        pointer: `/variants/${i}`,
        request: {
          name: name(v.label),
          ...layersSource,
          ...(Object.keys(vTraining).length ? { training: vTraining } : {}),
          ...((v.dataset ?? dataset) ? { dataset: v.dataset ?? dataset } : {}),
        },
      };
    });
    const labels = new Set<string>();
    variants.forEach((v) => {
      if (labels.has(v.label)) throw new SpecError(`${v.pointer}/label`, `the label "${v.label}" is used twice`);
      labels.add(v.label);
    });
  }
  const seeds = studySeeds(req, training.seed);
  const runs = seeds === null ? variants : variants.flatMap((v) => seeds.map((seed) => withSeed(v, seed)));
  if (runs.length > MAX_STUDY_RUNS) {
    const field = seeds === null ? (req.grid ? '/grid' : req.variants ? '/variants' : '/preset') : req.seeds ? '/seeds' : '/repeats';
    throw new SpecError(field, `the study expands to ${runs.length} runs; the limit is ${MAX_STUDY_RUNS}`);
  }
  return runs;
}

/** The seeds every variant runs with, or null for one run per variant with its own seed. */
function studySeeds(req: StudyRequest, baseSeed: number | undefined): number[] | null {
  if (req.seeds !== undefined && req.repeats !== undefined) throw new SpecError('/repeats', 'give at most one of seeds or repeats');
  if (req.seeds) return req.seeds;
  if (req.repeats !== undefined) {
    const first = baseSeed ?? 1;
    return Array.from({ length: req.repeats }, (_, i) => first + i);
  }
  return null;
}

function withSeed(v: StudyVariant, seed: number): StudyVariant {
  const r = v.request;
  return { ...v, seed, request: { ...r, name: `${r.name ?? v.label} (seed ${seed})`, training: { ...r.training, seed } } };
}

function stripRegs(l: Layer): Layer {
  if (l.type !== 'Conv2D' && l.type !== 'Dense') return l;
  const { kernelRegularizer: _k, biasRegularizer: _b, activityRegularizer: _a, ...rest } = l;
  return rest as Layer;
}
