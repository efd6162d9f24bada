#!/usr/bin/env node
// `npm run bench`: this library against Python training loops (the seed's, a tuned one, and the tuned
// one with channels-last, bf16 autocast and torch.compile) on the same torch 2.11.0, data shape,
// configuration and thread count, alternating all sides in one run.
//   npm run bench -- --config small [--steps 10] [--warmup 2] [--rounds 2] [--device cpu] [--threads 2]
//                    [--variants seed,tuned,...] [--ours fp32,bf16] [--no-python-malloc-tuning]
//   npm run bench -- --config tiny --pipeline-only
// Each of our precisions is compared with the Python variant of the same precision
// (SAME_PRECISION) and with the fastest Python variant of the run.
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, hostname, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT, resolvePython, resolveTorch, torchEnv } from '../scripts/torch-env.mjs'

export const CONFIGS = {
  tiny: { imageSize: 32, features: 8, batch: 32, steps: 30 },
  small: { imageSize: 32, features: 32, batch: 128, steps: 10 },
  paper: { imageSize: 64, features: 64, batch: 128, steps: 3 },
}

/** Python variants (benchmark/reference/variants.py) run by default. */
export const DEFAULT_VARIANTS = ['seed', 'tuned', 'tuned+channels_last', 'tuned+channels_last+bf16', 'tuned+compile', 'tuned+compile+bf16']
/** The Python variant each of our precisions is compared with first. */
export const SAME_PRECISION = { fp32: 'tuned+channels_last', bf16: 'tuned+channels_last+bf16' }
/** The names the first version of this file gave the seed and tuned loops in its JSON. */
const LEGACY_KEYS = { seed: 'seedLoop', tuned: 'tunedLoop' }
/** What this library does for itself (crates/dcgan-core/src/executor.rs, mallopt), given to Python through glibc's environment. */
export const PYTHON_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: String(256 << 20), MALLOC_TRIM_THRESHOLD_: String(1 << 30) }
/** Our data loader's defaults (crates/dcgan-node: workers 2, prefetch 4), given to both pipelines. */
const PIPELINE = { workers: 2, prefetch: 4 }

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'small' },
    steps: { type: 'string' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: String(cpus().length) },
    variants: { type: 'string', default: DEFAULT_VARIANTS.join(',') },
    ours: { type: 'string', default: 'fp32,bf16' },
    'no-python-malloc-tuning': { type: 'boolean', default: false },
    out: { type: 'string' },
    'pipeline-only': { type: 'boolean', default: false },
  },
})

// The Python side needs torch and torchvision: made on first use (npm run setup:python).
const torch = { ...resolveTorch({ install: false }), python: resolvePython() }
const env = torchEnv(torch)
const pythonMallocTuning = !args['no-python-malloc-tuning']
const pythonEnv = pythonMallocTuning ? { ...env, ...PYTHON_MALLOC_ENV } : env
const variants = args.variants.split(',').map((s) => s.trim()).filter(Boolean)
const ourPrecisions = args.ours.split(',').map((s) => s.trim()).filter(Boolean)
for (const p of ourPrecisions) if (!(p in SAME_PRECISION)) throw new Error(`unknown --ours precision '${p}'; allowed: ${Object.keys(SAME_PRECISION).join(', ')}`)

/**
 * Runs one worker; resolves to its JSON plus the wall time from spawn to the end of its first step.
 * A worker that reports {"error"} (a Python variant that cannot run here) or {"unavailable"} (a
 * precision this build lacks) resolves to that object; any other failure rejects.
 */
function runWorker(cmd, argv, workerEnv = env) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    let firstStepMs = null
    let out = ''
    let err = ''
    const child = spawn(cmd, argv, { cwd: ROOT, env: workerEnv })
    child.stdout.on('data', (d) => {
      out += d
      if (firstStepMs === null && out.includes('FIRST')) firstStepMs = performance.now() - started
    })
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => {
      let result = null
      try {
        result = JSON.parse(out.trim().split('\n').pop())
      } catch {}
      if (result?.error || result?.unavailable) return resolve(result)
      if (code !== 0 || !result) return reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}):\n${err}`))
      resolve({ ...result, firstStepMs })
    })
  })
}

function workerArgs(cfg, steps) {
  return ['--image-size', cfg.imageSize, '--features', cfg.features, '--batch', cfg.batch, '--steps', steps,
    '--warmup', args.warmup, '--threads', args.threads, '--device', args.device].map(String)
}

/** Every side of a run: our precisions, then the Python variants; each knows how to start its worker. */
function sides() {
  const ours = ourPrecisions.map((precision) => ({
    key: precision === 'fp32' ? 'ours' : `ours+${precision}`,
    precision,
    command: (cfg, steps) => ['node', [join('benchmark', 'worker-ours.mjs'), ...workerArgs(cfg, steps), '--precision', precision], env],
  }))
  const python = variants.map((variant) => ({
    key: variant,
    variant,
    precision: variant.split('+').includes('bf16') ? 'bf16' : 'fp32',
    command: (cfg, steps) => [torch.python, [join('benchmark', 'reference', 'bench_worker.py'), '--variant', variant, ...workerArgs(cfg, steps)], pythonEnv],
  }))
  return [...ours, ...python]
}

function quantile(sorted, q) {
  const i = (sorted.length - 1) * q
  const lo = Math.floor(i)
  return sorted[lo] + (sorted[Math.ceil(i)] - sorted[lo]) * (i - lo)
}

const median = (values) => quantile([...values].sort((a, b) => a - b), 0.5)

function summarise(runs, batch) {
  const steps = runs.flatMap((r) => r.stepMs).sort((a, b) => a - b)
  const med = quantile(steps, 0.5)
  const summary = {
    medianStepMs: +med.toFixed(2),
    p10StepMs: +quantile(steps, 0.1).toFixed(2),
    p90StepMs: +quantile(steps, 0.9).toFixed(2),
    imagesPerSec: +((batch * 1000) / med).toFixed(1),
    peakRssMb: +Math.max(...runs.map((r) => r.peakRssMb)).toFixed(0),
    // From spawn to the end of the first step: start-up, and with torch.compile the compilation.
    firstStepMs: +median(runs.map((r) => r.firstStepMs)).toFixed(0),
    // The first step alone, as the worker timed it.
    firstStepInWorkerMs: +median(runs.map((r) => r.warmupStepMs?.[0] ?? r.stepMs[0])).toFixed(0),
    steps: steps.length,
    device: runs[0].device,
  }
  if (runs[0].mallocKeepsLargeBlocks !== undefined) summary.mallocKeepsLargeBlocks = runs.every((r) => r.mallocKeepsLargeBlocks)
  return summary
}

/** Runs every side `--rounds` times, rotating the order; a side that fails or is unavailable is not retried. */
async function runRounds(name, cfg, steps, all) {
  const runs = Object.fromEntries(all.map((s) => [s.key, []]))
  const outcome = {}
  for (let round = 0; round < Number(args.rounds); round++) {
    // Rotate who goes first, so that no side always runs on a cooler or warmer machine.
    const order = all.slice(round % all.length).concat(all.slice(0, round % all.length))
    for (const side of order) {
      if (outcome[side.key]) continue
      const [cmd, argv, workerEnv] = side.command(cfg, steps)
      process.stderr.write(`${name} round ${round + 1}: ${side.key}... `)
      const r = await runWorker(cmd, argv, workerEnv)
      if (r.error) outcome[side.key] = { failed: r.error }
      else if (r.unavailable) outcome[side.key] = { notAvailable: r.unavailable }
      else runs[side.key].push(r)
      const said = r.error ? `failed: ${r.error}` : r.unavailable ? `not available: ${r.unavailable}` : `median ${median(r.stepMs).toFixed(1)} ms`
      process.stderr.write(`${said}\n`)
    }
  }
  for (const side of all) outcome[side.key] ??= summarise(runs[side.key], cfg.batch)
  return outcome
}

const ratio = (python, ours) => (python?.medianStepMs && ours?.medianStepMs ? +(python.medianStepMs / ours.medianStepMs).toFixed(3) : null)

/** Python median / our median for each of our precisions: the same-precision variant and the fastest one. */
function ratios(result, all) {
  const timed = all.filter((s) => s.variant && result.python[s.key]?.medianStepMs)
  const fastest = timed.sort((a, b) => result.python[a.key].medianStepMs - result.python[b.key].medianStepMs)[0]
  const out = {}
  for (const side of all.filter((s) => !s.variant)) {
    const ours = result[side.key]
    const same = SAME_PRECISION[side.precision]
    out[side.precision] = {
      ours: side.key,
      available: Boolean(ours?.medianStepMs),
      samePrecisionVariant: same,
      vsSamePrecision: ratio(result.python[same], ours),
      fastestVariant: fastest?.key ?? null,
      vsFastest: fastest ? ratio(result.python[fastest.key], ours) : null,
    }
  }
  return out
}

export async function benchConfig(name) {
  const cfg = CONFIGS[name]
  if (!cfg) throw new Error(`unknown --config '${name}'; allowed: ${Object.keys(CONFIGS).join(', ')}, all`)
  const steps = Number(args.steps ?? cfg.steps)
  const all = sides()
  const outcome = await runRounds(name, cfg, steps, all)
  const result = { config: { name, ...cfg, steps, threads: Number(args.threads), device: args.device, rounds: Number(args.rounds) }, python: {} }
  for (const side of all) {
    if (side.variant) result.python[side.key] = { precision: side.precision, ...outcome[side.key] }
    else result[side.key] = { precision: side.precision, ...outcome[side.key] }
  }
  for (const [variant, key] of Object.entries(LEGACY_KEYS)) if (result.python[variant]) result[key] = result.python[variant]
  result.ratioVsSeed = ratio(result.seedLoop, result.ours)
  result.ratioVsTuned = ratio(result.tunedLoop, result.ours)
  result.ratios = ratios(result, all)
  result.pipeline = await benchPipeline(cfg)
  return result
}

/**
 * Images prepared per second on MNIST at the config's size: ours (PIPELINE's workers and prefetch)
 * against the seed's torchvision pipeline in a DataLoader without workers, as the seed builds it,
 * and in one with as many worker processes and batches in flight as ours.
 */
async function benchPipeline(cfg) {
  const batches = String(Math.max(20, Math.round(10240 / cfg.batch)))
  const common = ['--image-size', String(cfg.imageSize), '--batch', String(cfg.batch), '--batches', batches]
  const ahead = ['--workers', String(PIPELINE.workers), '--prefetch', String(PIPELINE.prefetch)]
  process.stderr.write('data pipeline... ')
  const ours = await runWorker('node', [join('benchmark', 'data-worker-ours.mjs'), ...common, ...ahead])
  const { mnistImagesPath } = await import('../dist/datasets.js').then((m) => m.default ?? m)
  const python = (extra) => runWorker(torch.python, [join('benchmark', 'reference', 'data_worker.py'), '--path', mnistImagesPath('train'), '--threads', args.threads, ...common, ...extra], pythonEnv)
  const seed = await python([])
  const workers = await python(ahead)
  const out = {
    oursImagesPerSec: +ours.imagesPerSec.toFixed(0),
    seedImagesPerSec: +seed.imagesPerSec.toFixed(0),
    ratio: +(ours.imagesPerSec / seed.imagesPerSec).toFixed(2),
    dataLoaderWorkersImagesPerSec: +workers.imagesPerSec.toFixed(0),
    ratioVsWorkers: +(ours.imagesPerSec / workers.imagesPerSec).toFixed(2),
    ...PIPELINE,
    batches: Number(batches),
  }
  process.stderr.write(`ours ${out.oursImagesPerSec}, DataLoader ${out.seedImagesPerSec} (no workers), ${out.dataLoaderWorkersImagesPerSec} (${PIPELINE.workers} workers) images/s\n`)
  return out
}

function describe(s) {
  if (s.failed) return `failed: ${s.failed.replaceAll('|', '\\|')}`
  if (s.notAvailable) return 'not available in this build'
  return null
}

export function markdownTable(results) {
  const lines = [
    '| config | side | precision | median ms/step | p10–p90 ms | images/s | peak RSS MB | first step ms (from spawn) | Python / ours, same precision |',
    '|---|---|---|---|---|---|---|---|---|',
  ]
  for (const r of results) {
    const c = r.config
    const label = `${c.name} (${c.imageSize}px, ${c.features} feat, batch ${c.batch})`
    const rows = [...Object.keys(SAME_PRECISION).map((p) => [p === 'fp32' ? 'ours' : `ours+${p}`, r[p === 'fp32' ? 'ours' : `ours+${p}`]]).filter(([, s]) => s),
      ...Object.entries(r.python)]
    for (const [side, s] of rows) {
      const why = describe(s)
      if (why) {
        lines.push(`| ${label} | ${side} | ${s.precision} | ${why} | | | | | |`)
        continue
      }
      const ours = r[s.precision === 'fp32' ? 'ours' : `ours+${s.precision}`]
      const vs = side.startsWith('ours') ? '—' : ratio(s, ours) === null ? 'n/a' : `${ratio(s, ours)}×`
      lines.push(`| ${label} | ${side} | ${s.precision} | ${s.medianStepMs} | ${s.p10StepMs}–${s.p90StepMs} | ${s.imagesPerSec} | ${s.peakRssMb} | ${s.firstStepMs} | ${vs} |`)
    }
  }
  lines.push('', '| config | ours | Python / ours: same precision | Python / ours: fastest Python |', '|---|---|---|---|')
  for (const r of results) {
    for (const x of Object.values(r.ratios)) {
      const same = x.vsSamePrecision === null ? `n/a (${x.samePrecisionVariant})` : `${x.vsSamePrecision}× (${x.samePrecisionVariant})`
      const fastest = x.vsFastest === null ? `n/a (${x.fastestVariant ?? 'none'})` : `${x.vsFastest}× (${x.fastestVariant})`
      lines.push(`| ${r.config.name} | ${x.ours}${x.available ? '' : ' (not available)'} | ${same} | ${fastest} |`)
    }
  }
  lines.push('', `| config | data pipeline: ours images/s (${PIPELINE.workers} threads, ${PIPELINE.prefetch} ahead) | torchvision DataLoader, no workers (seed) | DataLoader, ${PIPELINE.workers} workers, ${PIPELINE.prefetch} ahead | ours / seed | ours / workers |`, '|---|---|---|---|---|---|')
  for (const r of results) {
    const p = r.pipeline
    lines.push(`| ${r.config.name} (${r.config.imageSize}px, batch ${r.config.batch}) | ${p.oursImagesPerSec} | ${p.seedImagesPerSec} | ${p.dataLoaderWorkersImagesPerSec} | ${p.ratio}× | ${p.ratioVsWorkers}× |`)
  }
  return lines.join('\n')
}

function mallocNote() {
  const ours = process.env.DCGAN_MALLOC_TUNING === '0' ? 'off (DCGAN_MALLOC_TUNING=0)' : 'mallopt(M_MMAP_THRESHOLD 256 MiB, M_TRIM_THRESHOLD 1 GiB)'
  const python = pythonMallocTuning ? Object.entries(PYTHON_MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(' ') : "glibc's defaults (--no-python-malloc-tuning)"
  return `malloc: ours ${ours}; Python workers ${python}`
}

const names = args.config === 'all' ? Object.keys(CONFIGS) : args.config.split(',')
if (args['pipeline-only']) {
  // Just the data pipelines, e.g. to measure them with more batches than a full run spends.
  console.log(mallocNote())
  for (const name of names) console.log(name, JSON.stringify(await benchPipeline(CONFIGS[name])))
  process.exit(0)
}
// Other processes share the cores: the load average before and after says how much.
const loadBefore = loadavg().map((x) => +x.toFixed(2))
const results = []
for (const name of names) results.push(await benchConfig(name))
const loadAfter = loadavg().map((x) => +x.toFixed(2))
const table = markdownTable(results)
const header = `Machine: ${hostname()}, ${cpus().length} × ${cpus()[0]?.model}; torch ${torch.version}; threads ${args.threads}; ` +
  `load average (1, 5, 15 min) ${loadBefore.join(', ')} before, ${loadAfter.join(', ')} after; ${mallocNote()}`
console.log(`\n${header}\n`)
console.log(table)
const date = new Date().toISOString().slice(0, 10)
const dir = join(ROOT, 'benchmark', 'results')
mkdirSync(dir, { recursive: true })
// The JSON and, beside it, the same name with .md: a name without .json gets it, so that the
// table never overwrites the JSON.
const out = (args.out ?? join(dir, `${date}-${hostname()}`)).replace(/(\.json)?$/, '.json')
const malloc = {
  ours: process.env.DCGAN_MALLOC_TUNING !== '0',
  python: pythonMallocTuning,
  pythonEnv: pythonMallocTuning ? PYTHON_MALLOC_ENV : {},
}
writeFileSync(out, JSON.stringify({ date, machine: { hostname: hostname(), cpu: cpus()[0]?.model, cores: cpus().length, loadBefore, loadAfter }, torch: torch.version, malloc, variants, ours: ourPrecisions, results }, null, 2) + '\n')
writeFileSync(out.replace(/\.json$/, '.md'), `${header}\n\n${table}\n`)
console.log(`\nwrote ${out}`)
