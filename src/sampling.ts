import { join } from 'node:path'
import { type DCGAN, saveImageGrid, type Tensor } from './dcgan'
import { codedError, ErrorCode } from './errors'
import { makeDir } from './run-dir'
import { checkFlag, checkSeed, MAX_SEED } from './values'

/** A point in latent space: one vector of zDim values, or a seed to draw it from. */
export type Latent = Float32Array | number[] | {
  /** An integer from 0 to 2^53 − 1; draws the vector as `gan.latent(1, seed)` does, i.e. the z of `generate(1, { seed })`. */
  seed: number
}

/** How BatchNorm normalises while sampling: running statistics (default) or the batch's own. */
export interface SampleMode {
  /**
   * Normalise with the generated batch's own statistics instead of BatchNorm's running ones, so
   * each image then depends on the others in the batch. Default false.
   */
  batchStats?: boolean
}

async function toVector(gan: DCGAN, p: Latent, what: string): Promise<Float32Array> {
  if (p instanceof Float32Array) return p
  if (Array.isArray(p)) return Float32Array.from(p)
  if (p && typeof p === 'object' && 'seed' in p) return gan.latent(1, checkSeed(p.seed, `${what}.seed`))
  throw codedError(TypeError, ErrorCode.INVALID_INPUT, `${what}: a latent point must be a Float32Array or an array of zDim numbers, or { seed: an integer from 0 to ${MAX_SEED} }`)
}

function checkLength(v: Float32Array, zDim: number, what: string): void {
  if (v.length !== zDim) throw codedError(RangeError, ErrorCode.INVALID_INPUT, `${what} has ${v.length} values; a latent vector has zDim = ${zDim}`)
}

function checkSameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw codedError(RangeError, ErrorCode.INVALID_INPUT, `the two vectors have ${a.length} and ${b.length} values: give two of the same length`)
}

/** Linear interpolation (1 − t)·a + t·b. */
export function lerp(a: Float32Array, b: Float32Array, t: number): Float32Array {
  checkSameLength(a, b)
  return a.map((x, i) => (1 - t) * x + t * b[i])
}

/**
 * Spherical interpolation along the great circle from a to b (White, "Sampling Generative
 * Networks"): keeps intermediate points at a typical distance from the origin for Gaussian z.
 * Where no great circle is defined (a or b the zero vector, or the two parallel) it is {@link lerp}.
 */
export function slerp(a: Float32Array, b: Float32Array, t: number): Float32Array {
  checkSameLength(a, b)
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  if (na === 0 || nb === 0) return lerp(a, b, t)
  const cos = Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb)))
  const omega = Math.acos(cos)
  if (omega < 1e-6) return lerp(a, b, t)
  const s = Math.sin(omega)
  const [wa, wb] = [Math.sin((1 - t) * omega) / s, Math.sin(t * omega) / s]
  return a.map((x, i) => wa * x + wb * b[i])
}

/** Options of {@link interpolate}. */
export interface InterpolateOptions extends SampleMode {
  /** Start of the path: one latent vector (zDim values) or a seed. */
  from: Latent
  /** End of the path: one latent vector (zDim values) or a seed. */
  to: Latent
  /** Images along the path, both ends included. Default 10. */
  frames?: number
  /** Straight line ({@link lerp}) or great circle ({@link slerp}). Default 'slerp'. */
  method?: 'linear' | 'slerp'
}

/** Images along a path in latent space from `from` to `to`: frames×C×S×S. */
export async function interpolate(gan: DCGAN, o: InterpolateOptions): Promise<Tensor> {
  checkOptions(o, 'interpolate', '{ from, to }')
  const frames = o.frames ?? 10
  if (!Number.isInteger(frames) || frames < 2 || frames > 1024) throw codedError(RangeError, ErrorCode.INVALID_OPTION, `invalid frames: got ${frames}; allowed: an integer from 2 to 1024`)
  const method = o.method ?? 'slerp'
  if (method !== 'linear' && method !== 'slerp') throw codedError(RangeError, ErrorCode.INVALID_OPTION, `invalid method: got ${JSON.stringify(method)}; allowed: 'linear', 'slerp'`)
  checkFlag(o.batchStats, 'batchStats')
  const zDim = gan.config.model.zDim
  const [a, b] = [await toVector(gan, o.from, 'from'), await toVector(gan, o.to, 'to')]
  checkLength(a, zDim, 'from')
  checkLength(b, zDim, 'to')
  const z = new Float32Array(frames * zDim)
  for (let k = 0; k < frames; k++) z.set((method === 'slerp' ? slerp : lerp)(a, b, k / (frames - 1)), k * zDim)
  return gan.generateFrom(z, o)
}

/** Options of {@link vectorArithmetic}: each concept is the mean of a few latent points. */
export interface ArithmeticOptions extends SampleMode {
  /** e.g. "smiling woman" */
  a: Latent[]
  /** e.g. "neutral woman" */
  b: Latent[]
  /** e.g. "neutral man" */
  c: Latent[]
  /** Extra images around the result, z + noise·N(0, I) (the paper shows 8). Default 0. */
  variations?: number
  /** Standard deviation of those variations. Default 0.25. */
  noise?: number
  /** Seed of the variations' noise. Default 0. */
  seed?: number
}

/** The concept vectors, their result a − b + c, and images: [mean a, mean b, mean c, result, variations…]. */
export interface ArithmeticResult {
  /** Mean latent vector of the points of `a`. */
  a: Float32Array
  /** Mean latent vector of the points of `b`. */
  b: Float32Array
  /** Mean latent vector of the points of `c`. */
  c: Float32Array
  /** a − b + c. */
  result: Float32Array
  /** (4 + variations)×C×S×S: the images of mean a, mean b, mean c, the result, then the variations. */
  images: Tensor
}

/** An options object, or an error that says what the call takes. */
function checkOptions(o: unknown, call: string, takes: string): void {
  if (o === null || typeof o !== 'object') throw codedError(TypeError, ErrorCode.INVALID_OPTION, `${call}(gan, options) takes options ${takes}, got ${o === null ? 'null' : typeof o}`)
}

async function mean(gan: DCGAN, points: Latent[], what: string): Promise<Float32Array> {
  if (!Array.isArray(points) || points.length === 0) throw codedError(RangeError, ErrorCode.INVALID_INPUT, `${what} needs at least one latent point`)
  const zDim = gan.config.model.zDim
  const m = new Float32Array(zDim)
  for (const p of points) {
    const v = await toVector(gan, p, `a point of ${what}`)
    checkLength(v, zDim, `a point of ${what}`)
    for (let i = 0; i < zDim; i++) m[i] += v[i] / points.length
  }
  return m
}

/**
 * Latent vector arithmetic as in the seed and the paper: the mean z of each concept, then
 * z = a − b + c ("smiling woman − neutral woman + neutral man = smiling man").
 */
export async function vectorArithmetic(gan: DCGAN, o: ArithmeticOptions): Promise<ArithmeticResult> {
  checkOptions(o, 'vectorArithmetic', '{ a, b, c }')
  const variations = o.variations ?? 0
  if (!Number.isInteger(variations) || variations < 0 || variations > 1024) throw codedError(RangeError, ErrorCode.INVALID_OPTION, `invalid variations: got ${variations}; allowed: an integer from 0 to 1024`)
  const noise = o.noise ?? 0.25
  if (typeof noise !== 'number' || !Number.isFinite(noise) || noise < 0) throw codedError(RangeError, ErrorCode.INVALID_OPTION, `invalid noise: got ${noise}; allowed: a standard deviation, a finite number ≥ 0`)
  const seed = checkSeed(o.seed ?? 0)
  checkFlag(o.batchStats, 'batchStats')
  const [a, b, c] = [await mean(gan, o.a, 'a'), await mean(gan, o.b, 'b'), await mean(gan, o.c, 'c')]
  const result = a.map((x, i) => x - b[i] + c[i])
  const zDim = a.length
  const z = new Float32Array((4 + variations) * zDim)
  ;[a, b, c, result].forEach((v, k) => z.set(v, k * zDim))
  if (variations > 0) {
    const eps = await gan.latent(variations, seed)
    for (let k = 0; k < variations; k++) for (let i = 0; i < zDim; i++) z[(4 + k) * zDim + i] = result[i] + noise * eps[k * zDim + i]
  }
  return { a, b, c, result, images: await gan.generateFrom(z, o) }
}

/** Writes each image of a batch as its own PNG, `prefix-000.png`, …; returns the paths. */
export async function saveImages(images: Tensor, dir: string, prefix = 'image'): Promise<string[]> {
  makeDir(dir)
  const [n, ...rest] = images.shape
  const per = rest.reduce((x, y) => x * y, 1)
  const width = Math.max(3, String(n - 1).length)
  const paths: string[] = []
  for (let i = 0; i < n; i++) {
    const path = join(dir, `${prefix}-${String(i).padStart(width, '0')}.png`)
    await saveImageGrid({ data: images.data.subarray(i * per, (i + 1) * per), shape: [1, ...rest] }, path, { nrow: 1, padding: 0 })
    paths.push(path)
  }
  return paths
}
