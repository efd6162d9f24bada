// Sampling tools against arithmetic done here by hand: interpolation endpoints and midpoints, slerp's
// great circle, latent vector arithmetic (a − b + c) and its images.
import test from 'ava'
import { DCGAN, interpolate, lerp, slerp, vectorArithmetic } from '../src/index'
import { maxAbsDiff } from './helpers'

// pytorch-example init (BatchNorm weight ≈ 1): the seed's N(0, 0.02) BatchNorm weights make G's
// images nearly independent of z, which would hide a wrong z.
const gan = new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, init: 'pytorch-example', device: 'cpu', seed: 4 })
const norm = (v: Float32Array) => Math.hypot(...v)

test('lerp and slerp go from a to b; slerp stays on the great circle', (t) => {
  const a = Float32Array.from([1, 0, 0, 0])
  const b = Float32Array.from([0, 2, 0, 0])
  t.deepEqual(Array.from(lerp(a, b, 0)), [1, 0, 0, 0])
  t.deepEqual(Array.from(lerp(a, b, 0.25)), [0.75, 0.5, 0, 0])
  t.deepEqual(Array.from(lerp(a, b, 1)), [0, 2, 0, 0])
  t.true(maxAbsDiff(slerp(a, b, 0), a) < 1e-6)
  t.true(maxAbsDiff(slerp(a, b, 1), b) < 1e-6)
  // Halfway along the quarter circle between orthogonal a and b: both weights sin(π/4)/sin(π/2).
  const mid = slerp(a, b, 0.5)
  t.true(maxAbsDiff(mid, [Math.SQRT1_2, 2 * Math.SQRT1_2, 0, 0]) < 1e-6, Array.from(mid).join())
  t.true(Math.abs(norm(slerp(a, Float32Array.from([0, 1, 0, 0]), 0.3)) - 1) < 1e-6, 'unit vectors stay unit')
})

test('interpolate: the first and last frames are the two seeds\' images, the path between them as asked', async (t) => {
  const [za, zb] = [await gan.latent(1, 1), await gan.latent(1, 2)]
  const frames = await interpolate(gan, { from: { seed: 1 }, to: { seed: 2 }, frames: 5, method: 'linear' })
  t.deepEqual(frames.shape, [5, 1, 16, 16])
  const z = new Float32Array(5 * 8)
  for (let k = 0; k < 5; k++) z.set(lerp(za, zb, k / 4), k * 8)
  t.true(maxAbsDiff(frames.data, (await gan.generateFrom(z)).data) < 1e-6)
  const first = (await gan.generate(1, { seed: 1 })).data
  t.true(maxAbsDiff(frames.data.subarray(0, 256), first) < 1e-6, 'frame 0 is generate(1, { seed: 1 })')
  t.true(maxAbsDiff(frames.data.subarray(4 * 256), (await gan.generate(1, { seed: 2 })).data) < 1e-6, 'the last frame is generate(1, { seed: 2 })')
  const ends = maxAbsDiff(frames.data.subarray(0, 256), frames.data.subarray(4 * 256))
  t.log(`the two ends differ by up to ${ends}`)
  t.true(ends > 1e-3, 'the two ends differ far beyond the tolerance, so a wrong z shows')
})

test('vector arithmetic: means of each concept, a − b + c, and its images', async (t) => {
  const zs = await Promise.all([1, 2, 3, 4, 5].map((s) => gan.latent(1, s)))
  const r = await vectorArithmetic(gan, { a: [{ seed: 1 }, { seed: 2 }], b: [{ seed: 3 }], c: [{ seed: 4 }, { seed: 5 }] })
  const expected = zs[0].map((_, i) => (zs[0][i] + zs[1][i]) / 2 - zs[2][i] + (zs[3][i] + zs[4][i]) / 2)
  t.true(maxAbsDiff(r.result, expected) < 1e-6)
  t.deepEqual(r.images.shape, [4, 1, 16, 16])
  t.true(maxAbsDiff(r.images.data.subarray(3 * 256), (await gan.generateFrom(r.result)).data) < 1e-6, 'the 4th image is G(a − b + c)')
})

/** Slerp computed here in float64, independently of the library's: sin((1−t)ω)/sin ω · a + sin(tω)/sin ω · b. */
function slerp64(a: Float32Array, b: Float32Array, t: number): number[] {
  const dot = a.reduce((s, x, i) => s + x * b[i], 0)
  const omega = Math.acos(dot / (norm(a) * norm(b)))
  return Array.from(a, (x, i) => (Math.sin((1 - t) * omega) * x + Math.sin(t * omega) * b[i]) / Math.sin(omega))
}

// BatchNorm on the batch's statistics: with running statistics this untrained G's images move by
// about 1e-3 over the whole path, too little to tell slerp from lerp with certainty; normalised by
// the batch they move by O(1). Each comparison generates the same batch of latents both ways.
const batchStats = true

test('interpolate goes along the great circle by default (slerp of the two seeds\' latents), not the straight line', async (t) => {
  const [za, zb] = [await gan.latent(1, 1), await gan.latent(1, 2)]
  const frames = await interpolate(gan, { from: { seed: 1 }, to: { seed: 2 }, frames: 5, batchStats })
  t.deepEqual(frames.shape, [5, 1, 16, 16])
  const z = new Float32Array(5 * 8)
  for (let k = 0; k < 5; k++) z.set(slerp64(za, zb, k / 4), k * 8)
  const expected = await gan.generateFrom(z, { batchStats })
  const diff = maxAbsDiff(frames.data, expected.data)
  t.log(`max |diff| from the slerp computed here ${diff}`)
  t.true(diff < 1e-5, `max |diff| ${diff}`)
  // The straight line's middle frames are far from these: a default of 'linear' shows.
  const linear = await interpolate(gan, { from: { seed: 1 }, to: { seed: 2 }, frames: 5, method: 'linear', batchStats })
  const apart = maxAbsDiff(linear.data.subarray(2 * 256, 3 * 256), expected.data.subarray(2 * 256, 3 * 256))
  t.log(`the middle frames of slerp and lerp differ by up to ${apart}`)
  t.true(apart > 1e-2, `${apart}`) // over a thousand times the tolerance above
  // Latent vectors given as arrays are the same path as their seeds.
  const fromArrays = await interpolate(gan, { from: Array.from(za), to: zb, frames: 5, batchStats })
  t.deepEqual(fromArrays.data, frames.data)
})

test('vectorArithmetic: the means a, b, c, and variations result + noise·latent(variations, seed)[k] after the four images', async (t) => {
  const zs = new Map<number, Float32Array>()
  for (const s of [1, 2, 3, 4, 5, 6]) zs.set(s, await gan.latent(1, s))
  const meanOf = (seeds: number[]) => Array.from({ length: 8 }, (_, i) => seeds.reduce((sum, s) => sum + zs.get(s)![i], 0) / seeds.length)
  const r = await vectorArithmetic(gan, { a: [{ seed: 1 }, { seed: 2 }], b: [{ seed: 3 }, { seed: 4 }, { seed: 6 }], c: [{ seed: 5 }], variations: 3, noise: 0.7, seed: 11, batchStats })
  const [a, b, c] = [meanOf([1, 2]), meanOf([3, 4, 6]), meanOf([5])]
  t.true(maxAbsDiff(r.a, a) < 1e-6, 'a')
  t.true(maxAbsDiff(r.b, b) < 1e-6, 'b')
  t.true(maxAbsDiff(r.c, c) < 1e-6, 'c')
  t.true(maxAbsDiff(r.result, a.map((x, i) => x - b[i] + c[i])) < 1e-6, 'result')
  t.deepEqual(r.images.shape, [7, 1, 16, 16])
  const eps = await gan.latent(3, 11)
  const z = new Float32Array(7 * 8)
  ;[r.a, r.b, r.c, r.result].forEach((v, k) => z.set(v, k * 8))
  for (let k = 0; k < 3; k++) for (let i = 0; i < 8; i++) z[(4 + k) * 8 + i] = r.result[i] + 0.7 * eps[k * 8 + i]
  const expected = await gan.generateFrom(z, { batchStats })
  t.true(maxAbsDiff(r.images.data, expected.data) < 1e-6, `max |diff| ${maxAbsDiff(r.images.data, expected.data)}`)
  // Seed 12 gives other variations.
  const other = await vectorArithmetic(gan, { a: [{ seed: 1 }, { seed: 2 }], b: [{ seed: 3 }, { seed: 4 }, { seed: 6 }], c: [{ seed: 5 }], variations: 3, noise: 0.7, seed: 12, batchStats })
  t.true(maxAbsDiff(other.images.data.subarray(4 * 256), r.images.data.subarray(4 * 256)) > 0.1)
  // The defaults: noise 0.25, seed 0.
  const plain = await vectorArithmetic(gan, { a: [{ seed: 1 }], b: [{ seed: 3 }], c: [{ seed: 5 }], variations: 2, batchStats })
  const eps0 = await gan.latent(2, 0)
  const zPlain = new Float32Array(6 * 8)
  ;[zs.get(1)!, zs.get(3)!, zs.get(5)!, plain.result].forEach((v, k) => zPlain.set(v, k * 8))
  for (let k = 0; k < 2; k++) for (let i = 0; i < 8; i++) zPlain[(4 + k) * 8 + i] = plain.result[i] + 0.25 * eps0[k * 8 + i]
  t.true(maxAbsDiff(plain.images.data, (await gan.generateFrom(zPlain, { batchStats })).data) < 1e-6)
})
