#!/usr/bin/env node
// Time per training step of option sets against the `quick` preset's model, in one process, the
// sides' steps interleaved (quick, A, B, quick, A, B, …) so that a machine whose load changes
// during the run slows every side alike. Same batch (random images), batch size and model.
//   node benchmark/step-time.mjs [--set NAME='{"emaDecay":0.999}'] [--preset best] [--steps 40] [--warmup 3] [--threads 2]
// Prints a table of median ms per step and the ratio to `quick`. Needs the built package.
import { createRequire } from 'node:module'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { DCGAN, PRESETS } = require('../dist/index.js')

const { values: args } = parseArgs({
  options: {
    set: { type: 'string', multiple: true, default: [] },
    preset: { type: 'string', multiple: true, default: [] },
    steps: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '3' },
    threads: { type: 'string', default: String(cpus().length) },
  },
})
const MODEL_KEYS = ['zDim', 'channels', 'featuresG', 'featuresD', 'imageSize', 'init', 'spectralNorm', 'lr', 'beta1', 'beta2', 'eps',
  'dSteps', 'generatorLoss', 'precision', 'lrD', 'lrG', 'realLabel', 'loss', 'r1Gamma', 'r1Every', 'augment', 'emaDecay']
const pick = (o) => Object.fromEntries(Object.entries(o).filter(([k]) => MODEL_KEYS.includes(k)))
const quick = PRESETS.quick
const sides = [['quick', pick(quick)]]
for (const p of args.preset) sides.push([p, pick(PRESETS[p])])
for (const s of args.set) {
  const at = s.indexOf('=')
  sides.push([s.slice(0, at), { ...pick(quick), ...JSON.parse(s.slice(at + 1)) }])
}
const [steps, warmup, threads] = [args.steps, args.warmup, args.threads].map(Number)
const models = sides.map(([, o]) => new DCGAN({ ...o, device: 'cpu', threads, seed: 0 }))
const batch = quick.batchSize
/** A batch of random images at a side's size (a preset or set may change imageSize). */
function randomBatch(size) {
  const data = new Float32Array(batch * size * size)
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1
  return { data, shape: [batch, 1, size, size] }
}
const reals = sides.map(([, o]) => randomBatch(o.imageSize ?? quick.imageSize))
const times = sides.map(() => [])
for (let i = 0; i < warmup + steps; i++) {
  for (const [j, gan] of models.entries()) {
    const t0 = process.hrtime.bigint()
    await gan.trainStep(reals[j])
    if (i >= warmup) times[j].push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]
const base = median(times[0])
console.log(`| side | median ms/step | × quick |\n|---|---|---|`)
for (const [j, [name, o]] of sides.entries()) {
  console.log(`| ${name} ${j ? JSON.stringify(o) : ''} | ${median(times[j]).toFixed(1)} | ${(median(times[j]) / base).toFixed(2)} |`)
}
console.log(`\n${steps} interleaved steps after ${warmup} warm-up, batch ${batch}, ${quick.imageSize}×${quick.imageSize} unless a side sets imageSize, ${threads} threads; ${cpus().length} × ${cpus()[0]?.model}.`)
