/**
 * Training-curve charts rendered server-side: Vega-Lite specs compiled to Vega and rendered to SVG
 * text without a DOM (renderer 'none'), optionally rasterised to PNG with resvg.
 *
 * Pure functions: no HTTP, no database. Data is always inline and the Vega view gets a loader that
 * refuses every URL, so rendering never touches the network or the file system.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { installTextMetrics } from './text-metrics.js';

export interface EpochPoint {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
}

export interface Series {
  label: string;
  /** Series with one group share a colour and one legend entry (e.g. a variant's seeds). */
  group?: string;
  points: { epoch: number; value: number | null }[];
}

/** Size of every chart, in CSS pixels (the SVG's width/height; the PNG is this times `scale`). */
export const CHART_WIDTH = 640;
export const CHART_HEIGHT = 400;

/**
 * Line colours, in the order series are given. Twenty hues chosen to stay apart from each other and
 * from the grey axes/grid on a white background; beyond twenty they repeat.
 */
export const SERIES_COLORS: readonly string[] = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#bcbd22',
  '#000075',
  '#f032e6',
  '#800000',
  '#008080',
  '#e6ab02',
  '#808000',
  '#4b0082',
  '#fa8072',
  '#c71585',
  '#2f4f4f',
  '#7b68ee',
];

export const EMPTY_SUBTITLE = 'no epochs yet';

const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

interface Row {
  epoch: number;
  value: number;
  series: string;
  group: string;
}

/** Training vs validation loss per epoch (the tutorial's plot: title, x "No. epoch", legend). */
export function runLossChart(title: string, epochs: EpochPoint[]): Promise<string> {
  return overlayChart(title, 'Loss value', [
    { label: 'Training loss', points: epochs.map((e) => ({ epoch: e.epoch, value: e.loss })) },
    { label: 'Validation loss', points: epochs.map((e) => ({ epoch: e.epoch, value: e.valLoss })) },
  ]);
}

/** Training vs validation accuracy per epoch. */
export function runAccuracyChart(title: string, epochs: EpochPoint[]): Promise<string> {
  return overlayChart(title, 'Accuracy value', [
    { label: 'Training accuracy', points: epochs.map((e) => ({ epoch: e.epoch, value: e.accuracy })) },
    { label: 'Validation accuracy', points: epochs.map((e) => ({ epoch: e.epoch, value: e.valAccuracy })) },
  ]);
}

/**
 * Several series overlaid, one line (with point markers) per series and a legend with their labels,
 * e.g. the validation accuracy of a study's runs. Null and non-finite values are skipped; series
 * keep their order (and so their colour, `SERIES_COLORS[i % 20]`); duplicate labels get " (2)", " (3)"….
 * Series with a `group` (a variant's runs over several seeds) are drawn one line each in their
 * group's colour, with one legend entry per group: every seed stays visible.
 * With no points at all the chart still renders, with the subtitle "no epochs yet".
 */
export async function overlayChart(title: string, yTitle: string, series: Series[]): Promise<string> {
  const labels = uniqueLabels(series.map((s) => s.label));
  const grouped = series.some((s) => s.group !== undefined);
  const groups: string[] = [];
  const rows: Row[] = [];
  series.forEach((s, i) => {
    const label = labels[i] as string;
    const group = grouped ? (s.group ?? label) : label;
    if (!groups.includes(group)) groups.push(group);
    for (const p of s.points) {
      if (p.value === null || !Number.isFinite(p.value) || !Number.isFinite(p.epoch)) continue;
      rows.push({ epoch: p.epoch, value: p.value, series: label, group });
    }
  });
  return renderSvg(overlaySpec(title, yTitle, groups, rows));
}

/**
 * Rasterises chart SVG to PNG with resvg (prebuilt binary from npm, no browser, no canvas).
 * Text uses the machine's fonts (DejaVu/Liberation on Debian); `scale` 2 gives a 1280×800 image.
 */
export async function chartPng(svg: string, scale = 1): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const resvg = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

function uniqueLabels(labels: string[]): string[] {
  const out: string[] = [];
  for (const raw of labels) {
    let label = raw;
    for (let n = 2; out.includes(label); n++) label = `${raw} (${n})`;
    out.push(label);
  }
  return out;
}

function overlaySpec(title: string, yTitle: string, labels: string[], rows: Row[]): TopLevelSpec {
  const empty = rows.length === 0;
  const epochs = rows.map((r) => r.epoch);
  const values = rows.map((r) => r.value);
  // x: exactly the epochs seen; a single epoch gets one epoch of room on each side.
  let xDomain: [number, number] = empty ? [0, 1] : [Math.min(...epochs), Math.max(...epochs)];
  if (xDomain[0] === xDomain[1]) xDomain = [xDomain[0] - 1, xDomain[1] + 1];
  // y: the values seen (Vega rounds it to nice ticks); all-equal values get some room too.
  let yDomain: [number, number] = empty ? [0, 1] : [Math.min(...values), Math.max(...values)];
  if (yDomain[1] - yDomain[0] <= 1e-9 * Math.max(1, Math.abs(yDomain[0]))) {
    const room = Math.abs(yDomain[0]) * 0.1 || 1;
    yDomain = [yDomain[0] - room, yDomain[1] + room];
  }
  const range = labels.map((_, i) => SERIES_COLORS[i % SERIES_COLORS.length] as string);
  return {
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    autosize: { type: 'fit', contains: 'padding' },
    padding: 10,
    background: 'white',
    title: empty ? { text: title, subtitle: EMPTY_SUBTITLE } : { text: title },
    data: { values: rows },
    mark: { type: 'line', point: { filled: true, size: 36 }, strokeWidth: 2 },
    encoding: {
      x: {
        field: 'epoch',
        type: 'quantitative',
        title: 'No. epoch',
        scale: { domain: xDomain, nice: false, zero: false },
        axis: { tickMinStep: 1, format: 'd' },
      },
      y: {
        field: 'value',
        type: 'quantitative',
        title: yTitle,
        scale: { domain: yDomain, zero: false, nice: true },
      },
      detail: { field: 'series', type: 'nominal' },
      color: {
        field: 'group',
        type: 'nominal',
        title: null,
        scale: { domain: labels, range },
        legend: labels.length === 0 ? null : { orient: 'right', labelLimit: 170, symbolType: 'stroke', symbolStrokeWidth: 3 },
      },
      order: { field: 'epoch', type: 'quantitative' },
    },
    config: {
      font: FONT,
      title: { fontSize: 16, subtitleFontSize: 13, subtitleColor: '#666', anchor: 'middle' },
      axis: { labelFontSize: 12, titleFontSize: 13, gridColor: '#e6e6e6' },
      legend: { labelFontSize: 12 },
    },
  };
}

/** A loader that refuses everything: specs carry their data inline, nothing is ever fetched. */
const noLoader = {
  ...vega.loader(),
  load: (uri: string): Promise<string> => Promise.reject(new Error(`charts: refusing to load ${uri}`)),
  sanitize: (uri: string): Promise<{ href: string }> => Promise.reject(new Error(`charts: refusing to load ${uri}`)),
};

async function renderSvg(spec: TopLevelSpec): Promise<string> {
  installTextMetrics();
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: noLoader as vega.Loader });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
