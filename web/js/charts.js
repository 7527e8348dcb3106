// @ts-check
// Line charts on uPlot (canvas, ~50 kB, fast enough to redraw on every SSE event). Colours are the
// Tableau 10 palette of the Vega-Lite SVGs Regula renders; axes follow the light or dark theme.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import { h } from './lib.js';

/** @param {number} i */
export function color(i) {
  return (
    getComputedStyle(document.documentElement)
      .getPropertyValue(`--c${i % 10}`)
      .trim() || '#4c78a8'
  );
}
function themeColor(/** @type {string} */ name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * Tick labels in percent with as many decimals as the tick step needs (0.5% steps say 0.5%, not 1%).
 * @param {number[]} vals
 */
function percentTicks(vals) {
  const step = vals.length > 1 ? Math.abs((vals[1] ?? 0) - (vals[0] ?? 0)) * 100 : 1;
  const digits = step > 0 ? Math.min(4, Math.max(0, -Math.floor(Math.log10(step) + 1e-9))) : 0;
  return vals.map((v) => `${(v * 100).toFixed(digits)}%`);
}

/**
 * A chart with one x (epochs, or fractional epochs) and several named series. `el.dataset.points`
 * holds the number of x values drawn, which the browser test watches grow.
 * @param {{title: string, xLabel?: string, yLabel?: string, series: {label: string, dash?: boolean}[], percent?: boolean, logY?: boolean}} opts
 */
export function lineChart(opts) {
  const el = h('div', { class: 'chart', dataset: { points: '0', chart: opts.title } });
  const fg = themeColor('--muted') || '#656d76';
  const grid = themeColor('--line') || '#d8dee4';
  const axis = (/** @type {string | undefined} */ label) => ({
    stroke: fg,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    label,
    labelSize: 18,
  });
  /** @type {import('uplot').Options} */
  const options = {
    title: opts.title,
    width: 500,
    height: 220,
    scales: { x: { time: false }, y: opts.logY ? { distr: 3 } : {} },
    axes: [axis(opts.xLabel ?? 'epoch'), { ...axis(opts.yLabel), size: 56, values: opts.percent ? (_u, vals) => percentTicks(vals) : undefined }],
    series: [
      { label: opts.xLabel ?? 'epoch', value: (_u, v) => (v === null || v === undefined ? '—' : Number.isInteger(v) ? String(v) : v.toFixed(2)) },
      ...opts.series.map((s, i) => ({
        label: s.label,
        stroke: color(i),
        width: 2,
        dash: s.dash ? [6, 4] : undefined,
        points: { show: true, size: 5 },
        spanGaps: true,
        value: (/** @type {unknown} */ _u, /** @type {number | null} */ v) =>
          v === null || v === undefined ? '—' : opts.percent ? `${(v * 100).toFixed(2)}%` : v.toPrecision(4),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  /** @type {(number | null)[][]} */
  let data = [[], ...opts.series.map(() => [])];
  /** @type {uPlot | null} */
  let plot = null;
  const resize = () => {
    if (!plot) return;
    const w = Math.max(280, Math.floor(el.clientWidth));
    if (w !== plot.width) plot.setSize({ width: w, height: 220 });
  };
  const observer = new ResizeObserver(resize);
  const mount = () => {
    if (plot || !el.isConnected) return;
    plot = new uPlot({ ...options, width: Math.max(280, Math.floor(el.clientWidth) || 500) }, /** @type {any} */ (data), el);
    observer.observe(el);
  };
  return {
    el,
    /** Replace all data: x values and one array per series (null = no point). @param {number[]} x @param {(number | null)[][]} ys */
    set(x, ys) {
      data = [x, ...ys];
      mount();
      plot?.setData(/** @type {any} */ (data));
      el.dataset.points = String(x.length);
    },
    mount,
    destroy() {
      observer.disconnect();
      plot?.destroy();
      plot = null;
    },
  };
}

/**
 * Series kept as a map x → values, for charts fed one event at a time.
 * @param {number} width how many series
 */
export function seriesTable(width) {
  /** @type {Map<number, (number | null)[]>} */
  const rows = new Map();
  return {
    /** @param {number} x @param {(number | null)[]} values */
    put(x, values) {
      rows.set(x, values);
    },
    /** @param {number} x @param {number} i @param {number | null} v */
    putOne(x, i, v) {
      const row = rows.get(x) ?? new Array(width).fill(null);
      row[i] = v;
      rows.set(x, row);
    },
    /** Keep only x < limit (a resumed run repeats nothing, a restarted one starts over). @param {number} limit */
    dropFrom(limit) {
      for (const x of [...rows.keys()]) if (x >= limit) rows.delete(x);
    },
    /** @returns {[number[], (number | null)[][]]} */
    columns() {
      const xs = [...rows.keys()].sort((a, b) => a - b);
      return [xs, Array.from({ length: width }, (_, i) => xs.map((x) => rows.get(x)?.[i] ?? null))];
    },
    get size() {
      return rows.size;
    },
  };
}
