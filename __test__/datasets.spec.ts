// Built-in datasets: image folders, CIFAR-10 binaries, corrupt files, bounded memory, resuming.
import test from 'ava'
import { mkdirSync, mkdtempSync, openSync, writeSync, closeSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IterableDataset, mnist, openDataset, saveImageGrid } from '../src/index'

const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-data-'))
const v = (byte: number) => byte / 127.5 - 1

/** A w×h image of one RGB colour, as a PNG (written with our own grid writer). */
async function solidPng(path: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  const data = new Float32Array(3 * w * h)
  for (let c = 0; c < 3; c++) data.fill(v(rgb[c]), c * w * h, (c + 1) * w * h)
  await saveImageGrid({ data, shape: [1, 3, h, w] }, path, { nrow: 1, padding: 0 })
}

async function colourFolder(): Promise<string> {
  const root = tmp()
  mkdirSync(join(root, 'b', 'deeper'), { recursive: true })
  await solidPng(join(root, 'a.png'), 20, 12, [255, 0, 0])
  await solidPng(join(root, 'b', 'c.PNG'), 12, 20, [0, 255, 0])
  await solidPng(join(root, 'b', 'deeper', 'd.png'), 16, 16, [0, 0, 255])
  writeFileSync(join(root, 'notes.txt'), 'not an image')
  return root
}

function close(a: number, b: number) {
  return Math.abs(a - b) < 2e-2
}

test('an image folder is read recursively in path order, centre-cropped, resized and scaled', async (t) => {
  const root = await colourFolder()
  const ds = await openDataset({ kind: 'folder', path: root, shuffle: false }, { imageSize: 8, channels: 3, batchSize: 3 })
  t.is(ds.length, 3)
  const b = await ds.next()
  t.deepEqual(b.shape, [3, 3, 8, 8])
  const px = (i: number, c: number) => b.data[i * 192 + c * 64 + 27]
  t.deepEqual([px(0, 0), px(0, 1), px(0, 2)], [1, -1, -1]) // a.png red
  t.deepEqual([px(1, 0), px(1, 1), px(1, 2)], [-1, 1, -1]) // b/c.PNG green
  t.deepEqual([px(2, 0), px(2, 1), px(2, 2)], [-1, -1, 1]) // b/deeper/d.png blue
  // Grayscale: ITU-R 601 luma of pure red is 76.
  t.deepEqual(b.warnings ?? [], [])
  const grayDataset = await openDataset({ kind: 'folder', path: root, shuffle: false }, { imageSize: 8, channels: 1, batchSize: 3 })
  const gray = await grayDataset.next()
  t.true(close(gray.data[0], v(76)), `${gray.data[0]}`)
  // Said once, with the first colour image: a folder of photos does not turn gray silently.
  t.is(gray.warnings?.length, 1)
  t.regex(gray.warnings![0], /a\.png is in colour, but the model has 1 channel: colour images are converted to gray \(channels: 3, dcgan train --channels 3, trains on colour\)$/)
  t.deepEqual((await grayDataset.next()).warnings ?? [], [])
})

test('a corrupt image fails with its name, or is skipped with a warning when skipCorrupt is set', async (t) => {
  const root = await colourFolder()
  writeFileSync(join(root, 'b', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n garbage'))
  const strict = await openDataset({ kind: 'folder', path: root, shuffle: false }, { imageSize: 8, channels: 3, batchSize: 4 })
  await t.throwsAsync(strict.next(), { message: /broken\.png: cannot decode image/ })
  const lenient = await openDataset({ kind: 'folder', path: root, shuffle: false, skipCorrupt: true }, { imageSize: 8, channels: 3, batchSize: 3 })
  const b = await lenient.next()
  t.deepEqual(b.shape, [3, 3, 8, 8])
  t.is(b.warnings!.length, 1)
  t.regex(b.warnings![0], /skipped .*broken\.png: .*cannot decode image/)
  // Every image broken: a clear error, not a hang.
  const bad = tmp()
  writeFileSync(join(bad, 'x.png'), 'no')
  writeFileSync(join(bad, 'y.jpg'), 'no')
  await t.throwsAsync((await openDataset({ kind: 'folder', path: bad, skipCorrupt: true }, { imageSize: 8, batchSize: 1 })).next(), { message: /too many images are unreadable/ })
  await t.throwsAsync(openDataset({ kind: 'folder', path: join(bad, 'x.png') }, { imageSize: 8, batchSize: 1 }), { message: /x\.png: is not a folder/ })
  await t.throwsAsync(openDataset({ kind: 'folder', path: tmp() }, { imageSize: 8, batchSize: 1 }), { message: /holds no \.png, \.jpg or \.jpeg images/ })
})

function cifarFile(path: string, records: number, extraBytes = 0) {
  const buf = Buffer.alloc(records * 3073 + extraBytes)
  for (let k = 0; k < records; k++) {
    buf[k * 3073] = k
    buf.fill(10 * k, k * 3073 + 1, k * 3073 + 1025)
    buf.fill(20 * k, k * 3073 + 1025, k * 3073 + 2049)
    buf.fill(30 * k, k * 3073 + 2049, k * 3073 + 3073)
  }
  writeFileSync(path, buf)
}

test('CIFAR-10 binary batches: records become RGB planes; a truncated file is named', async (t) => {
  const dir = tmp()
  cifarFile(join(dir, 'data_batch_1.bin'), 3)
  cifarFile(join(dir, 'data_batch_2.bin'), 2)
  const ds = await openDataset({ kind: 'cifar10', path: dir, shuffle: false }, { imageSize: 32, channels: 3, batchSize: 5 })
  t.is(ds.length, 5)
  const b = await ds.next()
  const px = (i: number, c: number) => b.data[i * 3072 + c * 1024 + 100]
  const near = (actual: number[], bytes: number[]) => t.true(actual.every((a, i) => Math.abs(a - v(bytes[i])) < 1e-6), `${actual} vs ${bytes}`)
  near([px(2, 0), px(2, 1), px(2, 2)], [20, 40, 60])
  near([px(4, 0), px(4, 1), px(4, 2)], [10, 20, 30]) // record 1 of the second file
  cifarFile(join(dir, 'short.bin'), 2, 5)
  await t.throwsAsync(openDataset({ kind: 'cifar10', path: join(dir, 'short.bin') }, { imageSize: 32, batchSize: 1 }), { message: /short\.bin: is not a CIFAR-10 binary batch: 6151 bytes/ })
  await t.throwsAsync(openDataset({ kind: 'cifar10', path: tmp() }, { imageSize: 32, batchSize: 1 }), { message: /holds no data_batch_\*\.bin files/ })
})

test('streaming keeps memory bounded on a dataset far larger than the prefetch window', async (t) => {
  // 100,000 images of 32×32: a 102 MB IDX file, read in 200 batches of 500.
  const path = join(tmp(), 'big-idx3-ubyte')
  const fd = openSync(path, 'w')
  const header = Buffer.alloc(16)
  header.writeUInt32BE(0x803, 0)
  header.writeUInt32BE(100_000, 4)
  header.writeUInt32BE(32, 8)
  header.writeUInt32BE(32, 12)
  writeSync(fd, header)
  const chunk = Buffer.alloc(1024 * 1000, 7)
  for (let i = 0; i < 100; i++) writeSync(fd, chunk)
  closeSync(fd)
  const ds = await openDataset({ kind: 'idx', path, prefetch: 2 }, { imageSize: 32, batchSize: 500 })
  // Collect garbage as we go, so that what is measured is what the loader holds, not batches
  // already dropped by this test and not yet collected.
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
  await ds.next()
  gc()
  const base = process.memoryUsage().rss
  let peak = base
  for (let i = 1; i < ds.batchesPerEpoch; i++) {
    await ds.next()
    if (i % 10 === 0) gc()
    peak = Math.max(peak, process.memoryUsage().rss)
  }
  const growthMb = (peak - base) / 2 ** 20
  t.log(`RSS grew ${growthMb.toFixed(1)} MB while streaming 102 MB`)
  t.true(growthMb < 40)
  rmSync(path)
})

test('a dataset opened at a saved position continues the same order', async (t) => {
  const a = await mnist({ imageSize: 28, batchSize: 16, seed: 4 })
  const batches = [await a.next(), await a.next(), await a.next()]
  t.deepEqual([batches[1].epoch, batches[1].position], [0, 32])
  const b = await mnist({ imageSize: 28, batchSize: 16, seed: 4, start: { epoch: 0, position: 32 } })
  t.deepEqual((await b.next()).data, batches[2].data)
})

test("a data-parallel rank's dataset (shard) makes exactly its rows of each global batch, at the same positions", async (t) => {
  const whole = await mnist({ imageSize: 16, batchSize: 6, seed: 2, limit: 20 })
  const ranks = await Promise.all([0, 1, 2].map((rank) => mnist({ imageSize: 16, batchSize: 6, seed: 2, limit: 20, shard: { rank, worldSize: 3 } })))
  for (let i = 0; i < 5; i++) { // 3 batches per epoch: across an epoch boundary
    const b = await whole.next()
    for (const [rank, loader] of ranks.entries()) {
      const part = await loader.next()
      t.deepEqual(part.shape, [2, 1, 16, 16])
      t.deepEqual(part.data, b.data.subarray(rank * 512, (rank + 1) * 512))
      t.deepEqual([part.epoch, part.position, part.shard], [b.epoch, b.position, { rank, worldSize: 3 }])
    }
  }
  await t.throwsAsync(mnist({ imageSize: 16, batchSize: 6, limit: 20, shard: { rank: 0, worldSize: 4 } }), { message: /^invalid batchSize: got 6, which 4 ranks cannot share evenly/ })
  await t.throwsAsync(mnist({ imageSize: 16, batchSize: 6, limit: 20, shard: { rank: 3, worldSize: 3 } }), { message: /^invalid shard\.rank: got 3/ })
})

test('an iterable dataset accepts Float32Array, Buffer or arrays, and names a bad batch', async (t) => {
  const f32 = new Float32Array([0.5, -0.5])
  const ds = new IterableDataset([{ data: f32, shape: [1, 1, 1, 2] }, { data: Buffer.from(f32.buffer) as unknown as Float32Array, shape: [1, 1, 1, 2] }, { data: [1, 2] as unknown as Float32Array, shape: [1, 1, 1, 2] }])
  t.deepEqual(Array.from((await ds.next()).data), [0.5, -0.5])
  t.deepEqual(Array.from((await ds.next()).data), [0.5, -0.5])
  t.deepEqual(Array.from((await ds.next()).data), [1, 2])
  const bad = new IterableDataset([{ nope: 1 } as never])
  await t.throwsAsync(bad.next(), { message: /each batch must be an object \{ data: Float32Array \| Buffer, shape: number\[\] \}/ })
  await t.throwsAsync(openDataset({ kind: 'folder' }, { imageSize: 8, batchSize: 1 }), { message: /the folder dataset needs a path/ })
})

test('an iterable dataset counts its position in images, and its epochs when it is a function', async (t) => {
  const batch = (n: number) => ({ data: new Float32Array(n * 4), shape: [n, 1, 2, 2] })
  const ds = new IterableDataset(() => [batch(3), batch(5)])
  const seen = []
  for (let i = 0; i < 3; i++) {
    const b = await ds.next()
    seen.push([b.epoch, b.position])
  }
  t.deepEqual(seen, [[0, 3], [0, 8], [1, 3]])
})
