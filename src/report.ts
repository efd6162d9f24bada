// The training report: one self-contained HTML page per run folder (charts as inline SVG, images as
// data URIs, no network), plus the same charts as PNG files for terminals and CI logs.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import type { MetricRow } from './callbacks'
import { type ChartSeries, downsample, escapeXml as esc, type LineChart, lineChartSvg, movingAverage } from './charts'
import { saveImageGrid } from './dcgan'
import { type DatasetSpec, openDataset } from './datasets'
import { RunDir, type StepFile, writeFileAtomicAsync } from './run-dir'

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** Points per chart line at most; longer runs are averaged down. Default 1000. */
  maxPoints?: number
  /** Sample grids on the slider at most (evenly spread, always the last): each is embedded in the page. Default 40. */
  maxSamples?: number
  /** Write and show `real.png`, a grid of training images (opens the run's dataset). Default true. */
  realImages?: boolean
  /** Write `charts/*.png` beside the page. Default true. */
  pngCharts?: boolean
}

/** The PNG charts, in `<runDir>/charts/`. */
export const REPORT_CHART_FILES = ['losses.png', 'd-outputs.png', 'speed.png'] as const

/** Where {@link writeReport} writes its files for a run folder. */
export function reportPaths(runDir: string): {
  /** `<runDir>/report.html` */
  html: string
  /** `<runDir>/charts/*.png`, in REPORT_CHART_FILES order */
  charts: string[]
} {
  const run = new RunDir(runDir)
  return { html: run.reportFile, charts: REPORT_CHART_FILES.map((f) => run.chartFile(f)) }
}

/**
 * Writes `<runDir>/report.html` (and `charts/*.png`, `real.png`) for a run folder written by
 * `Trainer.fit` / `dcgan train`, and resolves to the page's path. Works on a run still training.
 */
export async function writeReport(runDir: string, options: ReportOptions = {}): Promise<string> {
  const run = new RunDir(runDir)
  const rows = readMetrics(run)
  const config = readJsonFile(run.configFile)
  const evaluation = readJsonFile(run.evalFile)
  const charts = buildCharts(rows, options.maxPoints ?? 1000)
  const samples = pickSamples(run.samples(), options.maxSamples ?? 40)
  const real = options.realImages === false ? { note: 'not requested (realImages: false)' } : await realImages(run, config.value)
  const html = page(runDir, [
    summarySection(runDir, rows),
    section('Training curves', charts.map((c) => `<figure class="chart" id="chart-${c.name}">${c.svg}<figcaption>${c.caption}</figcaption></figure>`).join('\n')),
    samplesSection(samples),
    realVsFakeSection(real, samples.grids.at(-1)),
    evalSection(evaluation),
    configSection(config),
  ])
  const paths = reportPaths(runDir)
  await writeFileAtomicAsync(paths.html, html)
  if (options.pngCharts !== false) {
    try {
      await renderPngs(charts, paths.charts)
    } catch (e) {
      throw new Error(`wrote ${paths.html}, but not the PNG charts: ${(e as Error).message}`)
    }
  }
  return paths.html
}

// ---------------------------------------------------------------------------------------------
// Reading the run folder

function readMetrics(run: RunDir): MetricRow[] {
  const runDir = run.path
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new Error(`${runDir}: no such run folder; give the --out folder of a training run`)
  const file = run.metricsFile
  if (!existsSync(file)) throw new Error(`${runDir}: has no metrics.jsonl; is it the output folder of \`dcgan train\` or Trainer.fit?`)
  const byStep = new Map<number, MetricRow>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const row = parseRow(line)
    // A resumed run logs again the steps after its checkpoint; the later line is the one kept.
    if (row) byStep.set(row.step, row)
  }
  if (byStep.size === 0) throw new Error(`${file}: holds no training steps yet; write the report after the first step`)
  return [...byStep.values()].sort((a, b) => a.step - b.step)
}

/** A metrics line, or null for a blank or torn line (the last one, while training writes it). */
function parseRow(line: string): MetricRow | null {
  if (line.trim() === '') return null
  try {
    const row = JSON.parse(line)
    return typeof row?.step === 'number' ? (row as MetricRow) : null
  } catch {
    return null
  }
}

/** A JSON file's content; `missing` when absent, `error` when unreadable (the page says so). */
function readJsonFile(path: string): { value?: unknown; missing?: boolean; error?: string } {
  if (!existsSync(path)) return { missing: true }
  try {
    return { value: JSON.parse(readFileSync(path, 'utf8')) }
  } catch (e) {
    return { error: `${basename(path)} could not be read: ${(e as Error).message}` }
  }
}

/** Sample grids by step; for long runs `max` of them, evenly spread, always the last. */
function pickSamples(all: StepFile[], max: number): { grids: StepFile[]; total: number } {
  if (all.length <= max) return { grids: all, total: all.length }
  const picked = new Set<number>()
  for (let i = 0; i < max; i++) picked.add(Math.round((i * (all.length - 1)) / Math.max(1, max - 1)))
  return { grids: [...picked].sort((a, b) => a - b).map((i) => all[i]), total: all.length }
}

/** `real.png`: the first batch of the run's dataset (reused when present), or why there is none. */
async function realImages(run: RunDir, config: unknown): Promise<{ path?: string; note?: string }> {
  const path = run.realImagesFile
  if (existsSync(path)) return { path }
  const c = config as { dataset?: DatasetSpec; imageSize?: number; channels?: number; seed?: number } | undefined
  if (!c?.dataset || !c.imageSize) return { note: 'config.json names no dataset, so there are no real images to compare with.' }
  try {
    // Up to 64 images; fewer when the run was limited to fewer (the loader needs a full batch).
    const batchSize = Math.min(64, c.dataset.limit ?? 64)
    // One decoding thread and one batch ahead: the report needs a single batch.
    const ds = await openDataset({ ...c.dataset, prefetch: 1, workers: 1 }, { imageSize: c.imageSize, channels: c.channels, batchSize, seed: c.seed })
    await saveImageGrid(await ds.next(), path, { nrow: 8 })
    return { path }
  } catch (e) {
    return { note: `the dataset in config.json could not be opened (${(e as Error).message.split('\n')[0]}); runs on a JS iterable have no dataset to read back. Put a grid of real images at real.png to show it here.` }
  }
}

// ---------------------------------------------------------------------------------------------
// Charts

interface Chart {
  name: string
  caption: string
  svg: string
}

/** One metric as a chart line: raw values (faint) under a moving average when the run is long. */
function metricSeries(rows: MetricRow[], key: keyof MetricRow, label: string, color: string, maxPoints: number): ChartSeries[] {
  const finite = rows.filter((r) => Number.isFinite(r[key] as number))
  const steps = finite.map((r) => r.step)
  const values = finite.map((r) => r[key] as number)
  // About 2% of the run: long enough to see the trend through a GAN's step-to-step noise.
  const window = Math.max(1, Math.round(values.length / 50))
  const raw = downsample(steps.map((s, i) => [s, values[i]]), maxPoints)
  if (window === 1) return [{ id: key, label, color, points: raw }]
  const smooth = movingAverage(values, window)
  return [
    { id: key, label, color, points: raw, faint: true },
    { id: `${key}-avg`, label: `${label} (mean of ${window})`, color, points: downsample(steps.map((s, i) => [s, smooth[i]]), maxPoints) },
  ]
}

function buildCharts(rows: MetricRow[], maxPoints: number): Chart[] {
  const chart = (name: string, caption: string, spec: LineChart): Chart => ({ name, caption, svg: lineChartSvg(spec) })
  return [
    chart('losses', 'Discriminator and generator losses (BCE). Neither should go to zero: a loss near 0 means that network has won and the other stops learning.', {
      title: 'Losses',
      xLabel: 'step',
      yLabel: 'loss',
      series: [...metricSeries(rows, 'lossD', 'D loss', '#1f77b4', maxPoints), ...metricSeries(rows, 'lossG', 'G loss', '#d62728', maxPoints)],
    }),
    chart('d-outputs', 'D(x) on real images and D(G(z)) on generated ones, before the D update. At the equilibrium of the game D cannot tell them apart and outputs 1/2 for both; D(x) → 1 with D(G(z)) → 0 means the discriminator is winning.', {
      title: 'Discriminator outputs',
      xLabel: 'step',
      yLabel: 'D output',
      yRange: [0, 1],
      references: [{ y: 0.5, label: '1/2' }],
      series: [...metricSeries(rows, 'dReal', 'D(x)', '#2ca02c', maxPoints), ...metricSeries(rows, 'dFake', 'D(G(z))', '#9467bd', maxPoints)],
    }),
    chart('speed', 'Training throughput (data loading excluded). The first steps include warm-up.', {
      title: 'Speed',
      xLabel: 'step',
      yLabel: 'images/s',
      series: metricSeries(rows, 'imagesPerSec', 'images/s', '#ff7f0e', maxPoints),
    }),
  ]
}

/** The same SVG as in the page, rasterised by resvg (loaded here only: importing dcgan stays light). */
async function renderPngs(charts: Chart[], paths: string[]): Promise<void> {
  const { Resvg } = await import('@resvg/resvg-js')
  for (const [i, c] of charts.entries()) {
    // Without system fonts the text is left out, but axes and lines still render.
    const png = new Resvg(c.svg, { background: '#ffffff', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng()
    await writeFileAtomicAsync(paths[i], png)
  }
}

// ---------------------------------------------------------------------------------------------
// HTML

function section(title: string, body: string, id = title.toLowerCase().replace(/[^a-z]+/g, '-')): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>\n${body}\n</section>`
}

function dataUri(file: string): string {
  return `data:image/png;base64,${readFileSync(file).toString('base64')}`
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1000 ? v.toFixed(0) : String(+v.toPrecision(4))
}

function median(values: number[]): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b)
  return s.length ? s[Math.floor(s.length / 2)] : NaN
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(1)} s`
  return seconds < 7200 ? `${(seconds / 60).toFixed(1)} min` : `${(seconds / 3600).toFixed(1)} h`
}

function summarySection(runDir: string, rows: MetricRow[]): string {
  const last = rows[rows.length - 1]
  const times = [rows[0].time, last.time].map((t) => (t ? Date.parse(t) : NaN))
  const seconds = (times[1] - times[0]) / 1000
  const items: Array<[string, string]> = [
    ['run folder', esc(resolve(runDir))],
    ['steps', `${last.step}${last.epoch !== undefined ? ` (epoch ${last.epoch})` : ''}`],
    ['last step', `D loss ${fmt(last.lossD)}, G loss ${fmt(last.lossG)}, D(x) ${fmt(last.dReal)}, D(G(z)) ${fmt(last.dFake)}`],
    ['median speed', `${fmt(median(rows.map((r) => r.imagesPerSec)))} images/s`],
    ...(Number.isFinite(seconds) ? [['first to last step', duration(seconds)] as [string, string]] : []),
  ]
  return section('Summary', `<dl class="summary">${items.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>`)
}

function samplesSection({ grids, total }: { grids: StepFile[]; total: number }): string {
  if (grids.length === 0) return section('Samples over time', '<p class="note">No sample grids in samples/ (the run had sampleEvery = 0, or has not reached its first sample).</p>', 'samples')
  const lastIndex = grids.length - 1
  const frames = grids.map((g, i) =>
    `<figure class="sample" data-step="${g.step}"${i === lastIndex ? '' : ' hidden'}><img alt="samples at step ${g.step}" src="${dataUri(g.path)}"></figure>`)
  const shown = total > grids.length ? ` Showing ${grids.length} of ${total} grids, evenly spread.` : ''
  return section('Samples over time', `<p>Grids from one fixed noise batch, so the same cell shows the same z as training goes on. Drag the slider.${shown}</p>
<div class="slider"><input type="range" id="sample-slider" min="0" max="${lastIndex}" value="${lastIndex}" step="1" aria-label="training step">
<output id="sample-step" for="sample-slider">step ${grids[lastIndex].step}</output></div>
<div class="frames">${frames.join('\n')}</div>
<script>
(() => {
  const slider = document.getElementById('sample-slider')
  const label = document.getElementById('sample-step')
  const frames = document.querySelectorAll('figure.sample')
  slider.addEventListener('input', () => {
    const i = Number(slider.value)
    frames.forEach((f, j) => { f.hidden = j !== i })
    label.textContent = 'step ' + frames[i].dataset.step
  })
})()
</script>`, 'samples')
}

function realVsFakeSection(real: { path?: string; note?: string }, latest: StepFile | undefined): string {
  const fake = latest ? `<figure><img id="fake-grid" alt="generated at step ${latest.step}" src="${dataUri(latest.path)}"><figcaption>Generated, step ${latest.step}</figcaption></figure>` : '<p class="note">No sample grid yet.</p>'
  const realHtml = real.path ? `<figure><img id="real-grid" alt="real training images" src="${dataUri(real.path)}"><figcaption>Real training images</figcaption></figure>` : `<p class="note" id="real-note">Real images not shown: ${esc(real.note ?? '')}</p>`
  return section('Real vs fake', `<div class="side-by-side">${realHtml}${fake}</div>`, 'real-vs-fake')
}

function evalSection(evaluation: { value?: unknown; missing?: boolean; error?: string }): string {
  if (evaluation.missing) return section('Evaluation', '<p class="note">No eval.json in the run folder (run the evaluation to add FID, Inception Score and class coverage here).</p>', 'evaluation')
  if (evaluation.error) return section('Evaluation', `<p class="note">${esc(evaluation.error)}</p>`, 'evaluation')
  const v = evaluation.value
  if (!isRecord(v)) return section('Evaluation', valueHtml(v), 'evaluation')
  // generated vs real side by side when both are there; everything else as plain rows.
  const sides = ['generated', 'real'].filter((k) => isRecord(v[k]))
  const rest = Object.fromEntries(Object.entries(v).filter(([k]) => !sides.includes(k)))
  const parts: string[] = []
  if (Object.keys(rest).length) parts.push(tableHtml(rest, 'eval'))
  if (sides.length) {
    const keys = [...new Set(sides.flatMap((s) => Object.keys(v[s] as object)))]
    const head = `<tr><th></th>${sides.map((s) => `<th>${esc(s)}</th>`).join('')}</tr>`
    const body = keys.map((k) => `<tr><th>${esc(k)}</th>${sides.map((s) => `<td>${valueHtml((v[s] as Record<string, unknown>)[k])}</td>`).join('')}</tr>`)
    parts.push(`<table class="eval compare">${head}${body.join('')}</table>`)
  }
  return section('Evaluation', parts.join('\n'), 'evaluation')
}

function configSection(config: { value?: unknown; missing?: boolean; error?: string }): string {
  if (config.missing) return section('Config', '<p class="note">No config.json in the run folder.</p>', 'config')
  if (config.error) return section('Config', `<p class="note">${esc(config.error)}</p>`, 'config')
  return section('Config', isRecord(config.value) ? tableHtml(flatten(config.value), 'config') : valueHtml(config.value), 'config')
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** `{ dataset: { kind: 'mnist' } }` → `{ 'dataset.kind': 'mnist' }`: one row per setting. */
function flatten(o: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) {
    if (isRecord(v) && Object.keys(v).length) Object.assign(out, flatten(v, `${prefix}${k}.`))
    else out[prefix + k] = v
  }
  return out
}

function tableHtml(o: Record<string, unknown>, cls: string): string {
  return `<table class="${cls}">${Object.entries(o).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${valueHtml(v)}</td></tr>`).join('')}</table>`
}

/** Any JSON value, readably: numbers rounded, number lists as small bar charts, objects as tables. */
function valueHtml(v: unknown): string {
  if (v === null || v === undefined) return '—'
  if (typeof v === 'number') return fmt(v)
  if (typeof v !== 'object') return esc(String(v))
  if (Array.isArray(v)) {
    if (v.length > 0 && v.length <= 256 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return barsSvg(v as number[])
    return v.map(valueHtml).join(', ')
  }
  return tableHtml(v as Record<string, unknown>, 'nested')
}

/** A histogram (e.g. generated images per class) as a tiny inline bar chart with its numbers. */
function barsSvg(values: number[]): string {
  const max = Math.max(...values.map(Math.abs), 1e-12)
  const w = 14
  const h = 40
  const bars = values.map((x, i) => {
    const bh = (Math.abs(x) / max) * h
    return `<rect x="${i * w + 1}" y="${(h - bh).toFixed(1)}" width="${w - 2}" height="${bh.toFixed(1)}" fill="#1f77b4"><title>${i}: ${fmt(x)}</title></rect>`
  })
  return `<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="${values.length * w}" height="${h}" viewBox="0 0 ${values.length * w} ${h}">${bars.join('')}</svg><div class="values">${values.map(fmt).join(', ')}</div>`
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1560px; padding: 16px 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
#training-curves { display: flex; flex-wrap: wrap; gap: 16px; } #training-curves h2 { flex-basis: 100%; }
figure { margin: 0; } figure.chart { flex: 0 1 700px; } figure.chart svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: 13px; max-width: 720px; }
img { image-rendering: pixelated; max-width: 100%; min-width: 360px; }
.slider { display: flex; align-items: center; gap: 12px; margin: 8px 0; } .slider input { width: min(600px, 70vw); }
.side-by-side { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.note { color: #8a5a00; }
table { border-collapse: collapse; } th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; } table + table { margin-top: 12px; } table.nested th { background: #fbfbfb; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; } dt { font-weight: 600; } dd { margin: 0; }
.values { font-size: 12px; color: #555; }
`

function page(runDir: string, sections: string[]): string {
  const title = `DCGAN training report: ${basename(resolve(runDir))}`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p>Written ${esc(new Date().toISOString())}. Self-contained: opens from disk with no network.</p>
${sections.join('\n')}
</body>
</html>
`
}
