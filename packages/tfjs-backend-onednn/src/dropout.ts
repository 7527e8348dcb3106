/**
 * Fast, bit-identical tf.dropout for the onednn backend.
 *
 * tfjs' dropout draws its noise with `randomUniform`, which is plain JS (not a
 * kernel a backend can replace) and costs ~15 ns per element: 25-60 ms per
 * training step of the tutorial CNN, more than all its convolutions. This
 * module swaps `dropout` on tfjs-core's CommonJS exports (which tfjs-layers
 * reads on every call) for a version that computes the same multiplier —
 * floor(u + keepProb) / keepProb with u drawn from the same seeded Alea
 * generator, rounded to float32 at the same steps — natively, then multiplies
 * exactly as the original. Other backends, noise shapes and non-float32
 * inputs go to the original function.
 */
import * as tfc from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native.js';
import { allocF32 } from './backend.js';
import { CorePatch } from './core-patch.js';

type DropoutFn = (x: tfc.Tensor | tfc.TensorLike, rate: number, noiseShape?: number[], seed?: number | string) => tfc.Tensor;

/** seedrandom's Mash hash (alea.js), verbatim semantics. */
function mash(): (data: string) => number {
  let n = 0xefc8249d;
  return (data: string) => {
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return (n >>> 0) * 2.3283064365386963e-10;
  };
}

/** The initial [c, s0, s1, s2] state of seedrandom.alea(seed). */
export function aleaState(seed: string): Float64Array {
  const m = mash();
  let s0 = m(' ');
  let s1 = m(' ');
  let s2 = m(' ');
  s0 -= m(seed);
  if (s0 < 0) s0 += 1;
  s1 -= m(seed);
  if (s1 < 0) s1 += 1;
  s2 -= m(seed);
  if (s2 < 0) s2 += 1;
  return Float64Array.of(1, s0, s1, s2);
}

/** tfjs' UniformRandom seeding: a missing seed is Math.random(); numbers are stringified. */
export function seedString(seed: number | string | undefined): string {
  return String(seed ?? Math.random());
}

// Jumping ahead in Alea. Alea is a lag-3 multiply-with-carry generator
// (x_n = (a x_{n-3} + c_{n-1}) mod 2^32, c_n = the high part, a = 2091639),
// so Z = x0 + x1 b + x2 b^2 + c b^3 (b = 2^32, x0 the oldest) follows the
// congruential recurrence Z_{n+1} = b^-1 Z_n (mod a b^3 - 1): the state j
// draws ahead is b^-j Z mod M. That lets long masks be generated in parallel
// segments that continue the one stream exactly.
const A = 2091639n;
const B = 1n << 32n;
const M = A * B ** 3n - 1n;

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return r;
}

/** b^-1 mod M: b * B_INV = 1 (mod M), from the extended Euclidean algorithm. */
const B_INV = (() => {
  let [r0, r1] = [B % M, M];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % M) + M) % M;
})();

const TWO32 = 2 ** 32;

/**
 * Start states [c, s0, s1, s2] for each offset (draws ahead of `state`), or
 * null for the degenerate state outside the congruence (never produced by
 * seeding).
 */
export function aleaStatesAt(state: Float64Array, offsets: readonly number[]): Float64Array | null {
  const c = BigInt(state[0]!);
  const z = BigInt(state[1]! * TWO32) + BigInt(state[2]! * TWO32) * B + BigInt(state[3]! * TWO32) * B ** 2n + c * B ** 3n;
  if (z >= M) return null;
  const out = new Float64Array(4 * offsets.length);
  offsets.forEach((j, i) => {
    const zj = (modPow(B_INV, BigInt(j), M) * z) % M;
    out[4 * i] = Number(zj / B ** 3n);
    out[4 * i + 1] = Number(zj % B) / TWO32;
    out[4 * i + 2] = Number((zj / B) % B) / TWO32;
    out[4 * i + 3] = Number((zj / B ** 2n) % B) / TWO32;
  });
  return out;
}

/** Masks at least this long are generated in parallel segments. */
const PARALLEL_MASK = 1 << 18;

function fillDropoutMask(native: NativeAddon, mask: Float32Array, state: Float64Array, keep: number): void {
  const parts = mask.length >= PARALLEL_MASK ? native.getThreads() : 1;
  if (parts > 1) {
    const offsets = Array.from({ length: parts + 1 }, (_, t) => Math.floor((mask.length * t) / parts));
    const states = aleaStatesAt(state, offsets.slice(0, parts));
    if (states) {
      native.dropoutMaskSegments(mask, states, Int32Array.from(offsets), keep);
      return;
    }
  }
  native.dropoutMask(mask, state, keep);
}

const patch = new CorePatch<DropoutFn>((core) => core, 'dropout');

/**
 * Installs the fast path for `backendName`. Returns false when tfjs-core's
 * CommonJS exports cannot be patched (the original dropout then stays).
 */
export function installFastDropout(native: NativeAddon, backendName: string): boolean {
  return patch.install((base) => (x, rate, noiseShape, seed) => {
    if (!(x instanceof tfc.Tensor) || x.dtype !== 'float32' || noiseShape != null || !(rate > 0 && rate < 1) || tfc.getBackend() !== backendName) {
      return base(x, rate, noiseShape, seed);
    }
    const mask = allocF32(x.size);
    fillDropoutMask(native, mask, aleaState(seedString(seed)), Math.fround(1 - rate));
    return tfc.tidy(() => tfc.mul(x, tfc.tensor(mask, x.shape, 'float32')));
  });
}

/** Restores tfjs' own dropout (tests use this to compare against it). */
export function uninstallFastDropout(): void {
  patch.uninstall();
}
