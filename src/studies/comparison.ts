/**
 * A study's comparison table, in the spirit of the tutorial's Results: per run its test loss and
 * accuracy, best validation accuracy and when, final regularization penalty, sparsity and training
 * time — ranked by test accuracy, with the difference to the baseline in percentage points.
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
  status: string;
  testLoss: number | null;
  testAccuracy: number | null;
  weightStats: unknown;
  epochs: EpochRow[];
}

export interface ComparisonRow {
  rank: number;
  variant: string;
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

export interface Comparison {
  baseline: string | null;
  rows: ComparisonRow[];
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
      deltaVsBaselinePp: base !== null && r.testAccuracy !== null ? (r.testAccuracy - base) * 100 : null,
    };
  });
  rows.sort((a, b) => (b.testAccuracy ?? -1) - (a.testAccuracy ?? -1) || a.variant.localeCompare(b.variant));
  return { baseline: baselineRun ? 'baseline' : null, rows: rows.map((r, i) => ({ rank: i + 1, ...r })) };
}

const COLUMNS: { key: keyof ComparisonRow; title: string; digits?: number }[] = [
  { key: 'rank', title: 'rank' },
  { key: 'variant', title: 'variant' },
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

export function toCsv(c: Comparison): string {
  const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  const lines = [COLUMNS.map((col) => esc(col.key)).join(',')];
  for (const row of c.rows) lines.push(COLUMNS.map((col) => esc(cell(row, col))).join(','));
  return lines.join('\n') + '\n';
}

export function toMarkdown(c: Comparison): string {
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const lines = [`| ${COLUMNS.map((col) => esc(col.title)).join(' | ')} |`, `| ${COLUMNS.map((col) => (col.digits !== undefined || col.key === 'rank' || col.key === 'epochs' ? '---:' : '---')).join(' | ')} |`];
  for (const row of c.rows) lines.push(`| ${COLUMNS.map((col) => esc(cell(row, col)) || '—').join(' | ')} |`);
  return lines.join('\n') + '\n';
}
