// This library's data pipeline, timed for `npm run bench`: MNIST decoded, resized and scaled in Rust
// on background threads. Prints one JSON line: images per second over --batches batches.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { openDataset } = require('../dist/index.js')
const { values: a } = parseArgs({ options: { 'image-size': { type: 'string' }, batch: { type: 'string' }, batches: { type: 'string', default: '20' } } })
const [size, batch, batches] = [a['image-size'], a.batch, a.batches].map(Number)
const ds = await openDataset({ kind: 'mnist' }, { imageSize: size, batchSize: batch, seed: 0 })
await ds.next()
const t0 = performance.now()
for (let i = 0; i < batches; i++) await ds.next()
console.log(JSON.stringify({ imagesPerSec: (batches * batch * 1000) / (performance.now() - t0) }))
