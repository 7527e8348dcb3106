/** A harness for one describe block's tests, started before them and closed after. */
import { afterAll, beforeAll } from 'vitest';
import { startHarness, type Harness } from './harness.js';

/**
 * The harness `startHarness(opts)` gives, filled in before the block's first test (so it is read in
 * tests and hooks, not while the block is being declared) and closed after its last.
 */
export function suiteHarness(opts?: Parameters<typeof startHarness>[0], timeoutMs?: number): Harness {
  const h = {} as Harness;
  beforeAll(async () => {
    Object.assign(h, await startHarness(opts));
  }, timeoutMs);
  afterAll(async () => {
    await h.close?.();
  }, timeoutMs);
  return h;
}
