// Small self-contained SVG bar charts for the bench report: one row block per path, one horizontal bar per series,
// a min..max whisker over the repeats, the median printed at the bar's end. No fonts or scripts are fetched: the
// file renders offline in any browser or image viewer.

export interface Bar {
  value: number;
  min?: number;
  max?: number;
}

export interface BarGroup {
  label: string;
  /** One entry per series; null: no figure (failed path or not applicable). */
  bars: (Bar | null)[];
  /** Shown instead of bars when every bar is null (e.g. "failed: ..."). */
  note?: string;
}

export interface BarChart {
  title: string;
  unit: string;
  series: string[];
  groups: BarGroup[];
  /** Digits after the point in value labels. */
  digits?: number;
  /** Optional line under the title. */
  subtitle?: string;
}

const PALETTE = ['#3b6ea8', '#e0873a', '#4e9a5b', '#b5485d', '#7d62a8', '#8c8c8c'];
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1, 2 or 5 times a power of ten, at least x/ticks, so a scale to x gets about `ticks` gridlines. */
export function niceStep(x: number, ticks = 5): number {
  if (!(x > 0)) return 1;
  const raw = x / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function fmt(v: number, digits: number): string {
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function renderBarChart(c: BarChart): string {
  const digits = c.digits ?? 2;
  const labelW = 170;
  const plotW = 520;
  const valueW = 90;
  const barH = 14;
  const gap = 3;
  const groupPad = 10;
  const top = c.subtitle ? 62 : 46;
  const legendH = 22;
  const width = labelW + plotW + valueW + 20;
  const rowsH = c.groups.reduce((h) => h + Math.max(1, c.series.length) * (barH + gap) + groupPad, 0);
  const axisY = top + rowsH;
  const height = axisY + 40 + legendH;

  let maxV = 0;
  for (const g of c.groups) for (const b of g.bars) if (b) maxV = Math.max(maxV, b.max ?? b.value, b.value);
  const step = niceStep(maxV || 1);
  // 8 % headroom so the value printed after the longest bar stays inside the plot
  const scaleMax = Math.max(step, Math.ceil(((maxV || 1) * 1.08) / step) * step);
  const x = (v: number): number => labelW + (Math.max(0, v) / scaleMax) * plotW;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `${FONT} font-size="11">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(c.title)}</text>`);
  if (c.subtitle) out.push(`<text x="10" y="40" font-size="11" fill="#555">${escapeXml(c.subtitle)}</text>`);
  // gridlines and axis labels
  for (let v = 0; v <= scaleMax + step / 2; v += step) {
    const gx = x(v).toFixed(1);
    const tickDigits = step < 1 ? Math.min(3, -Math.floor(Math.log10(step))) : 0;
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${axisY}" stroke="#e3e3e3"/>`);
    out.push(
      `<text x="${gx}" y="${axisY + 14}" text-anchor="middle" fill="#555">${escapeXml(fmt(v, tickDigits))}</text>`,
    );
  }
  out.push(
    `<text x="${labelW + plotW / 2}" y="${axisY + 27}" text-anchor="middle" fill="#333">${escapeXml(c.unit)}</text>`,
  );

  let y = top;
  for (const g of c.groups) {
    const blockH = Math.max(1, c.series.length) * (barH + gap);
    const labelY = (y + blockH / 2 + 4).toFixed(1);
    out.push(`<text x="${labelW - 8}" y="${labelY}" text-anchor="end" fill="#222">${escapeXml(g.label)}</text>`);
    if (g.bars.every((b) => b === null)) {
      out.push(`<text x="${labelW + 6}" y="${labelY}" fill="#b5485d">${escapeXml(g.note ?? 'no data')}</text>`);
    } else {
      g.bars.forEach((b, i) => {
        const by = y + i * (barH + gap);
        if (!b) {
          out.push(`<text x="${labelW + 6}" y="${by + barH - 3}" fill="#999">n/a</text>`);
          return;
        }
        const color = PALETTE[i % PALETTE.length]!;
        const w = Math.max(1, x(b.value) - labelW);
        const title = `${g.label} ${c.series[i] ?? ''}: ${fmt(b.value, digits)} ${c.unit}`;
        out.push(
          `<rect x="${labelW}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${color}">` +
            `<title>${escapeXml(title)}</title></rect>`,
        );
        if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
          const cy = by + barH / 2;
          out.push(
            `<line x1="${x(b.min).toFixed(1)}" y1="${cy}" x2="${x(b.max).toFixed(1)}" y2="${cy}" ` +
              'stroke="#222" stroke-width="1"/>',
          );
          for (const v of [b.min, b.max])
            out.push(
              `<line x1="${x(v).toFixed(1)}" y1="${cy - 4}" x2="${x(v).toFixed(1)}" y2="${cy + 4}" stroke="#222"/>`,
            );
        }
        const lx = Math.max(x(b.value), b.max !== undefined ? x(b.max) : 0) + 4;
        out.push(
          `<text x="${lx.toFixed(1)}" y="${by + barH - 3}" fill="#222">${escapeXml(fmt(b.value, digits))}</text>`,
        );
      });
    }
    y += blockH + groupPad;
  }
  // legend
  let lx = labelW;
  const ly = height - 12;
  c.series.forEach((s, i) => {
    out.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${lx + 14}" y="${ly}" fill="#222">${escapeXml(s)}</text>`);
    lx += 24 + s.length * 6.5;
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
