// Times this library's training step for `npm run bench` (benchmark/bench.mjs).
// Prints 'FIRST' after the first step, then one JSON line with per-step times and peak memory.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { DCGAN } = require('../dist/index.js')

const { values: a } = parseArgs({
  options: {
    'image-size': { type: 'string' },
    features: { type: 'string' },
    batch: { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
  },
})
const [size, features, batch, steps, warmup] = ['image-size', 'features', 'batch', 'steps', 'warmup'].map((k) => Number(a[k]))
const gan = new DCGAN({ imageSize: size, featuresG: features, featuresD: features, channels: 1, device: a.device, threads: Number(a.threads), seed: 0 })
const data = new Float32Array(batch * size * size)
for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1
const real = { data, shape: [batch, 1, size, size] }
const stepMs = []
for (let i = 0; i < warmup + steps; i++) {
  const t0 = process.hrtime.bigint()
  await gan.trainStep(real) // resolves after the step's numbers are on the host: synchronised
  const dt = Number(process.hrtime.bigint() - t0) / 1e6
  if (i === 0) console.log('FIRST')
  if (i >= warmup) stepMs.push(dt)
}
console.log(JSON.stringify({ stepMs, peakRssMb: process.resourceUsage().maxRSS / 1024, device: gan.config.device }))
