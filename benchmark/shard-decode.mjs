// Decoding work per rank with and without a shard: a folder of 256 PNGs at 256×256 (written once
// to the temporary folder), resized to 64 px in batches of 32 on one decode thread; ms per batch for
// the whole batch and for rank 1 of 2.   node benchmark/shard-decode.mjs
import { createRequire } from 'node:module'
import { mkdirSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const require = createRequire(import.meta.url)
const { openDataset, saveImageGrid } = require('../dist/index.js')
const dir = join(tmpdir(), 'dcgan-shard-folder')
if (!existsSync(dir)) {
  mkdirSync(dir)
  for (let i = 0; i < 256; i++) {
    const data = new Float32Array(3 * 256 * 256)
    for (let j = 0; j < data.length; j++) data[j] = Math.sin(j * 0.001 * (i + 1)) * 0.9 + (Math.random() - 0.5) * 0.1
    await saveImageGrid({ data, shape: [1, 3, 256, 256] }, `${dir}/${String(i).padStart(3, '0')}.png`, { nrow: 1, padding: 0 })
  }
}
const time = async (shard) => {
  const ds = await openDataset({ kind: 'folder', path: dir, workers: 1, prefetch: 1 }, { imageSize: 64, channels: 3, batchSize: 32, seed: 1, ...(shard ? { shard } : {}) })
  await ds.next()
  const t0 = performance.now()
  for (let i = 0; i < 16; i++) await ds.next()
  return (performance.now() - t0) / 16
}
for (let round = 0; round < 2; round++) {
  const whole = await time(null)
  const half = await time({ rank: 1, worldSize: 2 })
  console.log(`ms per batch of 32 (256×256 PNG → 64 px, 1 decode thread): whole ${whole.toFixed(1)}, rank 1 of 2 ${half.toFixed(1)} (${(whole / half).toFixed(2)}×)`)
}
