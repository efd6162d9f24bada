// saveImageGrid's make_grid options (normalize, valueRange, padValue) against the pixels
// torchvision's save_image(make_grid(...)) writes (fixture: benchmark/reference/make_grid_fixtures.py).
import test from 'ava'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inflateSync } from 'node:zlib'
import { ErrorCode, type GridOptions, readSafetensors, saveImageGrid } from '../src/index'
import { FIXTURES } from './helpers'

/** Decodes an 8-bit grayscale or RGB PNG (no interlacing): width, height, channels and bytes. */
function decodePng(file: string): { width: number; height: number; channels: number; pixels: Uint8Array } {
  const png = readFileSync(file)
  let pos = 8
  let width = 0, height = 0, channels = 0
  const idat: Buffer[] = []
  while (pos < png.length) {
    const len = png.readUInt32BE(pos)
    const type = png.toString('ascii', pos + 4, pos + 8)
    const body = png.subarray(pos + 8, pos + 8 + len)
    if (type === 'IHDR') {
      width = body.readUInt32BE(0)
      height = body.readUInt32BE(4)
      if (body[8] !== 8 || body[12] !== 0) throw new Error('only 8-bit, non-interlaced PNGs')
      channels = ({ 0: 1, 2: 3 } as Record<number, number>)[body[9]]
    } else if (type === 'IDAT') idat.push(body)
    pos += 12 + len
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const out = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]
      const a = x >= channels ? out[y * stride + x - channels] : 0
      const b = y > 0 ? out[(y - 1) * stride + x] : 0
      const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels] : 0
      const p = a + b - c
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c
      const predicted = [0, a, b, (a + b) >> 1, paeth][filter]
      out[y * stride + x] = (v + predicted) & 0xff
    }
  }
  return { width, height, channels, pixels: out }
}

test("normalize, valueRange and padValue give torchvision's pixels, byte for byte", async (t) => {
  const fixture = await readSafetensors(join(FIXTURES, 'grid', 'grids.safetensors'))
  const cases = JSON.parse(fixture.metadata.cases) as Record<string, { nrow: number; padding: number; normalize: boolean; value_range?: [number, number]; pad_value?: number }>
  const dir = mkdtempSync(join(tmpdir(), 'dcgan-grid-'))
  t.is(Object.keys(cases).length, 6)
  for (const [name, o] of Object.entries(cases)) {
    const options: GridOptions = { nrow: o.nrow, padding: o.padding, normalize: o.normalize, valueRange: o.value_range, padValue: o.pad_value }
    const file = join(dir, `${name}.png`)
    await saveImageGrid(fixture.tensors.get(`${name}.images`)!, file, options)
    const expected = fixture.tensors.get(`${name}.pixels`)!
    const png = decodePng(file)
    t.deepEqual([png.height, png.width, png.channels], expected.shape, name)
    const differing = Array.from(png.pixels).filter((v, i) => v !== expected.data[i]).length
    t.is(differing, 0, `${name}: ${differing} bytes differ from torchvision's`)
  }
})

test('valueRange without normalize, a reversed range or a non-finite padValue: an error naming the option', async (t) => {
  const images = { data: new Float32Array(4), shape: [1, 1, 2, 2] }
  const file = join(mkdtempSync(join(tmpdir(), 'dcgan-grid-')), 'g.png')
  await t.throwsAsync(saveImageGrid(images, file, { valueRange: [0, 1] }), { code: ErrorCode.INVALID_INPUT, message: /valueRange is used with normalize: true/ })
  await t.throwsAsync(saveImageGrid(images, file, { normalize: true, valueRange: [1, 0] }), { code: ErrorCode.INVALID_INPUT, message: /^invalid valueRange: got \[1\.0, 0\.0\]; allowed: \[low, high\], finite, low < high$/ })
  await t.throwsAsync(saveImageGrid(images, file, { padValue: NaN }), { code: ErrorCode.INVALID_INPUT, message: /^invalid padValue: got NaN/ })
})

test('a Buffer of float32 values is read as floats, not bytes', async (t) => {
  const values = new Float32Array([-1, -0.5, 0.5, 1])
  const dir = mkdtempSync(join(tmpdir(), 'dcgan-grid-'))
  await saveImageGrid({ data: values, shape: [1, 1, 2, 2] }, join(dir, 'f.png'), { padding: 0 })
  await saveImageGrid({ data: Buffer.from(values.buffer), shape: [1, 1, 2, 2] }, join(dir, 'b.png'), { padding: 0 })
  t.deepEqual(Array.from(decodePng(join(dir, 'b.png')).pixels), [0, 64, 191, 255])
  t.deepEqual(decodePng(join(dir, 'b.png')).pixels, decodePng(join(dir, 'f.png')).pixels)
  await t.throwsAsync(saveImageGrid({ data: Buffer.alloc(6), shape: [1, 1, 1, 1] }, join(dir, 'x.png')), { instanceOf: TypeError, message: /not a multiple of 4/ })
})
