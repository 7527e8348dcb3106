/** The start-up line `npm start` prints once Regula can be used. */
import { describe, expect, it } from 'vitest';
import { readyLine } from '../../src/ready.js';

describe('readyLine', () => {
  it('names the URL, the docs and the training backend', () => {
    expect(readyLine('all', { host: '0.0.0.0', port: 3000 }, 'onednn')).toBe('Regula ready at http://localhost:3000/ (docs at /docs) · backend onednn');
    expect(readyLine('api', { host: '127.0.0.1', port: 8080 }, null)).toBe('Regula ready at http://127.0.0.1:8080/ (docs at /docs)');
    expect(readyLine('api', { host: '::1', port: 3000 }, null)).toBe('Regula ready at http://[::1]:3000/ (docs at /docs)');
    expect(readyLine('worker', { host: '0.0.0.0', port: 3000 }, 'wasm')).toBe('Regula worker ready · backend wasm');
  });
});
