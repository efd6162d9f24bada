// Node's side of the GPU check: the addon as npm installs it (libtorch found through its
// RUNPATH, libtorch_cuda.so loaded by the library itself, every call an async task on the
// libtorch thread), driven through the TypeScript API. prepare.sh bundles this file with the
// library's src/ into gpu-check/node/dist/node-check.cjs (esbuild; the addon stays a file beside
// it), and check.py runs it when the GPU machine has Node. Prints one JSON line; exit status 1
// when a check fails.
//
//   node gpu-check/node/dist/node-check.cjs --device cuda --fixture gpu-check/fixtures/seed64
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DCGAN, IterableDataset, Trainer, cudaAvailable, readSafetensors, type DeviceSpec, type Tensor, type TensorInput } from '../../src/index'

const { values: a } = parseArgs({
  options: {
    device: { type: 'string', default: 'cuda' },
    fixture: { type: 'string' },
    'bench-size': { type: 'string', default: '64' },
    'bench-features': { type: 'string', default: '64' },
    'bench-batches': { type: 'string', default: '128,512' },
    'bench-steps': { type: 'string', default: '30' },
    'bench-warmup': { type: 'string', default: '5' },
  },
})
const device = a.device! as DeviceSpec
const onGpu = device.startsWith('cuda')
// As gpu_check's: cuDNN and the CPU sum in other orders than PyTorch's CPU fixtures.
const TOL = onGpu ? 1e-4 : 1e-5
// The eager steps before a capture: useCudaGraph's default, which the Trainer uses.
const GRAPH_WARMUP = 3

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return Infinity
  let m = 0
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]))
  return Number.isNaN(m) ? Infinity : m
}

/** The largest difference between two models' (or a model's and a file's) tensors, and where. */
function stateDiff(actual: Map<string, Tensor>, expected: Map<string, Tensor>): { max: number; worst: string } {
  let max = 0
  let worst = ''
  for (const [name, t] of actual) {
    const other = expected.get(name)
    const d = other ? maxAbsDiff(t.data, other.data) : Infinity
    if (!worst || d > max) [max, worst] = [d, name]
  }
  return { max, worst }
}

/** The fixture's three steps through `DCGAN.trainStep` (host batches and noise from JavaScript). */
async function parity(dir: string) {
  const io = await readSafetensors(join(dir, 'io.safetensors'))
  const { zDim, channels, featuresG, featuresD, imageSize } = JSON.parse(io.metadata.config)
  const gan = new DCGAN({ zDim, channels, featuresG, featuresD, imageSize, device, seed: 0 })
  await gan.loadWeights(join(dir, 'init.safetensors'))
  let statsMax = 0
  for (const step of [1, 2, 3]) {
    const s = await gan.trainStep(io.tensors.get(`real.${step}`)!, { noise: io.tensors.get(`noise.${step}`)!.data })
    statsMax = Math.max(statsMax, maxAbsDiff([s.lossD, s.lossG, s.dReal, s.dFake, s.dFakeAfter], io.tensors.get(`stats.${step}`)!.data))
  }
  const after = await readSafetensors(join(dir, 'after3.safetensors'))
  const { max, worst } = stateDiff(await gan.state(), after.tensors)
  const modelDevice = gan.config.device
  await gan.dispose()
  return { device: modelDevice, maxStateDiff: max, worstTensor: worst, maxStatsDiff: statsMax, pass: max <= TOL && statsMax <= TOL && modelDevice === (device === 'cuda' ? 'cuda:0' : device) }
}

/** Batches of 32 images of 32×32 that depend only on their index (a small LCG per batch), from
 * batch `first` on (a resumed run goes on where the first stopped: a custom dataset's position is
 * its own to restore). */
function syntheticBatches(first = 0): IterableDataset {
  return new IterableDataset(function* () {
    for (let b = first; ; b++) {
      const data = new Float32Array(32 * 32 * 32)
      let x = (b + 1) * 2654435761
      for (let i = 0; i < data.length; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0
        data[i] = (x / 2 ** 32) * 2 - 1
      }
      yield { data, shape: [32, 1, 32, 32] } as TensorInput
    }
  })
}

/** A Trainer run on `device` with `extra` options: its final state and its metrics' losses. */
async function trainerRun(steps: number, extra: Record<string, unknown>, resumeAt?: number) {
  const outDir = mkdtempSync(join(tmpdir(), 'dcgan-node-check-'))
  const config = { imageSize: 32, featuresG: 8, featuresD: 8, zDim: 16, batchSize: 32, device, seed: 3, outDir, sampleEvery: 0, checkpointEvery: 1000, ...extra }
  try {
    let trainer = new Trainer({ ...config, steps: resumeAt ?? steps })
    await trainer.fit({ progress: false, dataset: syntheticBatches() })
    if (resumeAt !== undefined) {
      trainer = await Trainer.resume(outDir, { steps })
      await trainer.fit({ progress: false, dataset: syntheticBatches(resumeAt) })
    }
    const rows = readFileSync(join(outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; lossD: number; lossG: number })
    const result = { state: await trainer.gan.state(), steps: trainer.step, rows, device: trainer.gan.config.device, replays: await trainer.gan.cudaGraphReplays() }
    await trainer.gan.dispose()
    return result
  } finally {
    rmSync(outDir, { recursive: true, force: true })
  }
}

/** The Trainer's options on the device: deferred numbers (and a CUDA graph on a GPU) and a
 * stop-and-resume must train what the plain run trains, and log every step's numbers. */
async function trainerChecks() {
  const steps = 12
  const plain = await trainerRun(steps, {})
  const fast = await trainerRun(steps, onGpu ? { deferStats: true, cudaGraph: true } : { deferStats: true })
  const resumed = await trainerRun(steps, {}, 5)
  const losses = (r: typeof plain) => r.rows.flatMap((x) => [x.lossD, x.lossG])
  const compare = (r: typeof plain) => ({
    maxStateDiff: stateDiff(r.state, plain.state).max,
    maxLossDiff: maxAbsDiff(losses(r), losses(plain)),
    stepsLogged: r.rows.map((x) => x.step).join(',') === Array.from({ length: steps }, (_, i) => i + 1).join(','),
  })
  const ok = (c: ReturnType<typeof compare>) => c.maxStateDiff <= TOL && c.maxLossDiff <= TOL && c.stepsLogged
  const options = onGpu ? 'deferStats+cudaGraph' : 'deferStats'
  const checks = { [options]: compare(fast), resumedAt5: compare(resumed) }
  // The steps after the graph's warm-up ran as replays (not eagerly after a silent fallback).
  const replaysOk = onGpu ? fast.replays === steps - GRAPH_WARMUP : fast.replays === null
  return { device: plain.device, steps, ...checks, graphReplays: fast.replays, pass: plain.steps === steps && ok(checks[options]) && ok(checks.resumedAt5) && replaysOk }
}

/** The q-quantile of `xs`, interpolated as check.py's `quantile`. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((p, r) => p - r)
  const i = (s.length - 1) * q
  const lo = Math.floor(i)
  const hi = Math.min(lo + 1, s.length - 1)
  return s[lo] + (s[hi] - s[lo]) * (i - lo)
}

/** Steps per second from Node with a host batch, waiting for each step's numbers and deferred. */
async function bench() {
  const [size, features, steps, warmup] = ['bench-size', 'bench-features', 'bench-steps', 'bench-warmup'].map((k) => Number(a[k as keyof typeof a]))
  const rows = []
  for (const batch of a['bench-batches']!.split(',').map(Number)) {
    const gan = new DCGAN({ imageSize: size, featuresG: features, featuresD: features, channels: 1, device, seed: 0 })
    const data = new Float32Array(batch * size * size).map((_, i) => Math.sin(i) * 0.9)
    const real = { data, shape: [batch, 1, size, size] }
    for (const deferred of [false, true]) {
      const times: number[] = []
      let firstStepMs = 0
      for (let i = 0; i < warmup + steps; i++) {
        const t0 = performance.now()
        if (deferred) await gan.trainStepDeferred(real)
        else await gan.trainStep(real)
        const ms = performance.now() - t0
        if (i === 0) firstStepMs = ms
        if (i >= warmup) times.push(ms)
      }
      if (deferred) await gan.flushStats()
      const ms = quantile(times, 0.5)
      rows.push({
        side: deferred ? 'node+host-batch+deferred' : 'node+host-batch', precision: 'fp32', batch, medianStepMs: ms,
        p10StepMs: quantile(times, 0.1), p90StepMs: quantile(times, 0.9), imagesPerSec: (batch * 1000) / ms, firstStepMs, steps, warmup,
      })
    }
    await gan.dispose()
  }
  return rows
}

async function main() {
  const started = performance.now()
  const report: Record<string, unknown> = { mode: 'node', node: process.version, device, cudaAvailable: await cudaAvailable() }
  let pass = true
  for (const [name, run] of [['parity', () => parity(a.fixture!)], ['trainer', trainerChecks]] as const) {
    try {
      const r = await run()
      report[name] = r
      pass &&= r.pass
    } catch (e) {
      report[name] = { error: String((e as Error)?.stack ?? e).slice(0, 600) }
      pass = false
    }
  }
  try {
    report.bench = await bench()
  } catch (e) {
    report.bench = { error: String((e as Error)?.message ?? e).slice(0, 600) }
  }
  report.pass = pass
  report.seconds = Math.round((performance.now() - started) / 100) / 10
  console.log(JSON.stringify(report))
  process.exitCode = pass ? 0 : 1
}

main().catch((e: unknown) => {
  // Before any check ran (the addon did not load, CUDA did not start): the reason, as the one JSON line.
  console.log(JSON.stringify({ mode: 'node', node: process.version, device, error: String((e as Error)?.stack ?? e).slice(0, 600), pass: false }))
  process.exitCode = 1
})
