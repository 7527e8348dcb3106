/**
 * Text widths for Vega's layout without a canvas. Vega otherwise guesses 0.8 em per character,
 * which reserves far too much room for legends and truncates labels early. Charts use DejaVu Sans
 * (Debian's default font, installed with fontconfig, so Chromium and resvg draw with it); these are
 * its advance widths in 1/1000 em for ASCII 32–126, read from DejaVuSans.ttf / DejaVuSans-Bold.ttf.
 * Other characters count as 0.65 em (0.7 bold). Vega documents replacing `textMetrics.width`
 * as the way to plug in a measurer (vl-convert does the same).
 */
import * as vega from 'vega';

const REGULAR = [
  318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636,
  636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775,
  752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390,
  337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
  635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
];
const BOLD = [
  348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696, 696,
  696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734, 830, 683, 683, 821,
  837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457,
  365, 457, 838, 500, 500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687,
  716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
];

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
