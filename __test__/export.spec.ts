// Exports: the ONNX file run in onnxruntime-node against the library's own forward pass, the reader
// refusing files that are not ours, the page's latent draws against the library's, and the web
// page opened in headless Chromium.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as ort from 'onnxruntime-node'
import { DCGAN, type DCGANOptions, ErrorCode, exportOnnx, exportWeb, readOnnxInfo, type Tensor, Trainer } from '../src/index'
import { IN_CI, maxAbsDiff, testNeeding } from './helpers'

const CHROMIUM = '/usr/bin/chromium'
const CLI = join(__dirname, '..', 'dist', 'cli.js')
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-export-'))
// The page's scripts, as Node modules (they are classic scripts that also export under Node).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pageLatent = require('../web/latent.js') as { latent: (n: number, zDim: number, seed: number) => Float32Array }

/** A deterministic stream of numbers in [0, 1). */
function uniformStream(seed: number): () => number {
  let state = seed
  return () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
}

/** Writes float32 tensors (and int64 scalars for `num_batches_tracked`) as a safetensors file. */
function writeSafetensors(path: string, tensors: Map<string, Tensor>): void {
  const header: Record<string, unknown> = {}
  const chunks: Buffer[] = []
  let offset = 0
  for (const [name, t] of tensors) {
    const int64 = name.endsWith('num_batches_tracked')
    const bytes = int64 ? Buffer.from(BigInt64Array.from(t.data, (v) => BigInt(v)).buffer) : Buffer.from(Float32Array.from(t.data).buffer)
    header[name] = { dtype: int64 ? 'I64' : 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] }
    chunks.push(bytes)
    offset += bytes.length
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.length))
  writeFileSync(path, Buffer.concat([length, Buffer.from(json), ...chunks]))
}

/**
 * A model whose every tensor matters. Two training steps, then weights scaled so that signals
 * neither vanish nor saturate (the seed's N(0, 0.02) with few features gives nearly constant
 * images in evaluation mode, which would hide a wrong layer), running means in [−0.5, 0.5] and
 * variances in [1, 4] (an exporter that swapped or dropped them fails), BatchNorm biases ±0.2.
 */
async function trainedModel(options: DCGANOptions): Promise<DCGAN> {
  const gan = await DCGAN.create({ featuresD: 4, init: 'pytorch-example', device: 'cpu', seed: 3, ...options })
  const { channels = 1, imageSize = 64 } = options
  const random = uniformStream(12345)
  for (let step = 0; step < 2; step++) {
    const data = Float32Array.from({ length: 4 * channels * imageSize * imageSize }, () => 2 * random() - 1)
    await gan.trainStep({ data, shape: [4, channels, imageSize, imageSize] })
  }
  const state = await gan.state()
  for (const [name, t] of state) {
    const blockOf = /^(gen|disc)\.\d+\.1\.(\w+)$/.exec(name)
    if (blockOf?.[2] === 'running_mean') t.data = t.data.map(() => random() - 0.5)
    else if (blockOf?.[2] === 'running_var') t.data = t.data.map(() => 1 + 3 * random())
    else if (blockOf?.[2] === 'bias') t.data = t.data.map(() => 0.4 * random() - 0.2)
    else if (!blockOf && name.endsWith('.weight')) t.data = t.data.map((v) => 10 * v)
  }
  const path = join(tmp(), 'weights.safetensors')
  writeSafetensors(path, state)
  await gan.loadWeights(path)
  return gan
}

async function runOnnx(path: string, feeds: Record<string, Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(path)
  return session.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.shape)])))
}

/** Standard deviation of the values: the comparison below must be of images, not of constants. */
function spread(v: Float32Array): number {
  const mean = v.reduce((s, x) => s + x, 0) / v.length
  return Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length)
}

const SIZES: Array<{ imageSize: number; channels: 1 | 3; zDim: number; featuresG: number }> = [
  { imageSize: 16, channels: 1, zDim: 8, featuresG: 4 },
  { imageSize: 32, channels: 1, zDim: 16, featuresG: 4 },
  { imageSize: 64, channels: 1, zDim: 100, featuresG: 4 },
  { imageSize: 32, channels: 3, zDim: 16, featuresG: 6 },
  { imageSize: 256, channels: 3, zDim: 8, featuresG: 2 },
]

for (const cfg of SIZES) {
  test(`generator ${cfg.imageSize}×${cfg.imageSize}×${cfg.channels} in onnxruntime-node equals gan.generate within 1e-4, for batches of 5 and 1`, async (t) => {
    const gan = await trainedModel(cfg)
    const path = join(tmp(), 'generator.onnx')
    const info = await exportOnnx(gan, path)
    t.like(info, { format: 'dcgan-onnx/1', what: 'generator', opset: 17, weights: 'generator', steps: 2 })
    t.deepEqual(info.input, { name: 'z', shape: [null, cfg.zDim, 1, 1] })
    t.deepEqual(info.output, { name: 'images', shape: [null, cfg.channels, cfg.imageSize, cfg.imageSize] })
    t.deepEqual(await readOnnxInfo(path), info)
    for (const n of [5, 1]) {
      const expected = await gan.generate(n, { seed: 7 })
      const z = await gan.latent(n, 7)
      const { images } = await runOnnx(path, { z: { data: z, shape: [n, cfg.zDim, 1, 1] } })
      t.deepEqual(images.dims, expected.shape)
      t.true(spread(expected.data) > 0.1, `the images vary (spread ${spread(expected.data)})`)
      const d = maxAbsDiff(images.data as Float32Array, expected.data)
      t.true(d <= 1e-4, `n = ${n}: max |ONNX − libtorch| = ${d}`)
    }
  })
}

test('discriminator in onnxruntime-node equals gan.discriminate within 1e-4', async (t) => {
  const gan = await trainedModel({ imageSize: 32, channels: 3, zDim: 16, featuresG: 4 })
  const path = join(tmp(), 'discriminator.onnx')
  const info = await exportOnnx(gan, path, { what: 'discriminator' })
  t.like(info, { what: 'discriminator', weights: 'discriminator' })
  t.deepEqual(info.output, { name: 'probabilities', shape: [null] })
  const images = await gan.generate(6, { seed: 2 })
  const expected = await gan.discriminate(images)
  t.true(expected.some((p) => p > 0.01 && p < 0.99), `not all saturated: ${expected}`)
  const { probabilities } = await runOnnx(path, { images })
  t.deepEqual(probabilities.dims, [6])
  const d = maxAbsDiff(probabilities.data as Float32Array, expected)
  t.true(d <= 1e-4, `max |ONNX − libtorch| = ${d}`)
})

test('with emaDecay the moving average is exported, as gan.generate samples it', async (t) => {
  const cfg = { imageSize: 16, channels: 1 as const, zDim: 8, featuresG: 4, emaDecay: 0.5, lr: 0.05 }
  const gan = await trainedModel(cfg)
  // Steps after loadWeights (which restarts the average) move the generator away from its average.
  const random = uniformStream(99)
  for (let step = 0; step < 2; step++) {
    await gan.trainStep({ data: Float32Array.from({ length: 4 * 16 * 16 }, () => 2 * random() - 1), shape: [4, 1, 16, 16] })
  }
  const state = await gan.state()
  const live = state.get('gen.0.0.weight')!.data
  const average = state.get('ema.gen.0.0.weight')!.data
  t.true(maxAbsDiff(live, average) > 1e-3, 'the average differs from the trained generator')
  const path = join(tmp(), 'generator.onnx')
  const info = await exportOnnx(gan, path)
  t.is(info.weights, 'ema')
  const expected = await gan.generate(5, { seed: 7 })
  const { images } = await runOnnx(path, { z: { data: await gan.latent(5, 7), shape: [5, 8, 1, 1] } })
  const d = maxAbsDiff(images.data as Float32Array, expected.data)
  t.true(d <= 1e-4, `max |ONNX − libtorch| = ${d}`)
})

test('a spectrally normalised discriminator is refused with a message, not exported wrong', async (t) => {
  const gan = await DCGAN.create({ imageSize: 16, featuresG: 2, featuresD: 2, zDim: 4, device: 'cpu', spectralNorm: true })
  const e = await t.throwsAsync(exportOnnx(gan, join(tmp(), 'd.onnx'), { what: 'discriminator' }))
  t.regex(e!.message, /spectral normalisation.*export the generator/)
  t.like(await exportOnnx(gan, join(tmp(), 'g.onnx')), { what: 'generator' })
})

test('an unknown network to export is refused, naming the option', async (t) => {
  const gan = await DCGAN.create({ imageSize: 16, featuresG: 2, featuresD: 2, zDim: 4, device: 'cpu' })
  const e = await t.throwsAsync(exportOnnx(gan, join(tmp(), 'x.onnx'), { what: 'encoder' as 'generator' }))
  t.is((e as { code?: string }).code, 'ERR_DCGAN_INVALID_OPTION')
  t.regex(e!.message, /invalid what: got 'encoder'; allowed: 'generator', 'discriminator'/)
})

test('files that are not our ONNX models are refused clearly', async (t) => {
  const dir = tmp()
  const gan = await DCGAN.create({ imageSize: 16, featuresG: 2, featuresD: 2, zDim: 4, device: 'cpu' })
  const ours = join(dir, 'ours.onnx')
  await exportOnnx(gan, ours)
  const bytes = readFileSync(ours)
  const cases: Array<[string, Buffer, RegExp]> = [
    ['garbage', Buffer.from('this is not protobuf \u0000\u00ff\u00fe at all'), /not a valid ONNX \(protobuf\) file/],
    ['truncated', bytes.subarray(0, Math.floor(bytes.length / 2)), /not a valid ONNX \(protobuf\) file/],
    ['empty', Buffer.alloc(0), /no producer named/],
    // Another producer's model: the same protobuf, another producer_name.
    ['foreign', Buffer.from(bytes.toString('latin1').replace('\u0012\u0005dcgan', '\u0012\u0005torch'), 'latin1'), /produced by 'torch'/],
    // A dcgan checkpoint is safetensors, not ONNX.
    ['checkpoint', await (async () => { const p = join(dir, 'ckpt.safetensors'); await gan.save(p); return readFileSync(p) })(), /not a valid ONNX \(protobuf\) file|no producer named/],
  ]
  for (const [name, content, why] of cases) {
    const path = join(dir, `${name}.onnx`)
    writeFileSync(path, content)
    const e = await t.throwsAsync(readOnnxInfo(path), undefined, name)
    t.is((e as { code?: string }).code, 'ERR_DCGAN_FILE', name)
    t.true(e!.message.startsWith(`${path}: not an ONNX model written by dcgan: `), `${name}: ${e!.message}`)
    t.regex(e!.message, why, name)
  }
  // The patched-producer file is still a valid ONNX model: only our reader refuses it.
  const session = await ort.InferenceSession.create(join(dir, 'foreign.onnx'))
  t.deepEqual(session.inputNames, ['z'])
})

test("the page's latent draws equal gan.latent bit for bit, including the ziggurat's tail", async (t) => {
  const zDim = 100
  const gan = await DCGAN.create({ imageSize: 16, featuresG: 2, featuresD: 2, zDim, device: 'cpu' })
  let tail = 0
  for (const seed of [0, 1, 7, 123456789, 2 ** 40 + 3]) {
    const expected = await gan.latent(1000, seed)
    const actual = pageLatent.latent(1000, zDim, seed)
    const first = expected.findIndex((v, i) => !Object.is(v, actual[i]))
    t.is(first, -1, `seed ${seed}: first difference at ${first}: ${actual[first]} vs ${expected[first]}`)
    tail += expected.filter((v) => Math.abs(v) > 3.654152885361008796).length
  }
  // Values beyond the ziggurat's base strip come from its zero case (two logarithms): taken.
  t.true(tail > 10, `only ${tail} draws beyond the ziggurat's base`)
})

test('dcgan export: onnx and web from a run folder, --what discriminator, bad combinations refused', async (t) => {
  const outDir = join(tmp(), 'run')
  await new Trainer({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, batchSize: 8, steps: 2, sampleEvery: 0, checkpointEvery: 100, device: 'cpu', seed: 1, outDir, dataset: { kind: 'mnist', limit: 16 } }).fit({ progress: false })
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'export', '--checkpoint', outDir, ...args], { encoding: 'utf8' })
  const onnx = join(tmp(), 'g.onnx')
  let r = cli('--format', 'onnx', '--out', onnx)
  t.is(r.status, 0, r.stderr)
  t.regex(r.stderr, /wrote .*g\.onnx \(\d+ bytes\): generator, opset 17, input z \[n,8,1,1\], output images \[n,1,16,16\]/)
  t.like(await readOnnxInfo(onnx), { what: 'generator', steps: 2 })
  const disc = join(tmp(), 'd.onnx')
  r = cli('--format', 'onnx', '--out', disc, '--what', 'discriminator')
  t.is(r.status, 0, r.stderr)
  t.like(await readOnnxInfo(disc), { what: 'discriminator' })
  const site = join(tmp(), 'site')
  r = cli('--format', 'web', '--out', site, '--seed', '5')
  t.is(r.status, 0, r.stderr)
  t.deepEqual(readdirSync(site).sort(), ['NOTICE.txt', 'app.js', 'generator.onnx', 'index.html', 'latent.js', 'model.js', 'ort-wasm.js', 'ziggurat-tables.js'])
  r = cli('--format', 'web', '--out', site, '--what', 'discriminator')
  t.is(r.status, 1)
  t.regex(r.stderr, /^dcgan: --format web exports the generator only/)
  r = cli('--format', 'tflite', '--out', site)
  t.not(r.status, 0)
  t.regex(r.stderr, /Allowed choices are onnx, web/)
  r = cli('--format', 'onnx', '--out', join(tmp(), 'x.onnx'), '--seed', '5')
  t.is(r.status, 1)
  t.regex(r.stderr, /^dcgan: --seed is the web page's first seed \(--format web\): drop it for --format onnx\n$/)
  r = cli('--format', 'web', '--out', join(tmp(), 'x'), '--seed', '')
  t.is(r.status, 1)
  t.regex(r.stderr, /option '--seed <n>' argument '' is invalid\. '' is not an integer\./)
})

test('a web export that fails leaves no half-written site: a folder it made goes, files it added go', async (t) => {
  const gan = await DCGAN.create({ imageSize: 16, zDim: 8, featuresG: 4, featuresD: 4, device: 'cpu', seed: 1 })
  // index.html is written after the 19 MB of model and runtime: a folder in its place fails it late.
  const site = join(tmp(), 'site')
  mkdirSync(join(site, 'index.html'), { recursive: true })
  writeFileSync(join(site, 'mine.txt'), "the user's")
  await t.throwsAsync(exportWeb(gan, site), { code: ErrorCode.FILE, message: /index\.html/ })
  t.deepEqual(readdirSync(site).sort(), ['index.html', 'mine.txt'], "files added by the failed export are gone, the user's stay")
  // Under a file: the folder cannot be made, and the error is that, with its code.
  const file = join(tmp(), 'afile')
  writeFileSync(file, 'x')
  await t.throwsAsync(exportWeb(gan, join(file, 'site')), { code: ErrorCode.FILE, message: /afile\/site: cannot create the folder/ })
  const fresh = join(tmp(), 'site')
  // A seed that is not one is refused before anything is written.
  await t.throwsAsync(exportWeb(gan, fresh, { seed: 2 ** 60 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid seed: got 1152921504606847000; allowed: an integer from 0 to 9007199254740991' })
  t.false(existsSync(fresh))
})

test("a web page's title is put in as text: one that reads like the template's placeholders stays text", async (t) => {
  const gan = await DCGAN.create({ imageSize: 16, zDim: 8, featuresG: 4, featuresD: 4, device: 'cpu', seed: 1 })
  const site = join(tmp(), 'site')
  await exportWeb(gan, site, { title: 'Digits {{ORT_MODULE}} {{ORT_VERSION}} {{TITLE}}' })
  const html = readFileSync(join(site, 'index.html'), 'utf8')
  t.is(html.match(/<title>(.*)<\/title>/)![1], 'Digits {{ORT_MODULE}} {{ORT_VERSION}} {{TITLE}}')
  t.is(html.split('globalThis.ort = {').length, 2, "onnxruntime's module is in the page once, in its own slot")
  t.true(html.indexOf('globalThis.ort = {') > html.indexOf('</title>'))
})

test('exportWeb replaces symbolic links already in the output folder, never writing through them', async (t) => {
  const gan = await DCGAN.create({ imageSize: 16, zDim: 8, featuresG: 4, featuresD: 4, device: 'cpu', seed: 1 })
  const root = tmp()
  const site = join(root, 'site')
  mkdirSync(site)
  const names = ['index.html', 'generator.onnx', 'model.js', 'ort-wasm.js', 'ziggurat-tables.js', 'latent.js', 'app.js', 'NOTICE.txt']
  for (const name of names) {
    writeFileSync(join(root, `victim-${name}`), `victim ${name}\n`)
    symlinkSync(join(root, `victim-${name}`), join(site, name))
  }
  const files = await exportWeb(gan, site)
  t.deepEqual(files.map((f) => f.name).sort(), [...names].sort())
  for (const name of names) {
    t.true(readFileSync(join(root, `victim-${name}`), 'utf8') === `victim ${name}\n`, `${name} was written through its link`)
    t.true(lstatSync(join(site, name)).isFile(), `${name} is a regular file now`)
    t.is(files.find((f) => f.name === name)!.bytes, lstatSync(join(site, name)).size, name)
  }
  t.like(await readOnnxInfo(join(site, 'generator.onnx')), { what: 'generator' })
})

test('exportWeb into a folder that cannot be made (under /proc) fails at once with ERR_DCGAN_FILE', (t) => {
  // In a child process: Node 20's mkdirSync(recursive) spins there forever, blocking the event loop.
  const code = `const { DCGAN, exportWeb } = require(${JSON.stringify(join(__dirname, '..', 'src', 'index'))})
    DCGAN.create({ imageSize: 16, zDim: 8, featuresG: 4, featuresD: 4, device: 'cpu' })
      .then((gan) => exportWeb(gan, '/proc/nonexistent/site'))
      .then(() => console.log('written'), (e) => { console.error(e.code + ' ' + e.message); process.exitCode = 1 })`
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' })
  t.not(r.signal, 'SIGKILL', 'exportWeb hung')
  t.is(r.status, 1, r.stdout)
  t.regex(r.stderr, new RegExp(`^${ErrorCode.FILE} /proc/nonexistent: cannot create the folder`))
})

const chromiumNeed = {
  met: existsSync(CHROMIUM),
  required: IN_CI, // .ci/run installs it
  reason: `${CHROMIUM} is absent; install it with \`apt-get install -y chromium\` to check the page in a browser`,
}

/** The bytes a canvas shows for image k of a batch: [−1, 1] → [0, 255] as save_image rounds. */
function expectedRgba(images: Tensor, k: number): Uint8Array {
  const [, c, s] = images.shape
  const plane = s * s
  const out = new Uint8Array(4 * plane)
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = images.data[k * c * plane + (c === 1 ? 0 : ch) * plane + p]
      out[4 * p + ch] = Math.min(255, Math.max(0, Math.floor((v + 1) * 127.5 + 0.5)))
    }
    out[4 * p + 3] = 255
  }
  return out
}

testNeeding('the web page in Chromium from file://: grid equals gan.generate, walk and arithmetic drawn, no request leaves the folder', chromiumNeed, async (t) => {
  const gan = await trainedModel({ imageSize: 32, channels: 3, zDim: 16, featuresG: 8 })
  const site = join(tmp(), 'site')
  const files = await exportWeb(gan, site, { seed: 4, title: 'Digits <&> "more"' })
  t.true(files.every((f) => f.bytes > 0))
  const { chromium } = await import('playwright-core')
  const userDataDir = tmp()
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(async () => {
    await context.close()
    rmSync(userDataDir, { recursive: true, force: true })
  })
  const folder = pathToFileURL(site).href + '/'
  const outside: string[] = []
  const problems: string[] = []
  // Every request is seen here; one outside the page's folder is recorded and refused.
  await context.route('**/*', (route) => {
    const url = route.request().url()
    if (url.startsWith(folder)) return route.continue()
    outside.push(url)
    return route.abort()
  })
  const requests: string[] = []
  const page = await context.newPage()
  page.on('request', (r) => void requests.push(r.url()))
  page.on('pageerror', (e) => void problems.push(`page error: ${e.message}`))
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)))
  await page.goto(folder + 'index.html', { waitUntil: 'load' })
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', undefined, { timeout: 120_000 })
  t.is(await page.evaluate(() => document.body.dataset.state), 'ready', await page.evaluate(() => document.getElementById('status')!.textContent ?? ''))
  t.is(await page.title(), 'Digits <&> "more"')
  t.is(await page.textContent('h1'), 'Digits <&> "more"')

  // The grid of seed 4: the page's own z equal the library's, and every cell's pixels equal gan.generate's.
  t.is(await page.evaluate(() => document.body.dataset.gridSeed), '4')
  const pageZ = await page.evaluate(() => Array.from((globalThis as unknown as { dcganPage: { latent: (n: number, s: number) => Float32Array } }).dcganPage.latent(16, 4)))
  t.deepEqual(Float32Array.from(pageZ), await gan.latent(16, 4))
  const expected = await gan.generate(16, { seed: 4 })
  const cells = await page.evaluate(() => Array.from(document.querySelectorAll<HTMLCanvasElement>('#grid canvas')).map((c) => Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data)))
  t.is(cells.length, 16)
  let worst = 0
  cells.forEach((cell, k) => (worst = Math.max(worst, maxAbsDiff(cell, expectedRgba(expected, k)))))
  t.true(worst <= 1, `largest pixel difference from gan.generate: ${worst} levels`)

  // Latent arithmetic: three clicks, the result is G(z1 − z2 + z3).
  for (const k of [0, 5, 10]) await page.click(`#grid canvas[data-index="${k}"]`)
  await page.waitForFunction(() => {
    const c = document.getElementById('arith-result') as HTMLCanvasElement
    return c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v === 255)
  })
  const z = await gan.latent(16, 4)
  const zDim = 16
  const combo = Float32Array.from({ length: zDim }, (_, i) => z[i] - z[5 * zDim + i] + z[10 * zDim + i])
  const arithmetic = await page.evaluate(() => {
    const c = document.getElementById('arith-result') as HTMLCanvasElement
    return Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data)
  })
  t.true(maxAbsDiff(arithmetic, expectedRgba(await gan.generateFrom(combo), 0)) <= 1)

  // The slerp walk is being drawn: its canvas holds an image, and it changes over time.
  const walkPixels = () => page.evaluate(() => {
    const c = document.getElementById('walk') as HTMLCanvasElement
    return Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data)
  })
  const first = await walkPixels()
  t.is(first.length, 32 * 32 * 4)
  await page.waitForTimeout(400)
  t.not(maxAbsDiff(first, await walkPixels()), 0, 'the walk animates')

  t.deepEqual(outside, [], 'no request leaves the folder')
  t.true(requests.length >= 6, `requests seen: ${requests.join(', ')}`)
  t.true(requests.every((u) => u.startsWith(folder)), requests.join(', '))
  t.deepEqual(problems, [])
})
