/** Regula trains in a worker thread: the backend must load and train there too. */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { nativeAvailable } from './helpers.js';

describe.skipIf(!nativeAvailable)('worker thread', () => {
  it('registers and trains inside a worker_threads Worker', async () => {
    const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url));
    const msg = await new Promise<{ backend?: string; loss?: number[]; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(msg.error).toBeUndefined();
    expect(msg.backend).toBe('onednn');
    expect(msg.loss?.length).toBe(2);
    expect(msg.loss?.every((l) => Number.isFinite(l))).toBe(true);
  });
});
