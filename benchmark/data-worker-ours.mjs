// This library's data pipeline, timed for `npm run bench`: MNIST decoded, resized and scaled in Rust
// on --workers background threads with --prefetch batches prepared ahead (the library's defaults:
// 2 and 4). Prints one JSON line: images per second over --batches batches.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { openDataset } = require('../dist/index.js')
const { values: a } = parseArgs({
  options: {
    'image-size': { type: 'string' },
    batch: { type: 'string' },
    batches: { type: 'string', default: '20' },
    workers: { type: 'string', default: '2' },
    prefetch: { type: 'string', default: '4' },
  },
})
const [size, batch, batches, workers, prefetch] = [a['image-size'], a.batch, a.batches, a.workers, a.prefetch].map(Number)
const ds = await openDataset({ kind: 'mnist', workers, prefetch }, { imageSize: size, batchSize: batch, seed: 0 })
await ds.next()
const t0 = performance.now()
for (let i = 0; i < batches; i++) await ds.next()
console.log(JSON.stringify({ imagesPerSec: (batches * batch * 1000) / (performance.now() - t0), workers, prefetch }))
