// Times this library's training step for `npm run bench` (benchmark/bench.mjs).
// Prints 'FIRST' after the first step, then one JSON line with per-step times and peak memory.
// --precision bf16 asks the model for `precision: 'bf16'`; where this build does not accept that
// option the JSON line is {"unavailable": reason} (exit status 0), so the caller can say so.
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
    precision: { type: 'string', default: 'fp32' },
  },
})
const [size, features, batch, steps, warmup] = ['image-size', 'features', 'batch', 'steps', 'warmup'].map((k) => Number(a[k]))
const options = { imageSize: size, featuresG: features, featuresD: features, channels: 1, device: a.device, threads: Number(a.threads), seed: 0 }

/** The model, or the reason this build cannot run `precision` (fp32 is every build's only precision before the option). */
function makeModel() {
  if (a.precision === 'fp32') return { gan: new DCGAN(options) }
  let gan
  try {
    gan = new DCGAN({ ...options, precision: a.precision })
  } catch (e) {
    if (/precision/.test(String(e?.message))) return { unavailable: String(e.message) }
    throw e
  }
  // A build that ignored the option would run fp32 under a bf16 label: accept only one that reports it.
  const reported = gan.config.train.precision
  if (reported !== a.precision) return { unavailable: `the model reports precision ${JSON.stringify(reported)}, not '${a.precision}'` }
  return { gan }
}

const { gan, unavailable } = makeModel()
if (unavailable) {
  console.log(JSON.stringify({ unavailable, precision: a.precision }))
  process.exit(0)
}
const data = new Float32Array(batch * size * size)
for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1
const real = { data, shape: [batch, 1, size, size] }
const stepMs = []
const warmupStepMs = []
for (let i = 0; i < warmup + steps; i++) {
  const t0 = process.hrtime.bigint()
  await gan.trainStep(real) // resolves after the step's numbers are on the host: synchronised
  const dt = Number(process.hrtime.bigint() - t0) / 1e6
  if (i === 0) console.log('FIRST')
  ;(i >= warmup ? stepMs : warmupStepMs).push(dt)
}
console.log(JSON.stringify({ stepMs, warmupStepMs, peakRssMb: process.resourceUsage().maxRSS / 1024, device: gan.config.device, precision: a.precision }))
