/**
 * The backend preferences TFJS_BACKEND accepts. Its own module, without tfjs, so that config.ts
 * validates against the same list without loading the engine.
 */
export const BACKEND_PREFERENCES = ['auto', 'tensorflow-gpu', 'tensorflow', 'onednn', 'wasm', 'cpu'] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];
