/**
 * The tutorial's eight configurations, by name. Each is the tutorial's CNN with regularizers on
 * all four weight layers (both Conv2D and both Dense), as in its Keras code.
 */
import type { Layer, Regularizer } from './schema.js';

export const PRESET_NAMES = [
  'baseline',
  'l1-kernel-bias',
  'l1-activity',
  'l2-kernel-bias',
  'l2-activity',
  'l2-activity-0.1',
  'elastic-net-kernel-bias',
  'elastic-net-activity',
] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface Preset {
  name: PresetName;
  description: string;
  layers: Layer[];
  /** What the tutorial reports for this configuration (25 epochs on EMNIST Balanced); null where it gives no figure. */
  tutorial: { testLoss: number | null; testAccuracy: number | null; note: string };
}

type Slots = Pick<Extract<Layer, { type: 'Dense' }>, 'kernelRegularizer' | 'biasRegularizer' | 'activityRegularizer'>;

/** The tutorial's CNN; `slots` go on each Conv2D and Dense layer. */
export function tutorialLayers(slots: Slots = {}): Layer[] {
  return [
    { type: 'Conv2D', filters: 32, kernelSize: [3, 3], activation: 'relu', ...slots },
    { type: 'MaxPooling2D', poolSize: [2, 2] },
    { type: 'Dropout', rate: 0.25 },
    { type: 'Conv2D', filters: 64, kernelSize: [3, 3], activation: 'relu', ...slots },
    { type: 'MaxPooling2D', poolSize: [2, 2] },
    { type: 'Dropout', rate: 0.25 },
    { type: 'Flatten' },
    { type: 'Dense', units: 256, activation: 'relu', ...slots },
    { type: 'Dense', units: 47, activation: 'softmax', ...slots },
  ];
}

const l1: Regularizer = { type: 'l1', l1: 0.01 };
const l2: Regularizer = { type: 'l2', l2: 0.01 };
const en: Regularizer = { type: 'l1_l2', l1: 0.01, l2: 0.01 };

const poor = unreported('reported as "very poor" (no figure given)');

function reported(testLoss: number, testAccuracy: number): Preset['tutorial'] {
  return { testLoss, testAccuracy, note: 'reported' };
}

function unreported(note: string): Preset['tutorial'] {
  return { testLoss: null, testAccuracy: null, note };
}

/** Per preset: its description, the regularizers on every Conv2D and Dense layer, and the tutorial's figures. */
const TABLE: Record<PresetName, [description: string, slots: Slots, tutorial: Preset['tutorial']]> = {
  baseline: ['No regularization.', {}, reported(0.4031164909011506, 0.8728723526000977)],
  'l1-kernel-bias': ['L1 (λ = 0.01) on every kernel and bias.', { kernelRegularizer: l1, biasRegularizer: l1 }, poor],
  'l1-activity': ['L1 (λ = 0.01) on every Conv2D/Dense output.', { activityRegularizer: l1 }, poor],
  'l2-kernel-bias': [
    'L2 (λ = 0.01) on every kernel and bias.',
    { kernelRegularizer: l2, biasRegularizer: l2 },
    unreported('reported as "a bit lower" than L2 activity (no figure given)'),
  ],
  'l2-activity': ['L2 (λ = 0.01) on every Conv2D/Dense output.', { activityRegularizer: l2 }, reported(0.37115383783553507, 0.8901063799858093)],
  'l2-activity-0.1': [
    'L2 (λ = 0.1) on every Conv2D/Dense output ("extended L2").',
    { activityRegularizer: { type: 'l2', l2: 0.1 } },
    reported(0.5058084676620808, 0.8836702108383179),
  ],
  'elastic-net-kernel-bias': ['Elastic Net, l1 = l2 = 0.01, on every kernel and bias.', { kernelRegularizer: en, biasRegularizer: en }, poor],
  'elastic-net-activity': ['Elastic Net, l1 = l2 = 0.01, on every Conv2D/Dense output.', { activityRegularizer: en }, poor],
};

export const PRESETS = Object.fromEntries(
  PRESET_NAMES.map((name) => {
    const [description, slots, tutorial] = TABLE[name];
    return [name, { name, description, layers: tutorialLayers(slots), tutorial }];
  }),
) as Record<PresetName, Preset>;
