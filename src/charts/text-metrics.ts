/**
 * Text widths for Vega's layout without a canvas. Vega otherwise guesses 0.8 em per character,
 * which reserves far too much room for legends and truncates labels early. Charts use DejaVu Sans
 * (Debian's default font, installed with fontconfig, so Chromium and resvg draw with it); these are
 * its advance widths in 1/1000 em for ASCII 32–126, read from DejaVuSans.ttf / DejaVuSans-Bold.ttf
 * (the data, in dejavu-sans-widths.json).
 * Other characters count as 0.65 em (0.7 bold). Vega documents replacing `textMetrics.width`
 * as the way to plug in a measurer (vl-convert does the same).
 */
import * as vega from 'vega';
import WIDTHS from './dejavu-sans-widths.json' with { type: 'json' };

const REGULAR: readonly number[] = WIDTHS.regular;
const BOLD: readonly number[] = WIDTHS.bold;

interface TextItem {
  fontSize?: number | string | null;
  fontWeight?: number | string | null;
}

function isBold(weight: TextItem['fontWeight']): boolean {
  if (weight == null) return false;
  if (typeof weight === 'number') return weight >= 600;
  return weight === 'bold' || weight === 'bolder' || Number(weight) >= 600;
}

/** Width in px of `text` (one line) in DejaVu Sans at the item's font size and weight. */
export function textWidth(item: TextItem, text: unknown): number {
  const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11;
  const s = text == null ? '' : String(text).trim();
  if (size <= 0 || s.length === 0) return 0;
  const table = isBold(item.fontWeight) ? BOLD : REGULAR;
  const other = isBold(item.fontWeight) ? 700 : 650;
  let units = 0;
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    units += code >= 32 && code < 127 ? (table[code - 32] ?? other) : other;
  }
  return (units / 1000) * size;
}

interface VegaTextMetrics {
  width: (item: TextItem, text: unknown) => number;
}

let installed = false;

/** Makes Vega lay out (and truncate) text with `textWidth`; idempotent. */
export function installTextMetrics(): void {
  if (installed) return;
  (vega as unknown as { textMetrics: VegaTextMetrics }).textMetrics.width = textWidth;
  installed = true;
}
