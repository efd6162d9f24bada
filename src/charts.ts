// Line charts as standalone SVG strings: the same markup is inlined in report.html and rendered to
// PNG (charts/*.png), so the browser and the terminal see one picture. No chart library: a report
// must open from disk with no network, and these charts need only axes, polylines and a legend.

/** One line of a chart: [x, y] points in data units. */
export interface ChartSeries {
  /** Machine name, written as `data-series` on the polyline (tests and scripts find lines by it). */
  id: string
  /** Legend text. */
  label: string
  color: string
  points: Array<[number, number]>
  /** A lighter, thinner line: the raw values behind a moving average. */
  faint?: boolean
}

/** A horizontal reference line (e.g. D = 1/2, where both D outputs go at the equilibrium). */
export interface ReferenceLine {
  y: number
  label: string
}

export interface LineChart {
  title: string
  xLabel: string
  yLabel: string
  series: ChartSeries[]
  references?: ReferenceLine[]
  /** A fixed y range (e.g. [0, 1] for probabilities); default: the data's range, padded. */
  yRange?: [number, number]
  width?: number
  height?: number
}

const MARGIN = { left: 64, right: 16, top: 36, bottom: 44 }
const FONT = 'font-family="DejaVu Sans, Arial, Helvetica, sans-serif"'

/** Escapes text for SVG/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/**
 * About `target` round tick values covering [min, max] (1, 2 or 5 times a power of ten apart),
 * so that axes read 0, 0.5, 1 rather than 0.013, 0.497, 0.981.
 */
export function niceTicks(min: number, max: number, target = 5): number[] {
  if (!(max > min)) return [min]
  const rough = (max - min) / target
  const power = 10 ** Math.floor(Math.log10(rough))
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power
  const ticks: number[] = []
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12))
  return ticks
}

function formatTick(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0)
  return String(+v.toPrecision(4))
}

/** The data range of all series (and reference lines), padded by 5% so lines clear the frame. */
function dataRange(chart: LineChart): { x: [number, number]; y: [number, number] } {
  const xs: number[] = []
  const ys: number[] = []
  for (const s of chart.series) for (const [x, y] of s.points) xs.push(x), ys.push(y)
  for (const r of chart.references ?? []) ys.push(r.y)
  // A loop, not Math.min(...v): spreading a long array overflows the call stack.
  const span = (v: number[]): [number, number] => (v.length ? v.reduce<[number, number]>(([lo, hi], a) => [Math.min(lo, a), Math.max(hi, a)], [v[0], v[0]]) : [0, 1])
  let [x0, x1] = span(xs)
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1]
  let [y0, y1] = chart.yRange ?? span(ys)
  if (!chart.yRange) {
    const pad = (y1 - y0) * 0.05 || Math.abs(y0) * 0.1 || 1
    ;[y0, y1] = [y0 - pad, y1 + pad]
  }
  return { x: [x0, x1], y: [y0, y1] }
}

/** A line chart with axes, grid, legend and optional reference lines, as one SVG document. */
export function lineChartSvg(chart: LineChart): string {
  const width = chart.width ?? 720
  const height = chart.height ?? 300
  const plotW = width - MARGIN.left - MARGIN.right
  const plotH = height - MARGIN.top - MARGIN.bottom
  const range = dataRange(chart)
  const sx = (x: number) => MARGIN.left + ((x - range.x[0]) / (range.x[1] - range.x[0])) * plotW
  const sy = (y: number) => MARGIN.top + (1 - (y - range.y[0]) / (range.y[1] - range.y[0])) * plotH
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold" ${FONT}>${escapeXml(chart.title)}</text>`,
  ]
  for (const t of niceTicks(range.y[0], range.y[1])) {
    const y = sy(t).toFixed(1)
    parts.push(`<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`)
    parts.push(`<text x="${MARGIN.left - 6}" y="${y}" dy="4" text-anchor="end" font-size="11" fill="#444" ${FONT}>${formatTick(t)}</text>`)
  }
  for (const t of niceTicks(range.x[0], range.x[1], 8)) {
    const x = sx(t).toFixed(1)
    parts.push(`<line x1="${x}" x2="${x}" y1="${height - MARGIN.bottom}" y2="${height - MARGIN.bottom + 4}" stroke="#444"/>`)
    parts.push(`<text x="${x}" y="${height - MARGIN.bottom + 16}" text-anchor="middle" font-size="11" fill="#444" ${FONT}>${formatTick(t)}</text>`)
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`)
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${height - 8}" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(chart.xLabel)}</text>`)
  parts.push(`<text transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(chart.yLabel)}</text>`)
  for (const r of chart.references ?? []) {
    const y = sy(r.y).toFixed(1)
    parts.push(`<line class="reference" data-y="${r.y}" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${y}" y2="${y}" stroke="#555" stroke-width="1.5" stroke-dasharray="6 4"/>`)
    parts.push(`<text x="${width - MARGIN.right - 4}" y="${y}" dy="-4" text-anchor="end" font-size="11" fill="#555" ${FONT}>${escapeXml(r.label)}</text>`)
  }
  for (const s of chart.series) {
    const points = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')
    const style = s.faint ? `stroke-width="1" stroke-opacity="0.35"` : `stroke-width="2"`
    parts.push(`<polyline class="series${s.faint ? ' faint' : ''}" data-series="${escapeXml(s.id)}" points="${points}" fill="none" stroke="${s.color}" ${style} stroke-linejoin="round"/>`)
    // A single point draws no line; mark it so that a one-step run still shows something.
    if (s.points.length === 1) parts.push(`<circle cx="${sx(s.points[0][0]).toFixed(1)}" cy="${sy(s.points[0][1]).toFixed(1)}" r="3" fill="${s.color}"/>`)
  }
  parts.push(legend(chart.series.filter((s) => !s.faint), MARGIN.left + 8, MARGIN.top + 8))
  parts.push('</svg>')
  return parts.join('\n')
}

function legend(series: ChartSeries[], x: number, y: number): string {
  const rows = series.map((s, i) => {
    const ry = y + 8 + i * 16
    return `<line x1="${x + 6}" x2="${x + 26}" y1="${ry}" y2="${ry}" stroke="${s.color}" stroke-width="3"/>` +
      `<text x="${x + 32}" y="${ry}" dy="4" font-size="12" ${FONT}>${escapeXml(s.label)}</text>`
  })
  const w = 40 + Math.max(0, ...series.map((s) => s.label.length)) * 7
  return `<g class="legend"><rect x="${x}" y="${y - 2}" width="${w}" height="${series.length * 16 + 4}" fill="#ffffff" fill-opacity="0.85" stroke="#ccc"/>${rows.join('')}</g>`
}

/** Trailing moving average over `window` values (shorter at the start). */
export function movingAverage(values: number[], window: number): number[] {
  const out = new Array<number>(values.length)
  let sum = 0
  for (let i = 0; i < values.length; i++) {
    sum += values[i]
    if (i >= window) sum -= values[i - window]
    out[i] = sum / Math.min(i + 1, window)
  }
  return out
}

/**
 * At most `maxPoints` points: consecutive points are averaged in equal buckets, so a 100k-step
 * run keeps the shape of its curves in a page of a few hundred kilobytes.
 */
export function downsample(points: Array<[number, number]>, maxPoints: number): Array<[number, number]> {
  if (points.length <= maxPoints) return points
  const size = points.length / maxPoints
  const out: Array<[number, number]> = []
  for (let b = 0; b < maxPoints; b++) {
    const bucket = points.slice(Math.floor(b * size), Math.floor((b + 1) * size))
    if (bucket.length === 0) continue
    const mean = (k: 0 | 1) => bucket.reduce((a, p) => a + p[k], 0) / bucket.length
    out.push([mean(0), mean(1)])
  }
  return out
}
