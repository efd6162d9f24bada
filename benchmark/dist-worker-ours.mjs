// One rank of `npm run bench:scaling -- --nproc` (benchmark/scaling-nproc.mjs): this library's
// data-parallel step (c10d, Gloo) on the rank's share of a fixed global batch. The group comes
// from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Rank 0 prints one JSON line of step times.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { DCGAN } = require('../dist/index.js')
const { distributedFromEnv, DistributedRun } = require('../dist/distributed.js')

const { values: a } = parseArgs({
  options: { 'image-size': { type: 'string' }, features: { type: 'string' }, batch: { type: 'string' }, steps: { type: 'string' }, warmup: { type: 'string', default: '2' }, threads: { type: 'string', default: '1' }, 'sync-bn': { type: 'boolean', default: false } },
})
const [size, features, batch, steps, warmup] = ['image-size', 'features', 'batch', 'steps', 'warmup'].map((k) => Number(a[k]))
const gan = new DCGAN({ imageSize: size, featuresG: features, featuresD: features, channels: 1, device: 'cpu', threads: Number(a.threads), seed: 0 })
const options = { ...distributedFromEnv(), syncBatchNorm: a['sync-bn'] }
const dist = await DistributedRun.join(options, gan, batch)
const data = new Float32Array(batch * size * size)
for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1
const real = dist.shard({ data, shape: [batch, 1, size, size] })
const stepMs = []
for (let i = 0; i < warmup + steps; i++) {
  const t0 = process.hrtime.bigint()
  await gan.trainStep(real)
  if (i >= warmup) stepMs.push(Number(process.hrtime.bigint() - t0) / 1e6)
}
await dist.finish()
if (options.rank === 0) console.log(JSON.stringify({ stepMs }))
