import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { backendName, initBackend } from '../../src/engine/backends/index.js';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

// In this repository's CI/dev environment the native bindings are not
// installable; the expectations below adapt if they ever are.
const hasNodeGpu = installed('@tensorflow/tfjs-node-gpu');
const hasNode = installed('@tensorflow/tfjs-node');

describe('initBackend', () => {
  it.skipIf(hasNodeGpu || hasNode)('auto falls back from tfjs-node-gpu and tfjs-node to onednn (or, without libdnnl, to wasm)', async () => {
    const messages: string[] = [];
    const info = await initBackend('auto', (m) => messages.push(m));
    expect(info.requested).toBe('auto');
    expect(tf.getBackend()).toBe(info.name);
    expect(backendName()).toBe(info.name);
    expect(info.fallbacks.slice(0, 2).map((f) => f.backend)).toEqual(['tensorflow-gpu', 'tensorflow']);
    expect(info.fallbacks[0]?.reason).toContain('@tensorflow/tfjs-node-gpu');
    expect(info.fallbacks[1]?.reason).toContain('@tensorflow/tfjs-node');
    expect(info.fallbacks[1]?.reason).not.toContain('tfjs-node-gpu');
    for (const f of info.fallbacks) expect(f.reason.length).toBeGreaterThan(30); // carries the import error
    if (process.env.ONEDNN_REQUIRED === '1') expect(info.name).toBe('onednn');
    if (info.name === 'onednn') {
      expect(info.fallbacks).toHaveLength(2);
    } else {
      expect(info.name).toBe('wasm');
      expect(info.fallbacks.map((f) => f.backend)).toEqual(['tensorflow-gpu', 'tensorflow', 'onednn']);
      expect(info.fallbacks[2]?.reason).toMatch(/onednn|libdnnl/);
    }
    expect(messages.some((m) => m.includes(info.name))).toBe(true);
  });

  it('wasm gets the training kernels and can take a conv gradient', async () => {
    const info = await initBackend('wasm');
    expect(info).toEqual({ name: 'wasm', requested: 'wasm', fallbacks: [] });
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')).toBeDefined();
    const x = tf.ones([1, 5, 5, 1]);
    const f = tf.ones([3, 3, 1, 2]);
    const df = tf.grad((w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid').sum())(f);
    expect(Array.from(await df.data())).toEqual(new Array(18).fill(9));
    tf.dispose([x, f, df]);
  });

  it('cpu works', async () => {
    const info = await initBackend('cpu');
    expect(info).toEqual({ name: 'cpu', requested: 'cpu', fallbacks: [] });
    expect(backendName()).toBe('cpu');
  });

  it.skipIf(hasNode)('an unavailable explicit choice throws a clear error', async () => {
    await initBackend('cpu');
    await expect(initBackend('tensorflow')).rejects.toThrow(/Backend 'tensorflow' is not available: @tensorflow\/tfjs-node could not be loaded/);
    expect(tf.getBackend()).toBe('cpu'); // unchanged
  });

  it.skipIf(hasNodeGpu)('tensorflow-gpu unavailable throws', async () => {
    await expect(initBackend('tensorflow-gpu')).rejects.toThrow(/tfjs-node-gpu/);
  });
});
