/** The datasets Regula knows by name (files under DATA_DIR/<name>/, see src/engine/data/registry.ts). */
export const DATASET_NAMES = [
  'emnist-balanced',
  'emnist-sample',
  'emnist-byclass',
  'emnist-bymerge',
  'emnist-digits',
  'emnist-letters',
  'emnist-mnist',
  'mnist',
  'fashion-mnist',
] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];
