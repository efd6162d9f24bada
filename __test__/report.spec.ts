// The training report: a tiny real run, its page opened in headless Chromium and checked for what a
// person would see (charts drawn, images decoded, the slider moving, tables filled, no network).
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ErrorCode, REPORT_CHART_FILES, saveImageGrid, Trainer, writeReport } from '../src/index'
import { IN_CI, testNeeding } from './helpers'

const CHROMIUM = '/usr/bin/chromium'
const CLI = join(__dirname, '..', 'dist', 'cli.js')
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-report-'))

// What the evaluation writes (its schema may grow: the page must show whatever keys are there).
const EVAL = {
  kind: 'mnist',
  samples: 1000,
  generated: { fid: 123.456, inceptionScore: 2.5, classHistogram: [90, 110, 100, 95, 105, 100, 98, 102, 97, 103], classesCovered: 10 },
  real: { fid: 0.5, inceptionScore: 9.1, classHistogram: [100, 100, 100, 100, 100, 100, 100, 100, 100, 100], classesCovered: 10 },
  step: 6,
  checkpoint: 'checkpoints/step-00000006.safetensors',
}

/** A 6-step run with grids at steps 2, 4, 6, an eval.json, and its report. */
const tinyRun = (async () => {
  const outDir = join(tmp(), 'run')
  await new Trainer({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, batchSize: 8, steps: 6, sampleEvery: 2, checkpointEvery: 100, device: 'cpu', seed: 1, outDir, dataset: { kind: 'mnist', limit: 64 } }).fit({ progress: false })
  writeFileSync(join(outDir, 'eval.json'), JSON.stringify(EVAL))
  const html = await writeReport(outDir)
  return { outDir, html }
})()

/** Width and height from a PNG's IHDR, after checking the signature. */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file)
  if (!b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error(`${file}: no PNG signature`)
  if (b.toString('latin1', 12, 16) !== 'IHDR') throw new Error(`${file}: first chunk is not IHDR`)
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
}

test('writes report.html, real.png and the charts as PNG files', async (t) => {
  const { outDir, html } = await tinyRun
  t.is(html, join(outDir, 'report.html'))
  for (const name of REPORT_CHART_FILES) t.deepEqual(pngSize(join(outDir, 'charts', name)), { width: 720, height: 300 }, name)
  t.deepEqual(pngSize(join(outDir, 'real.png')), { width: 8 * 18 + 2, height: 8 * 18 + 2 }) // 64 images of 16 px, 8 a row
  // Every image is inside the page; nothing is linked from outside it.
  const page = readFileSync(html, 'utf8')
  t.notRegex(page, /(src|href)="(?!data:)/)
  t.notRegex(page, /url\(/)
})

const chromiumNeed = {
  met: existsSync(CHROMIUM),
  required: IN_CI, // .ci/run installs it
  reason: `${CHROMIUM} is absent; install it with \`apt-get install -y chromium\` to check the page in a browser`,
}

testNeeding('the page in Chromium: charts drawn, images shown, slider, tables, no request leaves the file', chromiumNeed, async (t) => {
  const { html } = await tinyRun
  const { chromium } = await import('playwright-core')
  const userDataDir = tmp()
  // The background-networking flags keep Chromium from calling home: this machine has no network.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(async () => {
    await context.close()
    rmSync(userDataDir, { recursive: true, force: true })
  })
  const requests: string[] = []
  const problems: string[] = []
  const page = await context.newPage()
  page.on('request', (r) => void requests.push(r.url()))
  page.on('pageerror', (e) => void problems.push(`page error: ${e.message}`))
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`))) // e.g. a CSP violation
  await page.goto(pathToFileURL(html).href, { waitUntil: 'load' })

  // Charts: one polyline per metric with a point per step, non-empty geometry, the 1/2 line.
  const lines = await page.$$eval('figure.chart polyline.series', (ps) =>
    ps.map((p) => {
      const box = (p as SVGPolylineElement).getBBox()
      return { chart: p.closest('figure')!.id, series: p.getAttribute('data-series'), points: (p as SVGPolylineElement).points.length, width: box.width, height: box.height }
    }))
  t.deepEqual(lines.map((l) => `${l.chart}/${l.series}:${l.points}`), ['chart-losses/lossD:6', 'chart-losses/lossG:6', 'chart-d-outputs/dReal:6', 'chart-d-outputs/dFake:6', 'chart-speed/imagesPerSec:6'])
  for (const l of lines) t.true(l.width > 100 && l.height > 0, `${l.chart}/${l.series} is drawn: ${l.width}×${l.height}`)
  t.is(await page.locator('#chart-d-outputs line.reference[data-y="0.5"]').count(), 1)

  // Images: every one decoded (3 grids on the slider, real and fake side by side).
  const images = await page.$$eval('img', (is) => is.map((i) => ({ id: i.id, alt: i.alt, width: (i as HTMLImageElement).naturalWidth })))
  t.is(images.length, 5)
  for (const i of images) t.true(i.width > 0, `${i.alt} has naturalWidth ${i.width}`)
  t.true(images.some((i) => i.id === 'real-grid') && images.some((i) => i.id === 'fake-grid'))

  // The slider: starts at the last grid; moving it shows another grid and its step.
  const shown = async () => ({ label: await page.locator('#sample-step').textContent(), steps: await page.$$eval('figure.sample', (fs) => fs.filter((f) => (f as HTMLElement).offsetParent !== null).map((f) => (f as HTMLElement).dataset.step)) })
  t.deepEqual(await shown(), { label: 'step 6', steps: ['6'] })
  await page.locator('#sample-slider').fill('0')
  t.deepEqual(await shown(), { label: 'step 2', steps: ['2'] })
  await page.locator('#sample-slider').fill('1')
  t.deepEqual(await shown(), { label: 'step 4', steps: ['4'] })

  // Tables: the config as written, and the evaluation's numbers side by side.
  t.is(await page.locator('table.config tr', { has: page.locator('th', { hasText: /^batchSize$/ }) }).locator('td').textContent(), '8')
  t.is(await page.locator('table.config tr', { has: page.locator('th', { hasText: /^dataset\.limit$/ }) }).locator('td').textContent(), '64')
  const fidRow = await page.locator('table.compare tr', { has: page.locator('th', { hasText: /^fid$/ }) }).locator('td').allTextContents()
  t.deepEqual(fidRow, ['123.5', '0.5'])
  t.is(await page.locator('table.compare svg.bars').count(), 2) // the class histograms
  t.true((await page.locator('#evaluation').textContent())!.includes('checkpoints/step-00000006.safetensors'))

  t.deepEqual(problems, [])
  t.true(requests.some((u) => u.startsWith('file:')), 'requests are recorded')
  t.deepEqual(requests.filter((u) => !/^(file|data):/.test(u)), [])
})

test('long runs are averaged down to at most maxPoints per line; torn and repeated lines are handled', async (t) => {
  const dir = tmp()
  const rows: string[] = []
  for (let step = 1; step <= 5000; step++) {
    const noise = Math.sin(step * 12.9898) * 0.2
    rows.push(JSON.stringify({ step, epoch: 0, lossD: 1 + noise, lossG: 2 - noise, dReal: 0.6 + noise, dFake: 0.4 - noise, dFakeAfter: 0.3, stepMs: 10, imagesPerSec: 800 + step / 100, time: new Date(step * 1000).toISOString() }))
  }
  // A resume logs steps 4001.. again (the later lines count); training was writing the last line.
  rows.push(JSON.stringify({ step: 4001, lossD: 9, lossG: 9, dReal: 0.5, dFake: 0.5, imagesPerSec: 800 }), '{"step": 5001, "lossD"')
  writeFileSync(join(dir, 'metrics.jsonl'), rows.join('\n'))
  const page = readFileSync(await writeReport(dir, { maxPoints: 500, pngCharts: false }), 'utf8')
  const points = (series: string) => new RegExp(`data-series="${series}" points="([^"]*)"`).exec(page)![1].trim().split(' ').length
  for (const s of ['lossD', 'lossD-avg', 'lossG', 'dReal', 'dFake-avg', 'imagesPerSec']) t.is(points(s), 500, s)
  t.true(page.length < 400_000, `page is ${page.length} bytes`)
  // What is missing is said, not an error: no config, no samples, no eval, no dataset to show.
  for (const note of ['No config.json', 'No sample grids', 'No eval.json', 'Real images not shown']) t.true(page.includes(note), note)
  t.false(existsSync(join(dir, 'charts')))
})

test('a folder without metrics.jsonl: the error says what is missing', async (t) => {
  const dir = tmp()
  await t.throwsAsync(writeReport(dir), { message: /has no metrics\.jsonl; is it the output folder of `dcgan train`/ })
  await t.throwsAsync(writeReport(join(dir, 'nope')), { message: /nope: no such run folder/ })
  writeFileSync(join(dir, 'a.png'), 'not a folder')
  await t.throwsAsync(writeReport(join(dir, 'a.png')), { message: /a\.png: is a file, not a run folder; give the --out folder of a training run$/ })
  mkdirSync(join(dir, 'empty'))
  writeFileSync(join(dir, 'empty', 'metrics.jsonl'), '')
  await t.throwsAsync(writeReport(join(dir, 'empty')), { message: /holds no training steps yet/ })
})

test('CLI: `dcgan report <runDir>` prints the files; a bad folder exits 1 with one line', async (t) => {
  t.true(existsSync(CLI), 'dist/cli.js is built (npm test builds it)')
  const { outDir } = await tinyRun
  const ok = spawnSync(process.execPath, [CLI, 'report', outDir], { encoding: 'utf8' })
  t.is(ok.status, 0, ok.stderr)
  t.deepEqual(ok.stdout.trim().split('\n'), [join(outDir, 'report.html'), ...REPORT_CHART_FILES.map((f) => join(outDir, 'charts', f))])
  const bad = spawnSync(process.execPath, [CLI, 'report', tmp()], { encoding: 'utf8' })
  t.is(bad.status, 1)
  t.regex(bad.stderr, /^dcgan: .*has no metrics\.jsonl.*\n$/)
})

test('CLI: `dcgan train` writes the report at the end', (t) => {
  const run = join(tmp(), 'run')
  const r = spawnSync(process.execPath, [CLI, 'train', '--image-size', '16', '--features-g', '4', '--features-d', '4', '--z-dim', '16', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--steps', '2', '--sample-every', '1', '--out', run], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.regex(r.stderr, new RegExp(`report ${join(run, 'report.html').replace(/[.]/g, '\\.')}`))
  t.true(existsSync(join(run, 'report.html')) && existsSync(join(run, 'charts', 'losses.png')))
})

/** A metrics line as the trainer writes it, with `extra` over it. */
const metricLine = (step: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ step, epoch: 0, lossD: 1.2, lossG: 0.8, dReal: 0.6, dFake: 0.4, dFakeAfter: 0.3, stepMs: 10, imagesPerSec: 800, time: new Date(step * 1000).toISOString(), ...extra })

/** A small valid PNG (a grid of four 16×16 images). */
async function writePng(file: string): Promise<void> {
  await saveImageGrid({ data: Float32Array.from({ length: 4 * 16 * 16 }, (_, i) => Math.sin(i)), shape: [4, 1, 16, 16] }, file, { nrow: 2 })
}

/** writeReport in a child process, so that a read blocking on a FIFO fails the test in seconds, not at ava's 15 min timeout. */
function reportInChild(runDir: string): { status: number | null; stdout: string; stderr: string; timedOut: boolean } {
  const code = `require(${JSON.stringify(join(__dirname, '..', 'src', 'report'))}).writeReport(${JSON.stringify(runDir)}, { pngCharts: false })
    .then((p) => console.log(p), (e) => { console.error(e.code + ' ' + e.message); process.exitCode = 1 })`
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, timedOut: r.signal === 'SIGKILL' }
}

const mkfifo = (path: string) => {
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr}`)
}

test('FIFOs in the run folder never block: metrics.jsonl is refused with ERR_DCGAN_FILE, images, config.json and eval.json get a note on the page', (t) => {
  const run = join(tmp(), 'run')
  mkdirSync(join(run, 'samples'), { recursive: true })
  writeFileSync(join(run, 'metrics.jsonl'), metricLine(1) + '\n')
  for (const f of ['samples/step-000001.png', 'real.png', 'config.json', 'eval.json']) mkfifo(join(run, f))
  const r = reportInChild(run)
  t.false(r.timedOut, 'writeReport blocked on a FIFO')
  t.is(r.status, 0, r.stderr)
  const page = readFileSync(join(run, 'report.html'), 'utf8')
  for (const f of ['samples/step-000001.png', 'real.png', 'config.json', 'eval.json']) {
    t.true(page.includes(`${join(run, f)}: is a FIFO (named pipe); only regular files are read`), f)
  }
  t.is((page.match(/<img /g) ?? []).length, 0)

  const fifoMetrics = join(tmp(), 'run')
  mkdirSync(fifoMetrics)
  mkfifo(join(fifoMetrics, 'metrics.jsonl'))
  const bad = reportInChild(fifoMetrics)
  t.false(bad.timedOut, 'writeReport blocked on metrics.jsonl, a FIFO')
  t.is(bad.status, 1)
  t.is(bad.stderr.trim(), `${ErrorCode.FILE} ${join(fifoMetrics, 'metrics.jsonl')}: is a FIFO (named pipe); only regular files are read`)
})

test('an image that is not a PNG is not embedded; metrics lines too long to be the trainer\'s are skipped', async (t) => {
  const run = join(tmp(), 'run')
  mkdirSync(join(run, 'samples'), { recursive: true })
  writeFileSync(join(run, 'metrics.jsonl'), [metricLine(1), metricLine(2, { pad: 'x'.repeat(70_000) }), metricLine(3)].join('\n'))
  writeFileSync(join(run, 'samples', 'step-000003.png'), 'secret text, not an image')
  writeFileSync(join(run, 'real.png'), 'not a PNG either')
  const page = readFileSync(await writeReport(run, { pngCharts: false }), 'utf8')
  t.true(page.includes(`${join(run, 'samples', 'step-000003.png')}: is not a PNG file`))
  t.true(page.includes(`${join(run, 'real.png')}: is not a PNG file`))
  t.false(page.includes(Buffer.from('secret text, not an image').toString('base64')))
  t.regex(page, /data-series="lossD" points="\S+ \S+"/) // steps 1 and 3: the 70 KB line is not read
})

test('values from the run folder are escaped; the CSP allows only the page\'s own script and style, by hash', async (t) => {
  // The folder's name, metrics, config and evaluation all carry markup.
  const evil = '<img src=x onerror=alert(1)><script>alert(2)</script>'
  const run = join(tmp(), `run-${evil}`)
  mkdirSync(join(run, 'samples'), { recursive: true })
  writeFileSync(join(run, 'metrics.jsonl'), [
    metricLine(1),
    metricLine(2, { epoch: `0)</dd>${evil}<dd>(`, lossD: evil, time: evil }),
  ].join('\n'))
  writeFileSync(join(run, 'config.json'), JSON.stringify({ imageSize: 16, [evil]: evil, dataset: { kind: evil, path: evil } }))
  // Nested far deeper than any table: shown cut short, not a stack overflow.
  const evalJson = JSON.stringify({ [evil]: [evil, { [evil]: evil }], generated: { [evil]: evil }, real: { fid: 1 } })
  writeFileSync(join(run, 'eval.json'), `${evalJson.slice(0, -1)},"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)
  await writePng(join(run, 'samples', 'step-000002.png'))
  const page = readFileSync(await writeReport(run, { pngCharts: false }), 'utf8')
  t.false(page.includes('<img src=x'))
  t.false(page.includes('<script>alert'))
  t.false(page.includes('</dd><img'))
  t.true(page.includes(`run-&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;`), 'the folder name, escaped')
  t.true(page.includes('<tr><th>deep</th><td>…</td></tr>'), 'deep nesting cut short')
  t.true(page.includes('Real images not shown: config.json names a &lt;img src=x'), 'the dataset kind, escaped')
  // Exactly one inline script (the slider) and one style sheet, each allowed by its hash only.
  const scripts = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1])
  const styles = [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1])
  t.is((page.match(/<script/g) ?? []).length, 1)
  t.is(scripts.length, 1)
  t.is(styles.length, 1)
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(page)![1]
  const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`
  t.is(csp, `default-src 'none'; img-src data:; style-src ${hash(styles[0])}; script-src ${hash(scripts[0])}; base-uri 'none'; form-action 'none'`)
  t.false(csp.includes('unsafe-inline'))
})

test('real.png is never drawn from a path named in config.json, only from a dataset the caller passes', async (t) => {
  const images = join(tmp(), 'private')
  mkdirSync(images)
  for (let i = 0; i < 4; i++) await writePng(join(images, `${i}.png`))
  const run = join(tmp(), 'run')
  mkdirSync(run)
  writeFileSync(join(run, 'metrics.jsonl'), metricLine(1))
  const dataset = { kind: 'folder' as const, path: images, limit: 4 }
  writeFileSync(join(run, 'config.json'), JSON.stringify({ imageSize: 16, channels: 1, seed: 0, dataset }))
  let page = readFileSync(await writeReport(run, { pngCharts: false }), 'utf8')
  t.false(existsSync(join(run, 'real.png')), 'the folder named in config.json was opened')
  t.regex(page, /Real images not shown: config\.json names a folder dataset; the report does not open paths read from the run folder/)
  // The caller's own dataset: drawn, saved and shown (4 images of 16 px, 8 a row).
  page = readFileSync(await writeReport(run, { pngCharts: false, dataset }), 'utf8')
  t.true(existsSync(join(run, 'real.png')))
  t.deepEqual(pngSize(join(run, 'real.png')), { width: 4 * 18 + 2, height: 18 + 2 })
  t.true(page.includes('id="real-grid"'))
})
