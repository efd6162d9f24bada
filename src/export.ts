// A trained generator anywhere: an ONNX file for any ONNX runtime, and a static web page that
// samples, interpolates and does latent arithmetic in the browser with onnxruntime-web.
import { lstatSync, readFileSync, rmdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ModelConfig } from './config'
import type { DCGAN } from './dcgan'
import { codedError, DcganError, ErrorCode } from './errors'
import * as native from './native'
import { makeDir, readRegularFile, writeFileAtomic } from './run-dir'
import { checkSeed } from './values'

/** What dcgan writes into an ONNX file's metadata and checks when reading one. */
export interface OnnxInfo {
  /** `'dcgan-onnx/1'`. */
  format: string
  /** The network in the file. */
  what: 'generator' | 'discriminator'
  /** The configuration of the model it was exported from. */
  model: ModelConfig
  /** The ONNX operator set (17). */
  opset: number
  /** Whose weights: `'ema'` (the generator's moving average, exported when the model keeps one:
   * `emaDecay` > 0, as `gan.generate` samples it), `'generator'` (the trained generator, without
   * EMA) or `'discriminator'`. */
  weights: string
  /** Training steps of the exported model. */
  steps: number
  /** The graph's input: name and shape, `null` for the dynamic batch dimension. */
  input: OnnxTensorInfo
  /** The graph's output. */
  output: OnnxTensorInfo
}

/** A graph input or output of an exported ONNX file. */
export interface OnnxTensorInfo {
  /** Its name in the graph (`z`, `images`, …). */
  name: string
  /** Its shape, `null` for the dynamic batch dimension. */
  shape: Array<number | null>
}

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /** Which network: the generator (default; input `z` n×zDim×1×1, output `images` n×C×S×S in
   * [−1, 1]) or the discriminator (input `images`, output `probabilities`, n values). */
  what?: 'generator' | 'discriminator'
}

/**
 * Writes a network of `gan` as an ONNX model in inference form (opset 17; BatchNorm on running
 * statistics as BatchNormalization nodes; dynamic batch size), atomically. For the generator of a
 * model with `emaDecay` the moving average is written (`weights: 'ema'`), the network
 * `gan.generate` samples; else the trained generator (`weights: 'generator'`). Resolves to what
 * the file says about itself.
 */
export async function exportOnnx(gan: DCGAN, path: string, options: ExportOnnxOptions = {}): Promise<OnnxInfo> {
  return JSON.parse(await native.exportOnnx(gan.native, path, options.what)) as OnnxInfo
}

/**
 * Checks that `path` is an ONNX model dcgan exported and resolves to its description; rejects
 * anything else (a foreign or damaged ONNX file, not ONNX at all) with "not an ONNX model written
 * by dcgan: …" and code `ERR_DCGAN_FILE`.
 */
export async function readOnnxInfo(path: string): Promise<OnnxInfo> {
  return JSON.parse(await native.readOnnxInfo(path)) as OnnxInfo
}

/** Options of {@link exportWeb}. */
export interface ExportWebOptions {
  /** The seed the page's grid starts from. Default 1. */
  seed?: number
  /** The page's title. Default "DCGAN generator". */
  title?: string
}

/** One file of an exported site. */
export interface SiteFile {
  /** The file's name in the site's folder. */
  name: string
  /** Its size in bytes. */
  bytes: number
}

/** generator.onnx at most for the page: model.js carries it as base64 in one JavaScript string,
 * which V8 caps at 2^29 − 24 characters (4/3 of this, plus the script around it). */
const MAX_WEB_MODEL_BYTES = 380 * 1024 * 1024

/** The page's own files (classic scripts: they must load from file://). */
const WEB_DIR = join(__dirname, '..', 'web')
const PAGE_SCRIPTS = ['ziggurat-tables.js', 'latent.js', 'app.js']

/** onnxruntime-web's files: the WebAssembly runtime and the ES module bundle of its JavaScript. */
function ortFiles(): { dist: string; version: string } {
  const wasm = require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm')
  const dist = dirname(wasm)
  const version = (JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version: string }).version
  return { dist, version }
}

/**
 * onnxruntime-web's ES module bundle as an inline module script that sets `globalThis.ort`.
 * Chromium refuses to load module scripts (and fetch) from file://, but runs inline modules; the
 * bundle's one `export { local as name, … }` statement becomes an assignment.
 */
export function ortInlineModule(bundle: string): string {
  const body = bundle.replace(/\n\/\/# sourceMappingURL=\S*\s*$/, '')
  const match = /export\s*\{([^}]*)\};?\s*$/.exec(body)
  if (!match) throw new Error("onnxruntime-web's bundle does not end with one export statement: its layout changed; pin the version dcgan was tested with")
  const entries = match[1].split(',').map((e) => {
    const [local, name] = e.trim().split(/\s+as\s+/)
    return `${JSON.stringify(name ?? local)}: ${local}`
  })
  const code = `${body.slice(0, match.index)}\nglobalThis.ort = { ${entries.join(', ')} };\nglobalThis.dispatchEvent(new Event('ort-ready'));\n`
  // "</script" inside the code would end the element early; in JavaScript "<\/script" is the same text.
  return code.replace(/<\/script/gi, '<\\/script')
}

/** A classic script that sets `globalThis[name]` to `value` (bytes travel as base64). */
function scriptWith(name: string, value: unknown): string {
  return `// Written by dcgan export --format web.\nglobalThis.${name} = ${JSON.stringify(value)};\n`
}

/**
 * Writes a self-contained static page for the generator of `gan` into `dir`: `index.html`, the
 * ONNX model, onnxruntime-web's WebAssembly runtime and the page's scripts. Nothing is loaded
 * from elsewhere, and it works from `file://` (model and WebAssembly ride in classic scripts as
 * base64, since Chromium blocks fetch() there) as well as from any static host. The page draws
 * a grid from a seed (the same z as `gan.generate(n, { seed })`), animates a slerp walk between
 * two seeds and does latent arithmetic (z1 − z2 + z3) on clicked grid cells. With `emaDecay` the
 * page runs the generator's moving average, as {@link exportOnnx} writes it.
 *
 * `dir` and its missing parents are created; each file is written atomically (temporary file,
 * then rename), so a file already there, a symbolic link included, is replaced, never written
 * through.
 */
export async function exportWeb(gan: DCGAN, dir: string, options: ExportWebOptions = {}): Promise<SiteFile[]> {
  const seed = checkSeed(options.seed ?? 1)
  const title = options.title ?? 'DCGAN generator'
  if (typeof title !== 'string') throw codedError(TypeError, ErrorCode.INVALID_OPTION, `invalid title: got ${typeof title}; allowed: a string`)
  const made = makeDir(dir) // the folders this call makes, outermost first
  const created: string[] = [] // and the files it adds: removed again if it fails
  try {
    return await writeSite(gan, dir, seed, title, (path) => {
      if (!lexists(path)) created.push(path)
    })
  } catch (e) {
    // No half-written site: what this call added goes; what was there stays.
    for (const path of created) rmSync(path, { force: true })
    for (const d of made.reverse()) {
      try {
        rmdirSync(d) // only if empty
      } catch {
        break
      }
    }
    throw e
  }
}

/** Whether anything is at `path`, a dangling symbolic link included (existsSync follows links). */
function lexists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch {
    return false
  }
}

async function writeSite(gan: DCGAN, dir: string, seed: number, title: string, adding: (path: string) => void): Promise<SiteFile[]> {
  const written = new Map<string, number>()
  const write = (name: string, contents: string | Buffer) => {
    adding(join(dir, name))
    writeFileAtomic(join(dir, name), contents)
    written.set(name, typeof contents === 'string' ? Buffer.byteLength(contents) : contents.length)
  }
  const onnxFile = join(dir, 'generator.onnx')
  adding(onnxFile)
  const info = await exportOnnx(gan, onnxFile)
  let onnx: Buffer
  try {
    onnx = readRegularFile(onnxFile, MAX_WEB_MODEL_BYTES)
  } catch (e) {
    if (e instanceof DcganError && /bytes, more than/.test(e.message)) {
      throw new DcganError(ErrorCode.FILE, `${onnxFile}: the generator is too large for the web page (more than ${MAX_WEB_MODEL_BYTES} bytes of ONNX); use the ONNX file itself`)
    }
    throw e
  }
  written.set('generator.onnx', onnx.length)
  const ort = ortFiles()
  const wasm = readFileSync(join(ort.dist, 'ort-wasm-simd-threaded.wasm'))
  write('model.js', scriptWith('DCGAN_MODEL', { info, seed, title, onnx: onnx.toString('base64') }))
  write('ort-wasm.js', scriptWith('DCGAN_ORT_WASM', wasm.toString('base64')))
  for (const name of PAGE_SCRIPTS) write(name, readFileSync(join(WEB_DIR, name)))
  const template = readFileSync(join(WEB_DIR, 'index.html'), 'utf8')
  const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
  // One pass over the template: text put in (a title that reads "{{ORT_MODULE}}") is not read again.
  const fill: Record<string, () => string> = {
    TITLE: () => escapeHtml(title),
    ORT_VERSION: () => ort.version,
    ORT_MODULE: () => ortInlineModule(readFileSync(join(ort.dist, 'ort.wasm.bundle.min.mjs'), 'utf8')),
  }
  write('index.html', template.replace(/\{\{(TITLE|ORT_VERSION|ORT_MODULE)\}\}/g, (_, key: string) => fill[key]()))
  write('NOTICE.txt', `onnxruntime-web ${ort.version} (index.html's inline module, ort-wasm.js): MIT License, Copyright (c) Microsoft Corporation.\n`)
  const names = ['index.html', 'generator.onnx', 'model.js', 'ort-wasm.js', ...PAGE_SCRIPTS, 'NOTICE.txt']
  return names.map((name) => ({ name, bytes: written.get(name)! }))
}
