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

const poor = 'reported as "very poor" (no figure given)';

export const PRESETS: Record<PresetName, Preset> = {
  baseline: {
    name: 'baseline',
    description: 'No regularization.',
    layers: tutorialLayers(),
    tutorial: { testLoss: 0.4031164909011506, testAccuracy: 0.8728723526000977, note: 'reported' },
  },
  'l1-kernel-bias': {
    name: 'l1-kernel-bias',
    description: 'L1 (λ = 0.01) on every kernel and bias.',
    layers: tutorialLayers({ kernelRegularizer: l1, biasRegularizer: l1 }),
    tutorial: { testLoss: null, testAccuracy: null, note: poor },
  },
  'l1-activity': {
    name: 'l1-activity',
    description: 'L1 (λ = 0.01) on every Conv2D/Dense output.',
    layers: tutorialLayers({ activityRegularizer: l1 }),
    tutorial: { testLoss: null, testAccuracy: null, note: poor },
  },
  'l2-kernel-bias': {
    name: 'l2-kernel-bias',
    description: 'L2 (λ = 0.01) on every kernel and bias.',
    layers: tutorialLayers({ kernelRegularizer: l2, biasRegularizer: l2 }),
    tutorial: { testLoss: null, testAccuracy: null, note: 'reported as "a bit lower" than L2 activity (no figure given)' },
  },
  'l2-activity': {
    name: 'l2-activity',
    description: 'L2 (λ = 0.01) on every Conv2D/Dense output.',
    layers: tutorialLayers({ activityRegularizer: l2 }),
    tutorial: { testLoss: 0.37115383783553507, testAccuracy: 0.8901063799858093, note: 'reported' },
  },
  'l2-activity-0.1': {
    name: 'l2-activity-0.1',
    description: 'L2 (λ = 0.1) on every Conv2D/Dense output ("extended L2").',
    layers: tutorialLayers({ activityRegularizer: { type: 'l2', l2: 0.1 } }),
    tutorial: { testLoss: 0.5058084676620808, testAccuracy: 0.8836702108383179, note: 'reported' },
  },
  'elastic-net-kernel-bias': {
    name: 'elastic-net-kernel-bias',
    description: 'Elastic Net, l1 = l2 = 0.01, on every kernel and bias.',
    layers: tutorialLayers({ kernelRegularizer: en, biasRegularizer: en }),
    tutorial: { testLoss: null, testAccuracy: null, note: poor },
  },
  'elastic-net-activity': {
    name: 'elastic-net-activity',
    description: 'Elastic Net, l1 = l2 = 0.01, on every Conv2D/Dense output.',
    layers: tutorialLayers({ activityRegularizer: en }),
    tutorial: { testLoss: null, testAccuracy: null, note: poor },
  },
};
