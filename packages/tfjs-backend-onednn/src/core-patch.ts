/**
 * One function swapped on tfjs-core's CommonJS exports (which tfjs-layers reads on every call), e.g.
 * `dropout` on the module or `conv2d` on its mutable `fused` namespace, and tfjs' own put back.
 */
import { createRequire } from 'node:module';
import * as tfc from '@tensorflow/tfjs-core';

type Core = Record<string, unknown> & { getBackend: () => string };

function requireCore(): Core {
  const require = createRequire(import.meta.url);
  return require('@tensorflow/tfjs-core') as Core;
}

export class CorePatch<F> {
  private original: F | undefined;

  /** `holder` picks the object that holds the function (the exports themselves, or a namespace of them). */
  constructor(
    private readonly holder: (core: Core) => Record<string, unknown>,
    private readonly key: string,
  ) {}

  /**
   * Replaces the function by `make(original)`, after `beforeSwap`; false when tfjs-core's exports
   * cannot be patched (the original then stays). Idempotent.
   */
  install(make: (base: F) => F, beforeSwap?: () => void): boolean {
    const core = requireCore();
    // Only patch the very tfjs-core instance this package (and tfjs-layers) uses.
    if (core.getBackend !== tfc.getBackend) return false;
    if (this.original) return true;
    const target = this.holder(core);
    const descriptor = Object.getOwnPropertyDescriptor(target, this.key);
    if (!descriptor?.writable || Object.isFrozen(target)) return false;
    beforeSwap?.();
    const base = target[this.key] as F;
    target[this.key] = make(base);
    this.original = base;
    return true;
  }

  /** Restores tfjs' own function. */
  uninstall(): void {
    if (!this.original) return;
    this.holder(requireCore())[this.key] = this.original;
    this.original = undefined;
  }
}
