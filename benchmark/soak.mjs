#!/usr/bin/env node
// Soak: many tiny training steps and generate calls in one process; resident memory must not grow
// after warm-up (target < 5 %). Also creates and disposes models, and drops some to the GC.
//
//   node --expose-gc benchmark/soak.mjs [--steps 5000] [--generates 10000]
//
// Prints one JSON line with RSS (MiB) after warm-up and at the end, and the growth in percent.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const { DCGAN, liveModelCount } = createRequire(import.meta.url)(join(ROOT, 'dist'))
const arg = (name, dflt) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1] ?? dflt) || dflt
const steps = arg('steps', 5000)
const generates = arg('generates', 10000)
const rss = () => Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096 / 2 ** 20
const gc = () => globalThis.gc?.()

const tiny = { imageSize: 16, featuresG: 8, featuresD: 8, zDim: 16, device: 'cpu', seed: 1, threads: 1 }
const gan = await DCGAN.create(tiny)
const batch = { data: new Float32Array(8 * 256), shape: [8, 1, 16, 16] }
for (let i = 0; i < batch.data.length; i++) batch.data[i] = Math.sin(i) * 0.9

const warmup = Math.ceil(steps / 10)
const started = Date.now()
let afterWarmup = 0
const samples = []
for (let i = 1; i <= steps; i++) {
  await gan.trainStep(batch)
  // Two generate calls per step (10,000 over 5,000 steps), with and without a seed.
  for (let k = 0; k < generates / steps; k++) await gan.generate(8, k % 2 ? { seed: i } : {})
  if (i % 500 === 0) {
    // A model made and disposed, another dropped for the GC: native memory must come back.
    await (await DCGAN.create(tiny)).dispose()
    await DCGAN.create(tiny)
    gc()
  }
  if (i === warmup) {
    gc()
    afterWarmup = rss()
  }
  if (i % 500 === 0) samples.push(+rss().toFixed(1))
}
gc()
await new Promise((r) => setTimeout(r, 100))
const end = rss()
console.log(JSON.stringify({
  steps, generates, warmupSteps: warmup, rssAfterWarmupMiB: +afterWarmup.toFixed(1), rssEndMiB: +end.toFixed(1),
  growthPercent: +((100 * (end - afterWarmup)) / afterWarmup).toFixed(2), rssEvery500Steps: samples, liveModels: liveModelCount(),
  seconds: Math.round((Date.now() - started) / 1000),
}))
