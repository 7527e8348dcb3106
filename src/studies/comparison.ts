/**
 * A study's comparison table, in the spirit of the tutorial's Results: per run its test loss and
 * accuracy, best validation accuracy and when, final regularization penalty, sparsity and training
 * time — ranked by test accuracy, with the difference to the baseline in percentage points.
 *
 * With repeated seeds, the variants table is what to read: per variant and metric the mean, sample
 * standard deviation, min and max over its finished runs, how many runs ended at the majority-class
 * rate (collapsed), ranked by mean test accuracy, and which other variants' test-accuracy ranges
 * overlap its own (a ranking between overlapping variants is not settled by these seeds).
 */
import type { EpochRow } from '../store/runs-repo.js';

interface TensorStatsLike {
  count: number;
  nearZero: number;
}
interface LayerStatsLike {
  kernel?: TensorStatsLike | null;
}
interface PartsLike {
  kernelPenalty?: number;
  biasPenalty?: number;
  activityPenalty?: number;
}

export interface ComparedRun {
  id: string;
  variant: string | null;
  seed: number | null;
  /** The test split's largest class share (a model that predicts one class scores about this). */
  majorityRate: number | null;
  status: string;
  testLoss: number | null;
  testAccuracy: number | null;
  weightStats: unknown;
  epochs: EpochRow[];
}

export interface ComparisonRow {
  rank: number;
  variant: string;
  seed: number | null;
  runId: string;
  status: string;
  epochs: number;
  testLoss: number | null;
  testAccuracy: number | null;
  bestValAccuracy: number | null;
  bestValEpoch: number | null;
  finalPenalty: number | null;
  sparsity: number | null;
  trainingSeconds: number;
  deltaVsBaselinePp: number | null;
}

export interface Spread {
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one run. */
  sd: number;
  min: number;
  max: number;
}

export const SPREAD_METRICS = ['testAccuracy', 'testLoss', 'bestValAccuracy', 'finalPenalty', 'sparsity', 'trainingSeconds'] as const;
export type SpreadMetric = (typeof SPREAD_METRICS)[number];

export interface VariantSummary {
  rank: number;
  variant: string;
  runs: number;
  /** Runs that finished (succeeded) and so count in the figures. */
  finished: number;
  seeds: number[];
  /** Finished runs whose test accuracy is within COLLAPSE_TOLERANCE of the majority-class rate. */
  collapsed: number;
  metrics: Record<SpreadMetric, Spread | null>;
  /** Mean test accuracy minus the baseline's mean, in percentage points (2 decimals). */
  deltaVsBaselinePp: number | null;
  /** Variants whose [min, max] test accuracy overlaps this one's. */
  overlapsWith: string[];
}

export interface Comparison {
  baseline: string | null;
  rows: ComparisonRow[];
  variants: VariantSummary[];
}

/** |accuracy − majority rate| below this counts as a collapsed run (0.5 percentage points). */
export const COLLAPSE_TOLERANCE = 0.005;

const round2 = (v: number) => Math.round(v * 100) / 100;

export function spread(values: number[]): Spread | null {
  if (values.length === 0) return null;
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { n, mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

/** Fraction of all Conv2D/Dense kernel weights with |w| < 1e-3. */
export function sparsityOf(stats: unknown): number | null {
  if (!Array.isArray(stats)) return null;
  let zero = 0;
  let total = 0;
  for (const layer of stats as LayerStatsLike[]) {
    const k = layer.kernel;
    if (!k) continue;
    zero += k.nearZero * k.count;
    total += k.count;
  }
  return total > 0 ? zero / total : null;
}

function details(e: EpochRow | undefined): { train?: PartsLike; weights?: unknown } {
  return (e?.details ?? {}) as { train?: PartsLike; weights?: unknown };
}

export function compare(runs: ComparedRun[]): Comparison {
  const baselineRun = runs.find((r) => r.variant === 'baseline');
  const base = baselineRun?.testAccuracy ?? null;
  const rows = runs.map((r): Omit<ComparisonRow, 'rank'> => {
    let best: EpochRow | undefined;
    for (const e of r.epochs) if (e.valAccuracy !== null && (best?.valAccuracy == null || e.valAccuracy > best.valAccuracy)) best = e;
    const last = r.epochs.at(-1);
    const train = details(last).train;
    const finalPenalty = train ? (train.kernelPenalty ?? 0) + (train.biasPenalty ?? 0) + (train.activityPenalty ?? 0) : null;
    return {
      variant: r.variant ?? r.id,
      seed: r.seed,
      runId: r.id,
      status: r.status,
      epochs: r.epochs.length,
      testLoss: r.testLoss,
      testAccuracy: r.testAccuracy,
      bestValAccuracy: best?.valAccuracy ?? null,
      bestValEpoch: best?.epoch ?? null,
      finalPenalty,
      sparsity: sparsityOf(r.weightStats) ?? sparsityOf(details(last).weights),
      trainingSeconds: r.epochs.reduce((s, e) => s + e.durationMs, 0) / 1000,
      deltaVsBaselinePp: base !== null && r.testAccuracy !== null ? round2((r.testAccuracy - base) * 100) : null,
    };
  });
  rows.sort((a, b) => (b.testAccuracy ?? -1) - (a.testAccuracy ?? -1) || a.variant.localeCompare(b.variant) || (a.seed ?? 0) - (b.seed ?? 0));
  const ranked = rows.map((r, i) => ({ rank: i + 1, ...r }));
  return { baseline: baselineRun ? 'baseline' : null, rows: ranked, variants: summarize(runs, ranked) };
}

/** Per variant (in the order variants first appear): spreads over its succeeded runs, ranked by mean test accuracy. */
function summarize(runs: ComparedRun[], rows: ComparisonRow[]): VariantSummary[] {
  const order: string[] = [];
  for (const r of runs) if (!order.includes(r.variant ?? r.id)) order.push(r.variant ?? r.id);
  const majority = new Map(runs.map((r) => [r.id, r.majorityRate]));
  const summaries = order.map((variant) => {
    const all = rows.filter((r) => r.variant === variant);
    const done = all.filter((r) => r.status === 'succeeded');
    const metrics = Object.fromEntries(
      SPREAD_METRICS.map((m) => [m, spread(done.map((r) => r[m]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v)))]),
    ) as Record<SpreadMetric, Spread | null>;
    const collapsed = done.filter((r) => {
      const rate = majority.get(r.runId);
      return rate != null && r.testAccuracy !== null && Math.abs(r.testAccuracy - rate) < COLLAPSE_TOLERANCE;
    }).length;
    const seeds = all
      .map((r) => r.seed)
      .filter((v): v is number => v !== null)
      .sort((a, b) => a - b);
    return { variant, runs: all.length, finished: done.length, seeds, collapsed, metrics };
  });
  const baseMean = summaries.find((v) => v.variant === 'baseline')?.metrics.testAccuracy?.mean ?? null;
  const overlaps = (a: Spread | null, b: Spread | null) => a !== null && b !== null && a.min <= b.max && b.min <= a.max;
  return summaries
    .map((v) => ({
      ...v,
      deltaVsBaselinePp: baseMean !== null && v.metrics.testAccuracy ? round2((v.metrics.testAccuracy.mean - baseMean) * 100) : null,
      overlapsWith: summaries.filter((o) => o !== v && overlaps(v.metrics.testAccuracy, o.metrics.testAccuracy)).map((o) => o.variant),
    }))
    .sort((a, b) => (b.metrics.testAccuracy?.mean ?? -1) - (a.metrics.testAccuracy?.mean ?? -1) || a.variant.localeCompare(b.variant))
    .map((v, i) => ({ rank: i + 1, ...v }));
}

const COLUMNS: { key: keyof ComparisonRow; title: string; digits?: number }[] = [
  { key: 'rank', title: 'rank' },
  { key: 'variant', title: 'variant' },
  { key: 'seed', title: 'seed' },
  { key: 'status', title: 'status' },
  { key: 'epochs', title: 'epochs' },
  { key: 'testLoss', title: 'test loss', digits: 4 },
  { key: 'testAccuracy', title: 'test accuracy', digits: 4 },
  { key: 'bestValAccuracy', title: 'best val accuracy', digits: 4 },
  { key: 'bestValEpoch', title: 'best epoch' },
  { key: 'finalPenalty', title: 'final penalty', digits: 4 },
  { key: 'sparsity', title: 'sparsity (|w|<1e-3)', digits: 4 },
  { key: 'trainingSeconds', title: 'training s', digits: 1 },
  { key: 'deltaVsBaselinePp', title: 'Δ vs baseline (pp)', digits: 2 },
  { key: 'runId', title: 'run' },
];

function cell(row: ComparisonRow, c: (typeof COLUMNS)[number]): string {
  const v = row[c.key];
  if (v === null) return '';
  if (typeof v === 'number' && c.digits !== undefined) return c.key === 'deltaVsBaselinePp' && v > 0 ? `+${v.toFixed(c.digits)}` : v.toFixed(c.digits);
  return String(v);
}

/** One table: per run, or per variant (spreads) — the latter by default when some variant has several runs. */
export type ComparisonTable = 'runs' | 'variants';

export function defaultTable(c: Comparison): ComparisonTable {
  return c.variants.some((v) => v.runs > 1) ? 'variants' : 'runs';
}

const SPREAD_TITLES: Record<SpreadMetric, [string, number]> = {
  testAccuracy: ['test accuracy', 4],
  testLoss: ['test loss', 4],
  bestValAccuracy: ['best val accuracy', 4],
  finalPenalty: ['final penalty', 4],
  sparsity: ['sparsity', 4],
  trainingSeconds: ['training s', 1],
};

interface Table {
  header: string[];
  keys: string[];
  numeric: boolean[];
  rows: string[][];
}

function runTable(c: Comparison): Table {
  return {
    header: COLUMNS.map((col) => col.title),
    keys: COLUMNS.map((col) => col.key),
    numeric: COLUMNS.map((col) => col.digits !== undefined || col.key === 'rank' || col.key === 'epochs' || col.key === 'seed'),
    rows: c.rows.map((row) => COLUMNS.map((col) => cell(row, col))),
  };
}

function variantTable(c: Comparison): Table {
  const header = ['rank', 'variant', 'runs', 'collapsed'];
  const keys = ['rank', 'variant', 'runs', 'collapsed'];
  for (const m of SPREAD_METRICS) {
    const [title] = SPREAD_TITLES[m];
    for (const k of ['mean', 'sd', 'min', 'max'] as const) {
      header.push(`${title} ${k}`);
      keys.push(`${m}_${k}`);
    }
  }
  header.push('Δ vs baseline (pp, mean)', 'overlaps with', 'seeds');
  keys.push('deltaVsBaselinePp', 'overlapsWith', 'seeds');
  const rows = c.variants.map((v) => {
    const out = [String(v.rank), v.variant, String(v.runs), String(v.collapsed)];
    for (const m of SPREAD_METRICS) {
      const s = v.metrics[m];
      const d = SPREAD_TITLES[m][1];
      for (const k of ['mean', 'sd', 'min', 'max'] as const) out.push(s ? s[k].toFixed(d) : '');
    }
    out.push(
      v.deltaVsBaselinePp === null ? '' : `${v.deltaVsBaselinePp > 0 ? '+' : ''}${v.deltaVsBaselinePp.toFixed(2)}`,
      v.overlapsWith.join('; '),
      v.seeds.join(' '),
    );
    return out;
  });
  return { header, keys, numeric: keys.map((k) => !['variant', 'overlapsWith', 'seeds'].includes(k)), rows };
}

const tableOf = (c: Comparison, table: ComparisonTable) => (table === 'variants' ? variantTable(c) : runTable(c));

export function toCsv(c: Comparison, table: ComparisonTable = defaultTable(c)): string {
  const t = tableOf(c, table);
  const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  return [t.keys.map(esc).join(','), ...t.rows.map((r) => r.map(esc).join(','))].join('\n') + '\n';
}

export function toMarkdown(c: Comparison, table: ComparisonTable = defaultTable(c)): string {
  const t = tableOf(c, table);
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const lines = [`| ${t.header.map(esc).join(' | ')} |`, `| ${t.numeric.map((n) => (n ? '---:' : '---')).join(' | ')} |`];
  for (const r of t.rows) lines.push(`| ${r.map((v) => esc(v) || '—').join(' | ')} |`);
  return lines.join('\n') + '\n';
}
