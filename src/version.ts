/** Regula's own version (package.json), for what a run records about how it was trained. */
import { readFileSync } from 'node:fs';

// src/version.ts and dist/version.js both sit one level below package.json.
export const REGULA_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
