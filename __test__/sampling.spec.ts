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
