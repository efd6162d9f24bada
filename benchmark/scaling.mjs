#!/usr/bin/env node
// `npm run bench:scaling`: time per training step against batch size (16…256, at 32×32) and
// image size (16…128, at batch 64), for this library and the tuned Python loop, with 16 features
// so that the largest point stays affordable on a CPU. Writes a table and two plots (SVG and PNG)
// to benchmark/results/, and flags a curve that grows faster than the work does.
//   npm run bench:scaling -- [--steps 4] [--threads 2] [--features 16]
// With --nproc 1,2,… it measures data-parallel scaling instead (benchmark/scaling-nproc.mjs).
if (process.argv.some((a) => a === '--nproc' || a.startsWith('--nproc='))) {
  await import('./scaling-nproc.mjs')
  process.exit(0)
}
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, hostname } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { ROOT, resolvePython, resolveTorch, torchEnv } from '../scripts/torch-env.mjs'

const require = createRequire(import.meta.url)
const { lineChartSvg } = require('../dist/charts.js')

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1' },
    threads: { type: 'string', default: String(cpus().length) },
    features: { type: 'string', default: '16' },
  },
})
// The Python side needs torch and torchvision: made on first use (npm run setup:python).
const torch = { ...resolveTorch({ install: false }), python: resolvePython() }
const env = torchEnv(torch)

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]
}

function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const child = spawn(cmd, argv, { cwd: ROOT, env })
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(err))))
  })
}

async function point(imageSize, batch) {
  const common = ['--image-size', imageSize, '--features', args.features, '--batch', batch, '--steps', args.steps, '--warmup', args.warmup, '--threads', args.threads].map(String)
  const ours = median((await run('node', [join('benchmark', 'worker-ours.mjs'), ...common])).stepMs)
  const tuned = median((await run(torch.python, [join('benchmark', 'reference', 'bench_worker.py'), '--loop', 'tuned', ...common])).stepMs)
  process.stderr.write(`${imageSize}px batch ${batch}: ours ${ours.toFixed(1)} ms, tuned ${tuned.toFixed(1)} ms\n`)
  return { imageSize, batch, oursMs: +ours.toFixed(2), tunedMs: +tuned.toFixed(2), ratio: +(tuned / ours).toFixed(3) }
}

/** Work grows linearly with batch and about with the square of the image side (per-pixel convolutions). */
function growthNotes(rows, key, work) {
  const notes = []
  for (let i = 1; i < rows.length; i++) {
    const workRatio = work(rows[i]) / work(rows[i - 1])
    for (const side of ['oursMs', 'tunedMs']) {
      const timeRatio = rows[i][side] / rows[i - 1][side]
      if (timeRatio > workRatio * 1.25) notes.push(`${side === 'oursMs' ? 'ours' : 'tuned Python'}: ${key} ${rows[i - 1][key]} → ${rows[i][key]} costs ${timeRatio.toFixed(2)}× the time for ${workRatio.toFixed(2)}× the work`)
    }
  }
  return notes
}

const byBatch = []
for (const batch of [16, 32, 64, 128, 256]) byBatch.push(await point(32, batch))
const bySize = []
for (const size of [16, 32, 64, 128]) bySize.push(await point(size, 64))

const dir = join(ROOT, 'benchmark', 'results')
mkdirSync(dir, { recursive: true })
const date = new Date().toISOString().slice(0, 10)
const plots = [
  ['batch', byBatch, 'batch size (32×32 images)'],
  ['image-size', bySize, 'image side in pixels (batch 64)'],
]
const { Resvg } = await import('@resvg/resvg-js')
for (const [name, rows, xLabel] of plots) {
  const key = name === 'batch' ? 'batch' : 'imageSize'
  const svg = lineChartSvg({
    title: `Time per training step against ${name === 'batch' ? 'batch size' : 'image size'} (${args.features} features, ${args.threads} threads)`,
    xLabel,
    yLabel: 'ms per step',
    series: [
      { id: 'ours', label: 'dcgan (ours)', color: '#1f77b4', points: rows.map((r) => [r[key], r.oursMs]) },
      { id: 'tuned', label: 'tuned PyTorch loop', color: '#d62728', points: rows.map((r) => [r[key], r.tunedMs]) },
    ],
  })
  writeFileSync(join(dir, `scaling-${name}.svg`), svg)
  writeFileSync(join(dir, `scaling-${name}.png`), new Resvg(svg, { background: '#ffffff' }).render().asPng())
}
const table = [
  '| image size | batch | ours ms/step | tuned Python ms/step | tuned / ours |',
  '|---|---|---|---|---|',
  ...[...byBatch, ...bySize].map((r) => `| ${r.imageSize} | ${r.batch} | ${r.oursMs} | ${r.tunedMs} | ${r.ratio}× |`),
].join('\n')
const notes = [...growthNotes(byBatch, 'batch', (r) => r.batch), ...growthNotes(bySize, 'imageSize', (r) => r.imageSize ** 2)]
const md = `${table}\n\n${notes.length ? notes.map((n) => `- ${n}`).join('\n') : '- nothing grows more than 1.25× faster than its work'}\n`
console.log(`\nMachine: ${hostname()}, ${cpus().length} × ${cpus()[0]?.model}; torch ${torch.version}\n\n${md}`)
writeFileSync(join(dir, `scaling-${date}.md`), md)
writeFileSync(join(dir, `scaling-${date}.json`), JSON.stringify({ date, threads: Number(args.threads), features: Number(args.features), byBatch, bySize, notes }, null, 2) + '\n')
