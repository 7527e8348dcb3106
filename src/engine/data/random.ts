/** Small seeded PRNG and stratified sampling, deterministic across platforms (32-bit integer math). */

export type Rng = () => number;

/** mulberry32: a tiny, fast 32-bit PRNG. Returns floats in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An independent 32-bit seed for sub-stream `stream` of `seed` (splitmix-style finaliser). */
export function deriveSeed(seed: number, stream: number): number {
  let z = ((seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Uniform integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** Fisher–Yates shuffle in place. */
export function shuffleInPlace(arr: { length: number; [i: number]: number }, rng: Rng): void {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const t = arr[i] as number;
    arr[i] = arr[j] as number;
    arr[j] = t;
  }
}

/**
 * Per-class quotas summing to exactly `count` (0 <= count <= total of sizes): proportional to
 * class size by largest remainder (ties to the lower class). If `count` >= the number of classes,
 * every class gets at least one, taken from the class with the largest quota.
 */
function quotas(sizes: number[], count: number): number[] {
  const total = sizes.reduce((s, n) => s + n, 0);
  const q: number[] = [];
  const frac: { c: number; f: number }[] = [];
  sizes.forEach((n, c) => {
    const ideal = (count * n) / total;
    const fl = Math.floor(ideal);
    q.push(fl);
    frac.push({ c, f: ideal - fl });
  });
  let remaining = count - q.reduce((s, n) => s + n, 0);
  frac.sort((a, b) => b.f - a.f || a.c - b.c);
  for (let i = 0; remaining > 0 && i < frac.length; i++, remaining--) {
    const c = (frac[i] as { c: number }).c;
    q[c] = (q[c] as number) + 1; // ideal < n, so floor + 1 <= n
  }
  if (count >= sizes.length) {
    for (let c = 0; c < q.length; c++) {
      if (q[c] !== 0) continue;
      let big = 0;
      for (let d = 1; d < q.length; d++) if ((q[d] as number) > (q[big] as number)) big = d;
      q[big] = (q[big] as number) - 1; // count >= #classes, so the largest quota is >= 2 here
      q[c] = 1;
    }
  }
  return q;
}

/**
 * A seeded, stratified sample of `count` indices into `labels` (all of them if count >= length).
 * Class proportions are preserved (largest remainder rounding); when count >= #classes every class
 * present gets at least one index. Indices are returned sorted ascending (file order), without
 * duplicates. Same labels + count + seed => same result.
 */
export function stratifiedSample(labels: ArrayLike<number>, count: number, seed: number): Int32Array {
  const n = labels.length;
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`stratifiedSample: count must be a non-negative integer, got ${count}`);
  if (count >= n) {
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return all;
  }
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const y = labels[i] as number;
    let list = byClass.get(y);
    if (!list) byClass.set(y, (list = []));
    list.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const groups = classes.map((c) => byClass.get(c) as number[]);
  const q = quotas(
    groups.map((g) => g.length),
    count,
  );
  const rng = mulberry32(seed);
  const out = new Int32Array(count);
  let o = 0;
  groups.forEach((g, ci) => {
    const take = q[ci] as number;
    // partial Fisher–Yates: the first `take` slots become a uniform sample of the class.
    for (let i = 0; i < take; i++) {
      const j = i + randomInt(rng, g.length - i);
      const picked = g[j] as number;
      g[j] = g[i] as number;
      g[i] = picked;
      out[o++] = picked;
    }
  });
  return out.sort();
}

/** Indices 0..n-1 that are not in `taken` (`taken` sorted ascending, unique). */
export function complementIndices(n: number, taken: Int32Array): Int32Array {
  const out = new Int32Array(n - taken.length);
  let t = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    if (t < taken.length && taken[t] === i) t++;
    else out[o++] = i;
  }
  return out;
}

/** A seeded stratified split of 0..labels.length-1 into train and test (test has `testCount` indices). */
export function stratifiedSplit(labels: ArrayLike<number>, testCount: number, seed: number): { train: Int32Array; test: Int32Array } {
  const test = stratifiedSample(labels, testCount, seed);
  return { train: complementIndices(labels.length, test), test };
}
