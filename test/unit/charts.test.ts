import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHART_HEIGHT,
  CHART_WIDTH,
  EMPTY_SUBTITLE,
  SERIES_COLORS,
  chartPng,
  overlayChart,
  runAccuracyChart,
  runLossChart,
  type EpochPoint,
  type Series,
} from '../../src/charts/index.js';
import { textWidth } from '../../src/charts/text-metrics.js';
import { CHROMIUM, CHROMIUM_FLAGS } from '../support/chromium.js';

const run = promisify(execFile);

/** A plausible 25-epoch history: loss falls, accuracy rises, validation lags a little. */
function history(n: number): EpochPoint[] {
  return Array.from({ length: n }, (_, i) => ({
    epoch: i + 1,
    loss: 2.5 * Math.exp(-i / 5) + 0.4,
    accuracy: 0.9 - 0.6 * Math.exp(-i / 4),
    valLoss: 2.3 * Math.exp(-i / 6) + 0.5,
    valAccuracy: 0.85 - 0.55 * Math.exp(-i / 4),
  }));
}

function studySeries(n: number): Series[] {
  return Array.from({ length: n }, (_, k) => ({
    label: `run ${k + 1} λ=${(0.001 * (k + 1)).toFixed(3)}`,
    points: history(25).map((e) => ({ epoch: e.epoch, value: (e.valAccuracy ?? 0) - 0.03 * k })),
  }));
}

/** Tag balance and no raw '<' / bare '&' in text or attributes: what an XML parser would reject. */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    const text = svg.slice(last, m.index);
    expect(text, `raw markup between tags at ${last}`).not.toMatch(/[<>]/);
    expect(text.replace(/&(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, '')).not.toContain('&');
    const attrs = (m[3] ?? '').replace(/&(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, '');
    expect(attrs, `bare & in attributes of <${m[2]}>`).not.toContain('&');
    if (m[1]) expect(stack.pop(), `closing </${m[2]}>`).toBe(m[2]);
    else if (!m[4]) stack.push(m[2] as string);
    last = tag.lastIndex;
  }
  expect(svg.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
}

/** The <path> elements of the line marks (one per series), with their stroke colours. */
function linePaths(svg: string): string[] {
  const groups = svg.match(/<g class="mark-line role-mark[^>]*>(?:<path[^>]*\/>)*<\/g>/g) ?? [];
  return groups.flatMap((g) => [...g.matchAll(/<path[^>]*stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1] as string));
}

/** Fill colours of the point markers drawn on the lines. */
function pointFills(svg: string): string[] {
  const groups = svg.match(/<g class="mark-symbol role-mark[^>]*>(?:<path[^>]*\/>)*<\/g>/g) ?? [];
  return groups.flatMap((g) => [...g.matchAll(/<path[^>]*fill="(#[0-9a-f]{6})"/g)].map((m) => m[1] as string));
}

function rgb(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

interface PixelStats {
  width: number;
  height: number;
  nonWhiteFraction: number;
  /** pixels within a small per-channel distance of each given colour */
  colorCounts: number[];
}

function pixelStats(png: Buffer, colors: string[], tolerance = 16): PixelStats {
  const img = PNG.sync.read(png);
  const targets = colors.map(rgb);
  const counts = targets.map(() => 0);
  let nonWhite = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    const r = img.data[i] as number;
    const g = img.data[i + 1] as number;
    const b = img.data[i + 2] as number;
    if (r < 245 || g < 245 || b < 245) nonWhite++;
    targets.forEach(([tr, tg, tb], k) => {
      if (Math.abs(r - tr) <= tolerance && Math.abs(g - tg) <= tolerance && Math.abs(b - tb) <= tolerance) {
        counts[k] = (counts[k] as number) + 1;
      }
    });
  }
  return { width: img.width, height: img.height, nonWhiteFraction: nonWhite / (img.width * img.height), colorCounts: counts };
}

describe('SVG charts (Vega-Lite → Vega, no DOM)', () => {
  it('renders a loss chart: fixed size, axis titles, legend, one line per series, escaped title', async () => {
    const title = `L2 <kernel> & "bias" 'x'`;
    const svg = await runLossChart(title, history(25));
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toMatch(new RegExp(`^<svg[^>]* width="${CHART_WIDTH}" height="${CHART_HEIGHT}"`));
    assertWellFormed(svg);
    for (const text of ['Training loss', 'Validation loss', 'No. epoch', 'Loss value']) {
      expect(svg).toContain(`>${text}</text>`);
    }
    expect(svg).toContain('>L2 &lt;kernel&gt; &amp; "bias" \'x\'</text>');
    expect(svg).not.toContain('<kernel>');
    expect(linePaths(svg)).toEqual([SERIES_COLORS[0], SERIES_COLORS[1]]);
    expect(pointFills(svg)).toHaveLength(50);
    // nothing to fetch: no external references in the output
    expect(svg.replace(/xmlns(:xlink)?="[^"]*"/g, '')).not.toMatch(/https?:|href=/);
  });

  it('renders an accuracy chart with its own labels', async () => {
    const svg = await runAccuracyChart('accuracy', history(5));
    assertWellFormed(svg);
    for (const text of ['Training accuracy', 'Validation accuracy', 'No. epoch', 'Accuracy value']) {
      expect(svg).toContain(`>${text}</text>`);
    }
    expect(linePaths(svg)).toHaveLength(2);
  });

  it('skips null values, keeps a single epoch visible as points, and renders 0 epochs without throwing', async () => {
    const withGaps = history(6).map((e, i) => (i % 2 === 0 ? { ...e, valLoss: null, valAccuracy: null } : e));
    const gaps = await runLossChart('gaps', withGaps);
    expect(linePaths(gaps)).toHaveLength(2);
    const fills = pointFills(gaps);
    expect(fills.filter((c) => c === SERIES_COLORS[0])).toHaveLength(6);
    expect(fills.filter((c) => c === SERIES_COLORS[1])).toHaveLength(3);
    expect(gaps).not.toMatch(/NaN/);

    const allNull = await runAccuracyChart('first epoch', [{ ...history(1)[0]!, valAccuracy: null, valLoss: null }]);
    expect(pointFills(allNull)).toEqual([SERIES_COLORS[0]]);

    const one = await runAccuracyChart('one epoch', history(1));
    assertWellFormed(one);
    expect(pointFills(one)).toEqual([SERIES_COLORS[0], SERIES_COLORS[1]]);
    expect(one).not.toMatch(/NaN|0\.2999999/);

    const empty = await runLossChart('nothing yet', []);
    assertWellFormed(empty);
    expect(empty).toMatch(/ width="640" height="400"/);
    expect(empty).toContain(`>${EMPTY_SUBTITLE}</text>`);
    expect(empty).toContain('>nothing yet</text>');
    expect(pointFills(empty)).toEqual([]);

    const noSeries = await overlayChart('no runs', 'Validation accuracy', []);
    assertWellFormed(noSeries);
    expect(noSeries).toContain(`>${EMPTY_SUBTITLE}</text>`);
  });

  it('overlays 20 runs with 20 distinct colours, legend labels escaped, duplicate labels kept apart', async () => {
    const series = studySeries(20);
    series[3] = { ...series[3]!, label: `a<b & "c"` };
    series[5] = { ...series[5]!, label: series[4]!.label };
    const svg = await overlayChart('study <7>', 'Validation accuracy', series);
    assertWellFormed(svg);
    expect(linePaths(svg)).toEqual(SERIES_COLORS.slice(0, 20));
    expect(new Set(linePaths(svg)).size).toBe(20);
    expect(svg).toContain('>a&lt;b &amp; "c"</text>');
    expect(svg).toContain(`>${series[4]!.label}</text>`);
    expect(svg).toContain(`>${series[4]!.label} (2)</text>`);
    expect(svg).toContain('>run 20 λ=0.020</text>');
    expect(svg).toContain('>Validation accuracy</text>');
    expect(svg).toMatch(/ width="640" height="400"/);
  });

  it("draws every seed of a variant as its own line in the variant's colour, with one legend entry per variant", async () => {
    const base = studySeries(2);
    const series = ['baseline', 'l2-activity'].flatMap((group, g) =>
      [1, 2, 3].map((seed) => ({
        label: `${group} (seed ${seed})`,
        group,
        points: base[g]!.points.map((p) => ({ ...p, value: (p.value ?? 0) + seed / 100 })),
      })),
    );
    const svg = await overlayChart('seeds', 'Validation accuracy', series);
    assertWellFormed(svg);
    expect(linePaths(svg)).toEqual([...Array(3).fill(SERIES_COLORS[0]), ...Array(3).fill(SERIES_COLORS[1])]);
    expect(svg).toContain('>baseline</text>');
    expect(svg).toContain('>l2-activity</text>');
    expect(svg).not.toContain('(seed 1)</text>');
  });

  it('uses a palette whose colours are far apart from each other and from white/grey', () => {
    expect(new Set(SERIES_COLORS).size).toBe(20);
    for (let i = 0; i < SERIES_COLORS.length; i++) {
      for (let j = i + 1; j < SERIES_COLORS.length; j++) {
        const [a, b] = [rgb(SERIES_COLORS[i]!), rgb(SERIES_COLORS[j]!)];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
        expect(d, `${SERIES_COLORS[i]} vs ${SERIES_COLORS[j]}`).toBeGreaterThan(35);
      }
      const [r, g, b] = rgb(SERIES_COLORS[i]!);
      expect(Math.min(r, g, b), `${SERIES_COLORS[i]} too light`).toBeLessThan(200);
    }
  });

  it('measures text with DejaVu Sans widths (legend sized to its labels, not 0.8 em per character)', () => {
    expect(textWidth({ fontSize: 10 }, 'mmm')).toBeCloseTo(29.22, 1);
    expect(textWidth({ fontSize: 10, fontWeight: 'bold' }, 'iii')).toBeCloseTo(10.29, 1);
    expect(textWidth({}, '')).toBe(0);
  });

  it('rasterises to PNG with resvg: right size, lines in their colours', async () => {
    const png = await chartPng(await runLossChart('loss', history(25)));
    const stats = pixelStats(png, [SERIES_COLORS[0]!, SERIES_COLORS[1]!], 8);
    expect([stats.width, stats.height]).toEqual([CHART_WIDTH, CHART_HEIGHT]);
    expect(stats.nonWhiteFraction).toBeGreaterThan(0.03);
    for (const count of stats.colorCounts) expect(count).toBeGreaterThan(300);
    const big = PNG.sync.read(await chartPng(await runLossChart('loss', history(3)), 2));
    expect([big.width, big.height]).toEqual([2 * CHART_WIDTH, 2 * CHART_HEIGHT]);
  });
});

describe('headless Chromium renders the SVG', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'regula-charts-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function screenshot(name: string, svg: string): Promise<Buffer> {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: this test screenshots the charts in headless Chromium. ` +
          'Install it with `apt-get update && apt-get install -y chromium` (.ci/run does this).',
      );
    }
    const html = join(dir, `${name}.html`);
    const png = join(dir, `${name}.png`);
    await writeFile(
      html,
      '<!doctype html><html><head><meta charset="utf-8"><style>html,body{margin:0;padding:0;background:#fff}' +
        `svg{display:block}</style></head><body>${svg}</body></html>`,
    );
    await run(
      CHROMIUM,
      [
        ...CHROMIUM_FLAGS,
        `--user-data-dir=${join(dir, `profile-${name}`)}`,
        '--hide-scrollbars',
        '--window-size=700,450',
        `--screenshot=${png}`,
        pathToFileURL(html).href,
      ],
      { timeout: 30_000 },
    );
    return readFile(png);
  }

  it('draws the loss chart and a 6-run overlay with every series colour visible', async () => {
    const series = studySeries(6);
    const loss = await screenshot('loss', await runLossChart(`L2 <kernel> & "bias"`, history(25)));
    const overlay = await screenshot('overlay', await overlayChart('Validation accuracy per run', 'Validation accuracy', series));

    const l = pixelStats(loss, [SERIES_COLORS[0]!, SERIES_COLORS[1]!]);
    expect([l.width, l.height]).toEqual([700, 450]);
    expect(l.nonWhiteFraction).toBeGreaterThan(0.03);
    for (const count of l.colorCounts) expect(count).toBeGreaterThan(500);

    const o = pixelStats(overlay, SERIES_COLORS.slice(0, 6));
    expect([o.width, o.height]).toEqual([700, 450]);
    expect(o.nonWhiteFraction).toBeGreaterThan(0.03);
    o.colorCounts.forEach((count, i) => expect(count, `${series[i]!.label} (${SERIES_COLORS[i]})`).toBeGreaterThan(500));
    // colours the charts never use stay (nearly) absent: the counts above are lines, not noise
    const unused = pixelStats(overlay, SERIES_COLORS.slice(14, 20)).colorCounts;
    for (const count of unused) expect(count).toBeLessThan(100);
  }, 40_000);
});
