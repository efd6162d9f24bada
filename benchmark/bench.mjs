#!/usr/bin/env node
// `npm run bench`: this library against the seed's Python loop and a tuned Python loop, on the same
// torch 2.11.0, data shape, configuration and thread count, alternating the three in one run.
//   npm run bench -- --config small [--steps 10] [--warmup 2] [--rounds 2] [--device cpu] [--threads 2]
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, hostname } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT, resolveTorch, torchEnv } from '../scripts/torch-env.mjs'

export const CONFIGS = {
  tiny: { imageSize: 32, features: 8, batch: 32, steps: 30 },
  small: { imageSize: 32, features: 32, batch: 128, steps: 10 },
  paper: { imageSize: 64, features: 64, batch: 128, steps: 3 },
}

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'small' },
    steps: { type: 'string' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: String(cpus().length) },
    out: { type: 'string' },
    'pipeline-only': { type: 'boolean', default: false },
  },
})

const torch = resolveTorch({ install: false })
const env = torchEnv(torch)

/** Runs one worker; resolves to its JSON plus the wall time from spawn to the end of its first step. */
function runWorker(cmd, argv) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    let firstStepMs = null
    let out = ''
    let err = ''
    const child = spawn(cmd, argv, { cwd: ROOT, env })
    child.stdout.on('data', (d) => {
      out += d
      if (firstStepMs === null && out.includes('FIRST')) firstStepMs = performance.now() - started
    })
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}):\n${err}`))
      const result = JSON.parse(out.trim().split('\n').pop())
      resolve({ ...result, firstStepMs })
    })
  })
}

function workerArgs(cfg, steps) {
  return ['--image-size', cfg.imageSize, '--features', cfg.features, '--batch', cfg.batch, '--steps', steps,
    '--warmup', args.warmup, '--threads', args.threads, '--device', args.device].map(String)
}

const SIDES = {
  ours: (cfg, steps) => ['node', [join('benchmark', 'worker-ours.mjs'), ...workerArgs(cfg, steps)]],
  seedLoop: (cfg, steps) => [torch.python, [join('benchmark', 'reference', 'bench_worker.py'), '--loop', 'seed', ...workerArgs(cfg, steps)]],
  tunedLoop: (cfg, steps) => [torch.python, [join('benchmark', 'reference', 'bench_worker.py'), '--loop', 'tuned', ...workerArgs(cfg, steps)]],
}

function quantile(sorted, q) {
  const i = (sorted.length - 1) * q
  const lo = Math.floor(i)
  return sorted[lo] + (sorted[Math.ceil(i)] - sorted[lo]) * (i - lo)
}

function summarise(runs, batch) {
  const steps = runs.flatMap((r) => r.stepMs).sort((a, b) => a - b)
  const median = quantile(steps, 0.5)
  return {
    medianStepMs: +median.toFixed(2),
    p10StepMs: +quantile(steps, 0.1).toFixed(2),
    p90StepMs: +quantile(steps, 0.9).toFixed(2),
    imagesPerSec: +((batch * 1000) / median).toFixed(1),
    peakRssMb: +Math.max(...runs.map((r) => r.peakRssMb)).toFixed(0),
    firstStepMs: +quantile(runs.map((r) => r.firstStepMs).sort((a, b) => a - b), 0.5).toFixed(0),
    steps: steps.length,
    device: runs[0].device,
  }
}

export async function benchConfig(name) {
  const cfg = CONFIGS[name]
  if (!cfg) throw new Error(`unknown --config '${name}'; allowed: ${Object.keys(CONFIGS).join(', ')}, all`)
  const steps = Number(args.steps ?? cfg.steps)
  const runs = { ours: [], seedLoop: [], tunedLoop: [] }
  const order = Object.keys(SIDES)
  for (let round = 0; round < Number(args.rounds); round++) {
    // Rotate who goes first, so that no side always runs on a cooler or warmer machine.
    const sides = order.slice(round % order.length).concat(order.slice(0, round % order.length))
    for (const side of sides) {
      const [cmd, argv] = SIDES[side](cfg, steps)
      process.stderr.write(`${name} round ${round + 1}: ${side}... `)
      const r = await runWorker(cmd, argv)
      process.stderr.write(`median ${quantile([...r.stepMs].sort((a, b) => a - b), 0.5).toFixed(1)} ms\n`)
      runs[side].push(r)
    }
  }
  const result = { config: { name, ...cfg, steps, threads: Number(args.threads), device: args.device } }
  for (const side of order) result[side] = summarise(runs[side], cfg.batch)
  result.pipeline = await benchPipeline(cfg)
  result.ratioVsSeed = +(result.seedLoop.medianStepMs / result.ours.medianStepMs).toFixed(3)
  result.ratioVsTuned = +(result.tunedLoop.medianStepMs / result.ours.medianStepMs).toFixed(3)
  return result
}

/** Images prepared per second: the seed's torchvision pipeline against ours, on MNIST at the config's size. */
async function benchPipeline(cfg) {
  const batches = String(Math.max(20, Math.round(10240 / cfg.batch)))
  const common = ['--image-size', String(cfg.imageSize), '--batch', String(cfg.batch), '--batches', batches]
  process.stderr.write('data pipeline... ')
  const ours = await runWorker('node', [join('benchmark', 'data-worker-ours.mjs'), ...common])
  const { mnistImagesPath } = await import('../dist/datasets.js').then((m) => m.default ?? m)
  const seed = await runWorker(torch.python, [join('benchmark', 'reference', 'data_worker.py'), '--path', mnistImagesPath('train'), '--threads', args.threads, ...common])
  const out = { oursImagesPerSec: +ours.imagesPerSec.toFixed(0), seedImagesPerSec: +seed.imagesPerSec.toFixed(0), ratio: +(ours.imagesPerSec / seed.imagesPerSec).toFixed(2) }
  process.stderr.write(`${out.oursImagesPerSec} vs ${out.seedImagesPerSec} images/s\n`)
  return out
}

export function markdownTable(results) {
  const lines = [
    '| config | side | median ms/step | p10–p90 ms | images/s | peak RSS MB | first step ms | ratio (Python / ours) |',
    '|---|---|---|---|---|---|---|---|',
  ]
  for (const r of results) {
    const c = r.config
    const label = `${c.name} (${c.imageSize}px, ${c.features} feat, batch ${c.batch})`
    for (const side of ['ours', 'seedLoop', 'tunedLoop']) {
      const s = r[side]
      const ratio = side === 'ours' ? '—' : side === 'seedLoop' ? `${r.ratioVsSeed}×` : `${r.ratioVsTuned}×`
      lines.push(`| ${label} | ${side} | ${s.medianStepMs} | ${s.p10StepMs}–${s.p90StepMs} | ${s.imagesPerSec} | ${s.peakRssMb} | ${s.firstStepMs} | ${ratio} |`)
    }
  }
  lines.push('', '| config | data pipeline: ours images/s | seed (torchvision Resize/ToTensor/Normalize, DataLoader) images/s | ours / seed |', '|---|---|---|---|')
  for (const r of results) lines.push(`| ${r.config.name} (${r.config.imageSize}px, batch ${r.config.batch}) | ${r.pipeline.oursImagesPerSec} | ${r.pipeline.seedImagesPerSec} | ${r.pipeline.ratio}× |`)
  return lines.join('\n')
}

const names = args.config === 'all' ? Object.keys(CONFIGS) : args.config.split(',')
if (args['pipeline-only']) {
  // Just the data pipelines, e.g. to measure them with more batches than a full run spends.
  for (const name of names) console.log(name, JSON.stringify(await benchPipeline(CONFIGS[name])))
  process.exit(0)
}
const results = []
for (const name of names) results.push(await benchConfig(name))
const table = markdownTable(results)
console.log(`\nMachine: ${hostname()}, ${cpus().length} × ${cpus()[0]?.model}; torch ${torch.version}; threads ${args.threads}\n`)
console.log(table)
const date = new Date().toISOString().slice(0, 10)
const dir = join(ROOT, 'benchmark', 'results')
mkdirSync(dir, { recursive: true })
const out = args.out ?? join(dir, `${date}-${hostname()}.json`)
writeFileSync(out, JSON.stringify({ date, machine: { hostname: hostname(), cpu: cpus()[0]?.model, cores: cpus().length }, torch: torch.version, results }, null, 2) + '\n')
writeFileSync(out.replace(/\.json$/, '.md'), table + '\n')
console.log(`\nwrote ${out}`)
