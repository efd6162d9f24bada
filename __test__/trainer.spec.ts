// Trainer.fit: resume exactness, checkpoints, callbacks, cancellation, guards, the event loop.
import test from 'ava'
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, ErrorCode, IterableDataset, NonFiniteError, ProgressBar, Trainer, cudaAvailable, listCheckpoints, resolveTrainConfig, saveImageGrid, type TrainConfig } from '../src/index'

const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-trainer-'))
// A tiny run on 200 MNIST images: 12 batches of 16 per epoch, so 30 steps cross two epoch ends.
const tiny = (outDir: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> => ({
  imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, batchSize: 16, device: 'cpu', seed: 5, outDir,
  sampleEvery: 0, checkpointEvery: 1000, dataset: { kind: 'mnist', limit: 200 }, ...extra,
} as Partial<TrainConfig>)

async function stateOf(gan: DCGAN): Promise<Array<[string, Float32Array]>> {
  return [...(await gan.state())].map(([k, v]) => [k, v.data])
}

test('resume is exact: 2N steps straight equal N, stop, resume, N more (bit for bit)', async (t) => {
  const straight = new Trainer(tiny(tmp(), { steps: 30 }))
  await straight.fit({ progress: false })
  const dir = tmp()
  const first = new Trainer(tiny(dir, { steps: 17 }))
  await first.fit({ progress: false })
  const resumed = await Trainer.resume(dir, { steps: 30 })
  t.is(resumed.step, 17)
  t.deepEqual(resumed.dataPosition, first.dataPosition)
  await resumed.fit({ progress: false })
  t.is(resumed.step, 30)
  t.deepEqual(await stateOf(resumed.gan), await stateOf(straight.gan))
  // The Adam moments and the noise generator came back too: the next steps agree as well.
  const [a, b] = [await straight.gan.trainStep({ data: new Float32Array(16 * 256), shape: [16, 1, 16, 16] }), await resumed.gan.trainStep({ data: new Float32Array(16 * 256), shape: [16, 1, 16, 16] })]
  t.deepEqual(a, b)
})

test('a resumed run keeps its two learning rates (lrD, lrG): N steps, resume, N more equal 2N straight', async (t) => {
  const ttur = { lrD: 4e-4, lrG: 1e-4 }
  const straight = new Trainer(tiny(tmp(), { steps: 10, ...ttur }))
  await straight.fit({ progress: false })
  const dir = tmp()
  await new Trainer(tiny(dir, { steps: 5, ...ttur })).fit({ progress: false })
  const resumed = await Trainer.resume(dir, { steps: 10 })
  t.like(resumed.gan.config.train, ttur)
  await resumed.fit({ progress: false })
  t.deepEqual(await stateOf(resumed.gan), await stateOf(straight.gan))
})

test('checkpoints every N steps and at the end, keeping the last K; metrics, samples and config are written', async (t) => {
  const dir = tmp()
  const seen: string[] = []
  const trainer = new Trainer(tiny(dir, { steps: 7, checkpointEvery: 2, keepCheckpoints: 2, sampleEvery: 3, sampleCount: 4 }))
  const result = await trainer.fit({
    progress: false,
    callbacks: {
      onStepEnd: (s) => void seen.push(`step ${s.step}`),
      onSample: (s) => void seen.push(`sample ${s.step}`),
      onCheckpoint: (c) => void seen.push(`checkpoint ${c.step}`),
      onTrainEnd: (r) => void seen.push(`end ${r.reason}`),
    },
  })
  t.is(result.reason, 'completed')
  t.deepEqual(seen, ['step 1', 'step 2', 'checkpoint 2', 'step 3', 'sample 3', 'step 4', 'checkpoint 4', 'step 5', 'step 6', 'sample 6', 'checkpoint 6', 'step 7', 'sample 7', 'checkpoint 7', 'end completed'])
  t.deepEqual(listCheckpoints(dir).map((c) => c.step), [6, 7])
  t.deepEqual(readdirSync(join(dir, 'samples')).sort(), ['step-000003.png', 'step-000006.png', 'step-000007.png'])
  const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.deepEqual(rows.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7])
  for (const key of ['lossD', 'lossG', 'dReal', 'dFake', 'stepMs', 'imagesPerSec']) t.true(Number.isFinite(rows[0][key]), key)
  t.is(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).batchSize, 16)
  // A checkpoint is also a model file.
  t.is((await DCGAN.load(result.checkpoint!)).config.stepsDone, 7)
})

test("deferStats reports every step's numbers, in order and around samples and checkpoints, equal to a run that waits for them", async (t) => {
  const run = async (deferStats: boolean) => {
    const dir = tmp()
    const seen: string[] = []
    const trainer = new Trainer(tiny(dir, { steps: 14, checkpointEvery: 5, sampleEvery: 4, sampleCount: 4, deferStats }))
    const record = (what: string) => (e: { step: number }) => void seen.push(`${what} ${e.step}`)
    await trainer.fit({ progress: false, callbacks: { onStepEnd: record('step'), onEpochEnd: record('epoch end'), onSample: record('sample'), onCheckpoint: record('checkpoint') } })
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    return { seen, rows, state: await stateOf(trainer.gan), checkpoints: listCheckpoints(dir).map((c) => c.step) }
  }
  const [waiting, deferred] = [await run(false), await run(true)]
  t.deepEqual(deferred.seen, waiting.seen) // 14 steps of 16 from 200 images: an epoch ends at step 12
  t.true(waiting.seen.includes('epoch end 12'))
  const numbers = (rows: Array<Record<string, number>>) => rows.map(({ step, lossD, lossG, dReal, dFake, dFakeAfter }) => [step, lossD, lossG, dReal, dFake, dFakeAfter])
  t.deepEqual(numbers(deferred.rows), numbers(waiting.rows))
  t.deepEqual(deferred.state, waiting.state)
  t.deepEqual(deferred.checkpoints, waiting.checkpoints)
  for (const r of deferred.rows) t.true(r.stepMs > 0 && Number.isFinite(r.imagesPerSec), `step ${r.step}: ${r.stepMs} ms`)
})

test('an AbortSignal stops after the current step and writes a checkpoint', async (t) => {
  const dir = tmp()
  const controller = new AbortController()
  const trainer = new Trainer(tiny(dir, { steps: 1000 }))
  const result = await trainer.fit({ progress: false, signal: controller.signal, callbacks: { onStepEnd: (s) => { if (s.step === 3) controller.abort() } } })
  t.is(result.reason, 'aborted')
  t.is(result.steps, 3)
  t.deepEqual(listCheckpoints(dir).map((c) => c.step), [3])
  t.is((await Trainer.resume(dir)).step, 3)
})

test('epochs: steps default to epochs × batches per epoch, with onEpochEnd at each end', async (t) => {
  const epochs: number[] = []
  const trainer = new Trainer(tiny(tmp(), { epochs: 2, dataset: { kind: 'mnist', limit: 48 } }))
  const r = await trainer.fit({ progress: false, callbacks: { onEpochEnd: (e) => void epochs.push(e.step) } })
  t.is(r.steps, 6) // 48 / 16 = 3 batches per epoch
  t.deepEqual(epochs, [3, 6]) // each epoch ends with its last batch, the final one included
})

test('training on a JS iterable of batches ends when it is exhausted', async (t) => {
  const batches = Array.from({ length: 3 }, (_, k) => ({ data: new Float32Array(8 * 256).fill(k / 3), shape: [8, 1, 16, 16] }))
  const trainer = new Trainer(tiny(tmp(), { steps: 100, batchSize: 8 }))
  const r = await trainer.fit({ progress: false, dataset: new IterableDataset(batches) })
  t.is(r.reason, 'exhausted')
  t.is(r.steps, 3)
  // Given a function, the source starts over for each epoch.
  const again = new Trainer(tiny(tmp(), { steps: 5, batchSize: 8 }))
  t.is((await again.fit({ progress: false, dataset: new IterableDataset(() => batches) })).steps, 5)
})

test('diverging training stops with a clear error and keeps the last good checkpoint', async (t) => {
  // An lr large enough to diverge does so at the first step, before any checkpoint. So the run
  // trains normally (a checkpoint every step) and, after the third checkpoint, its optimizer is
  // given that lr (1e30: NaN within one step). (loadWeights refuses NaN weights.)
  const model = { imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, device: 'cpu' as const, seed: 5 }
  const diverged = new DCGAN({ ...model, lr: 1e30 })
  await t.throwsAsync(diverged.trainStep({ data: new Float32Array(16 * 256).fill(0.5), shape: [16, 1, 16, 16] }), { message: /training diverged/ })
  t.false(await diverged.allFinite())
  const diverge = (trainer: Trainer) => trainer.gan.native.setOptimizer(JSON.stringify({ lr: 1e30 }))

  for (const deferStats of [false, true]) {
    const dir = tmp()
    const trainer = new Trainer(tiny(dir, { steps: 50, checkpointEvery: 1, keepCheckpoints: 10, deferStats }))
    const onCheckpoint = async (c: { step: number }) => {
      if (c.step === 3) await diverge(trainer)
    }
    const e = await t.throwsAsync(trainer.fit({ progress: false, callbacks: { onCheckpoint } }), { instanceOf: NonFiniteError })
    t.regex(e!.message, /the weights hold NaN or Infinity at step 4: training diverged/)
    const kept = listCheckpoints(dir)
    t.deepEqual(kept.map((c) => c.step), [1, 2, 3]) // nothing written at or after the divergence
    const lastGood = kept[kept.length - 1].path
    t.true(e!.message.includes(`The last good checkpoint is ${lastGood}.`), e!.message)
    const restored = await DCGAN.load(lastGood)
    t.true(await restored.allFinite())
    t.is(restored.config.stepsDone, 3)
    // Every completed step is in the log, deferred numbers included.
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)
    t.deepEqual(rows, [1, 2, 3], `deferStats ${deferStats}`)
  }
  // Deferred, onStepEnd(3) runs after step 4 was taken: the divergence comes at step 5, and step 4's
  // numbers, pending when it failed, still reach the log.
  const dir = tmp()
  const trainer = new Trainer(tiny(dir, { steps: 50, deferStats: true }))
  const onStepEnd = async (s: { step: number }) => {
    if (s.step === 3) await diverge(trainer)
  }
  const e = await t.throwsAsync(trainer.fit({ progress: false, callbacks: { onStepEnd } }), { instanceOf: NonFiniteError })
  t.regex(e!.message, /at step 5: training diverged/)
  t.deepEqual(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step), [1, 2, 3, 4])
})

// Serial: other tests of this file would otherwise share (and block) this process's event loop.
test.serial('the event loop keeps ticking during fit(): timer drift under 50 ms', async (t) => {
  const trainer = new Trainer(tiny(tmp(), { steps: 25, imageSize: 32, featuresG: 16, featuresD: 16, batchSize: 32 }))
  let worst = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last - 10)
    last = now
  }, 10)
  await trainer.fit({ progress: false })
  clearInterval(timer)
  t.log(`worst timer drift ${worst.toFixed(1)} ms`)
  t.true(worst < 50)
})

test('bad training configs are rejected up front, naming the field', (t) => {
  const cases: Array<[Partial<TrainConfig>, RegExp]> = [
    [{ batchSize: 0 }, /invalid batchSize: got 0; allowed: an integer from 1 to 65536/],
    [{ batchSize: 15, dSteps: 2 }, /invalid batchSize: got 15, which dSteps = 2 cannot split evenly/],
    [{ steps: -1 }, /invalid steps: got -1/],
    [{ epochs: 1.5 }, /invalid epochs: got 1.5/],
    [{ imageSize: 48 }, /invalid imageSize: got 48; allowed: a power of two/],
    [{ checkpointEvery: 0 }, /invalid checkpointEvery: got 0/],
    [{ dataset: { kind: 'imagenet' } } as unknown as Partial<TrainConfig>, /invalid dataset.kind: got 'imagenet'; allowed: 'mnist', 'idx', 'cifar10', 'folder'/],
    [{ lerningRate: 1 } as unknown as Partial<TrainConfig>, /unknown config field 'lerningRate'/],
  ]
  for (const [c, message] of cases) t.throws(() => resolveTrainConfig(c), { message }, JSON.stringify(c))
  t.throws(() => resolveTrainConfig({}, 'fast' as 'quick'), { message: /invalid preset: got "fast"; allowed: paper, quick/ })
  t.is(resolveTrainConfig({}, 'quick').imageSize, 32)
  t.is(resolveTrainConfig({ imageSize: 64 }, 'quick').imageSize, 64) // fields override the preset
  t.is(resolveTrainConfig({ epochs: 2 }, 'quick').steps, undefined) // explicit epochs replace the preset's steps
})

test('resuming from a path without checkpoints says so', async (t) => {
  const dir = tmp()
  await t.throwsAsync(Trainer.resume(dir), { message: new RegExp(`${dir}: holds no checkpoints`) })
  await t.throwsAsync(Trainer.resume(join(dir, 'nope')), { message: /nope: no such file or folder/ })
  const model = join(dir, 'model.safetensors')
  await new DCGAN({ imageSize: 16, featuresG: 2, featuresD: 2, device: 'cpu' }).save(model)
  await t.throwsAsync(Trainer.resume(model), { message: /is a model file without training state/ })
  t.false(existsSync(join(dir, 'checkpoints')))
})

test('cudaGraph: refused by name where it cannot run, before any step; on CUDA the steps replay the graph', async (t) => {
  const refused = (extra: Partial<TrainConfig>) => t.throws(() => resolveTrainConfig({ cudaGraph: true, ...extra }), { code: 'ERR_DCGAN_INVALID_OPTION' })?.message
  t.regex(refused({ device: 'cpu' }) ?? '', /^invalid cudaGraph: got true, but device is 'cpu': CUDA graphs need a GPU/)
  t.regex(refused({ emaDecay: 0.999 }) ?? '', /^invalid cudaGraph: got true, with emaDecay 0.999 /)
  t.regex(refused({ augment: 'translation' }) ?? '', /^invalid cudaGraph: got true, with augment /)
  t.regex(refused({ r1Gamma: 1 }) ?? '', /^invalid cudaGraph: got true, with r1Gamma 1 /)
  t.false(resolveTrainConfig({}).cudaGraph)
  // Not in a data-parallel run: refused before joining a group (nobody listens on that port).
  const dist = new Trainer(tiny(tmp(), { device: 'auto', cudaGraph: true, steps: 2 }))
  await t.throwsAsync(dist.fit({ progress: false, distributed: { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 1 } }), { message: /^cudaGraph: got true in a data-parallel run/ })
  // A run already in the folder, which a refused fit({ overwrite: true }) must leave alone.
  const dir = tmp()
  await new Trainer(tiny(dir, { steps: 2 })).fit({ progress: false })
  const before = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
  const trainer = new Trainer(tiny(dir, { device: 'auto', cudaGraph: true, steps: 6 }))
  if (!(await cudaAvailable())) {
    await t.throwsAsync(trainer.fit({ progress: false, overwrite: true }), { code: 'ERR_DCGAN_INVALID_OPTION', message: /^cudaGraph: got true, but CUDA graphs need a model on a CUDA device; this one is on the CPU/ })
    t.is(trainer.step, 0)
    t.is(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'), before)
    t.deepEqual(listCheckpoints(dir).map((c) => c.step), [2])
    return
  }
  if (!process.env.DCGAN_CUDA_GRAPH_LIB) {
    await t.throwsAsync(trainer.fit({ progress: false, overwrite: true }), { message: /DCGAN_CUDA_GRAPH_LIB/ })
    t.is(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'), before)
    return
  }
  // 3 eager warm-up steps, the capture's step, 2 more replays.
  await trainer.fit({ progress: false, overwrite: true })
  t.is(await trainer.gan.cudaGraphReplays(), 3)
})

test('useCudaGraph on a model on the CPU: refused with the reason, and the model still trains', async (t) => {
  const gan = new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, device: 'cpu', seed: 1 })
  await t.throwsAsync(gan.useCudaGraph({ warmup: 0 }), { code: 'ERR_DCGAN_INVALID_OPTION', message: /^warmup: got 0; allowed: an integer from 1 to 1000/ })
  await t.throwsAsync(gan.useCudaGraph(), { message: 'CUDA graphs need a model on a CUDA device; this one is on the CPU' })
  t.is(await gan.cudaGraphReplays(), null)
  const stats = await gan.trainStep({ data: new Float32Array(4 * 256), shape: [4, 1, 16, 16] })
  t.true(Number.isFinite(stats.lossD))
  t.is(gan.config.stepsDone, 1)
})

test('an unreadable image stops training with its name and how to skip it; skipCorrupt, added on resume, goes on', async (t) => {
  const data = tmp()
  for (let i = 0; i < 6; i++) await saveImageGrid({ data: new Float32Array(256).fill(i / 6), shape: [1, 1, 16, 16] }, join(data, `${i}.png`), { nrow: 1, padding: 0 })
  writeFileSync(join(data, '3.png'), 'not a png') // in the second batch of two (no shuffling)
  const dir = tmp()
  const spec = { kind: 'folder' as const, path: data, shuffle: false }
  const trainer = new Trainer(tiny(dir, { steps: 3, batchSize: 2, checkpointEvery: 1, dataset: spec }))
  const ends: string[] = []
  await t.throwsAsync(trainer.fit({ progress: false, callbacks: { onTrainEnd: (r) => void ends.push(r.reason) } }), {
    code: ErrorCode.FILE,
    message: /3\.png: cannot decode image: .*; to skip unreadable images with a warning, set skipCorrupt: true in the dataset \(dcgan train --skip-corrupt; a resumed run may add it\)$/,
  })
  t.deepEqual(listCheckpoints(dir).map((c) => c.step), [1])
  t.deepEqual(ends, ['failed'], 'onTrainEnd hears that training failed')
  const resumed = await Trainer.resume(dir, { dataset: { ...spec, skipCorrupt: true } })
  const warnings: string[] = []
  const onWarning = (w: Error) => void warnings.push(w.message)
  process.on('warning', onWarning)
  const r = await resumed.fit({ progress: false }).finally(() => process.off('warning', onWarning))
  t.like(r, { reason: 'completed', steps: 3 })
  t.true(warnings.some((w) => /skipped .*3\.png/.test(w)), warnings.join('\n'))
})

test('warnings go to the callbacks that take them (the progress bar prints them), else to process.emitWarning', async (t) => {
  const data = tmp()
  for (let i = 0; i < 4; i++) await saveImageGrid({ data: new Float32Array(256).fill(i / 4), shape: [1, 1, 16, 16] }, join(data, `${i}.png`), { nrow: 1, padding: 0 })
  writeFileSync(join(data, '1.png'), 'not a png')
  const dataset = { kind: 'folder' as const, path: data, shuffle: false, skipCorrupt: true }
  const heard: Array<{ step: number; message: string }> = []
  const fromProcess: string[] = []
  const onProcessWarning = (w: Error) => void fromProcess.push(w.message)
  process.on('warning', onProcessWarning)
  try {
    const trainer = new Trainer(tiny(tmp(), { steps: 1, batchSize: 2, dataset }))
    await trainer.fit({ progress: false, callbacks: { onWarning: (w) => void heard.push(w) } })
    await new Promise((r) => setImmediate(r)) // process warnings are emitted on the next tick
    t.is(heard.length, 1)
    t.is(heard[0].step, 0) // before the step the batch feeds
    t.regex(heard[0].message, /^skipped [^:]*\/1\.png: cannot decode image/)
    t.false(fromProcess.some((m) => m.includes('1.png')), fromProcess.join('\n'))
  } finally {
    process.off('warning', onProcessWarning)
  }
  const lines: string[] = []
  const bar = new ProgressBar({ write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream)
  bar.onWarning({ message: 'x.png is odd' })
  t.deepEqual(lines, ['warning: x.png is odd\n'])
})

test("the progress line's first ETA comes from the first step's time, not 0", (t) => {
  const lines: string[] = []
  const bar = new ProgressBar({ write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream, { intervalMs: 1e9 })
  const step = { lossD: 1, lossG: 2, dReal: 0.5, dFake: 0.5, dFakeAfter: 0.5, epoch: 0, imagesPerSec: 10, totalSteps: 11 }
  bar.onStepEnd({ ...step, step: 1, stepMs: 2000 })
  t.is(lines.length, 1)
  t.regex(lines[0], /^step 1\/11 \(9%\) .* \| ETA 20s\n$/)
})

test('fit on an IterableDataset equals trainStep by hand on the same batches: final state bit for bit, metrics.jsonl rows the step results', async (t) => {
  // Six distinct batches of 8 (a smooth pattern, shifted per batch), then seven steps: the source,
  // a function, starts over for the seventh.
  const batches = Array.from({ length: 6 }, (_, k) => ({ data: new Float32Array(8 * 256).map((_, i) => Math.sin(0.37 * i + k)), shape: [8, 1, 16, 16] }))
  const dir = tmp()
  // Samples and checkpoints between steps must not disturb training (they draw their own noise).
  const trainer = new Trainer(tiny(dir, { steps: 7, batchSize: 8, sampleEvery: 2, sampleCount: 4, checkpointEvery: 3 }))
  const r = await trainer.fit({ progress: false, dataset: new IterableDataset(() => batches) })
  t.like(r, { reason: 'completed', steps: 7 })

  const hand = new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, device: 'cpu', seed: 5 })
  const results = []
  for (let step = 0; step < 7; step++) results.push(await hand.trainStep(batches[step % 6]))
  t.deepEqual(await stateOf(trainer.gan), await stateOf(hand))
  t.deepEqual(trainer.gan.config, hand.config)
  const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.deepEqual(rows.map(({ step, lossD, lossG, dReal, dFake, dFakeAfter }) => ({ step, lossD, lossG, dReal, dFake, dFakeAfter })),
    results.map(({ lossD, lossG, dReal, dFake, dFakeAfter }, k) => ({ step: k + 1, lossD, lossG, dReal, dFake, dFakeAfter })))
  // The five numbers differ from each other, so a swap of two columns shows.
  for (const row of rows) t.is(new Set([row.lossD, row.lossG, row.dReal, row.dFake, row.dFakeAfter]).size, 5, JSON.stringify(row))
})

test('resume is exact with the stabilisers on (preset best, augment, R1 every 3, dSteps 2, spectral norm, TTUR): N, resume, N more equal 2N straight', async (t) => {
  // Preset best (lr 4e-3, realLabel 0.9, emaDecay 0.999, pytorch-example init) at a tiny size, with
  // every stabiliser on. R1 every 3 D updates, 2 D updates a step: after 5 steps the lazy R1's
  // count stands mid-period, so a resume that restarts it shows.
  const stabilised = (outDir: string, steps: number) => ({
    ...tiny(outDir, { steps }), augment: 'translation,cutout', r1Gamma: 1, r1Every: 3, dSteps: 2, emaDecay: 0.99,
    spectralNorm: true, lrD: 2e-3, lrG: 1e-3,
  } as Partial<TrainConfig>)
  const straightDir = tmp()
  const straight = new Trainer(stabilised(straightDir, 10), 'best')
  t.like(straight.config, { realLabel: 0.9, init: 'pytorch-example', lr: 4e-3, emaDecay: 0.99, imageSize: 16 })
  await straight.fit({ progress: false })
  const dir = tmp()
  await new Trainer(stabilised(dir, 5), 'best').fit({ progress: false })
  const resumed = await Trainer.resume(dir, { steps: 10 })
  t.deepEqual(resumed.gan.config.train, straight.gan.config.train)
  await resumed.fit({ progress: false })
  t.is(resumed.step, 10)
  const state = await stateOf(resumed.gan)
  t.true(state.some(([k]) => k.startsWith('ema.gen.')) && state.some(([k]) => k.endsWith('weight_u')))
  t.deepEqual(state, await stateOf(straight.gan))
  // The logged numbers of steps 6 to 10 are the straight run's too.
  const numbers = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map(({ step, lossD, lossG, dReal, dFake, dFakeAfter }) => [step, lossD, lossG, dReal, dFake, dFakeAfter])
  t.deepEqual(numbers(dir), numbers(straightDir))
  // Adam moments, the noise stream and the R1 count came back too: the next steps agree as well.
  const real = { data: new Float32Array(16 * 256).map((_, i) => Math.cos(i)), shape: [16, 1, 16, 16] }
  for (let k = 0; k < 2; k++) t.deepEqual(await resumed.gan.trainStep(real), await straight.gan.trainStep(real), `step ${11 + k}`)
  t.deepEqual(await stateOf(resumed.gan), await stateOf(straight.gan))
})
