/** Regula's dataset layer: IDX parsing, the named datasets, loading and seeded sampling. No tfjs. */
export * from './types.js';
export * from './errors.js';
export { readIdxFile, readIdxHeader, parseIdx, parseIdxHeader, sha256File, sha256, isGzip, encodeIdx, encodeIdxGz } from './idx.js';
export type { IdxKind, IdxHeader, ReadIdxOptions } from './idx.js';
export * from './registry.js';
export { resolveDataPath } from './paths.js';
export { mulberry32, deriveSeed, stratifiedSample, stratifiedSplit, shuffleInPlace, type Rng } from './random.js';
export { loadDataset, readLabelsInfo, limitedTestCount, holdoutCount, toFloatImages } from './load.js';
