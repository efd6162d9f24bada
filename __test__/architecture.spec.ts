// The seams of the package: one option schema, promises that park no libuv thread, error codes
// instead of message text, and a module graph without cycles.
import test from 'ava'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, DEFAULT_MODEL_CONFIG, DEFAULT_OPTIMIZER_CONFIG, DEFAULT_TRAIN_CONFIG, ErrorCode, PRESETS, resolveTrainConfig } from '../src/index'
import { OPTION_SCHEMA } from '../src/options'
import { BATCH_OPTION_KEYS, DATASET_SPEC_KEYS, GAN_OPTION_KEYS, TRAIN_CONFIG_KEYS } from './types/option-keys'

const sorted = (keys: Iterable<string>) => [...keys].sort()

test('the TypeScript option types name exactly the fields of the native schema', (t) => {
  t.deepEqual(sorted(Object.keys(TRAIN_CONFIG_KEYS)), sorted(OPTION_SCHEMA.trainKeys))
  t.deepEqual(sorted(Object.keys(GAN_OPTION_KEYS)), sorted(OPTION_SCHEMA.ganKeys))
  t.deepEqual(sorted(Object.keys(DATASET_SPEC_KEYS)), sorted(OPTION_SCHEMA.datasetKeys))
  t.deepEqual(sorted(Object.keys(BATCH_OPTION_KEYS)), sorted(OPTION_SCHEMA.batchKeys))
})

test('defaults and presets come from the native schema, and are what the native side applies', (t) => {
  // The seed's settings (the paper's): a wrong default in the schema fails here.
  t.like(DEFAULT_MODEL_CONFIG, { zDim: 100, channels: 1, featuresG: 64, featuresD: 64, imageSize: 64, init: 'seed' })
  t.like(DEFAULT_OPTIMIZER_CONFIG, { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, dSteps: 1, generatorLoss: 'non-saturating' })
  const resolved = resolveTrainConfig({})
  for (const [k, v] of Object.entries(DEFAULT_TRAIN_CONFIG)) t.deepEqual((resolved as unknown as Record<string, unknown>)[k], v, k)
  t.like(resolveTrainConfig({}, 'quick'), PRESETS.quick)
  // The presets' values as the README documents them, written out: a schema that changed one fails.
  const seed = { zDim: 100, channels: 1, featuresG: 64, featuresD: 64, imageSize: 64, lr: 2e-4, beta1: 0.5, beta2: 0.999, dSteps: 1, batchSize: 128, epochs: 5 }
  t.like(resolveTrainConfig({}, 'paper'), seed)
  const quick = { imageSize: 32, featuresG: 32, featuresD: 32, batchSize: 64, steps: 1500, init: 'pytorch-example', checkpointEvery: 500, sampleEvery: 250 } as const
  t.like(resolveTrainConfig({}, 'quick'), { ...quick, lr: 2e-4, emaDecay: 0, realLabel: 1 })
  t.like(resolveTrainConfig({}, 'best'), { ...quick, lr: 4e-3, emaDecay: 0.999, realLabel: 0.9 })
  t.like(resolveTrainConfig({}, 'best64'), { ...quick, imageSize: 64, lr: 4e-3, emaDecay: 0.999, realLabel: 0.9 })
  t.like(resolveTrainConfig({}, 'best'), { ...PRESETS.quick, emaDecay: PRESETS.best.emaDecay, lr: PRESETS.best.lr, realLabel: PRESETS.best.realLabel })
  t.like(resolveTrainConfig({}, 'best64'), { ...PRESETS.best, imageSize: 64 })
  const gan = new DCGAN({ imageSize: 16, featuresG: 2, featuresD: 2, device: 'cpu' })
  t.deepEqual(gan.config.model, { ...DEFAULT_MODEL_CONFIG, imageSize: 16, featuresG: 2, featuresD: 2 })
  t.deepEqual(gan.config.train, DEFAULT_OPTIMIZER_CONFIG)
})

test('errors carry a stable code', async (t) => {
  t.throws(() => new DCGAN({ imageSize: 48 }), { code: ErrorCode.INVALID_OPTION })
  t.throws(() => new DCGAN({ seed: -1 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid seed: got -1; allowed: an integer ≥ 0' })
  t.throws(() => resolveTrainConfig({ lerningRate: 1 } as never), { code: ErrorCode.INVALID_OPTION })
  t.throws(() => new DCGAN({ lr: Number.NaN }), { instanceOf: RangeError, message: 'invalid lr: got NaN; allowed: a finite number' })
  t.throws(() => new DCGAN({ eps: Infinity }), { instanceOf: RangeError, message: 'invalid eps: got Infinity; allowed: a finite number' })
  t.throws(() => resolveTrainConfig({ dataset: { kind: 'mnist', limit: -Infinity } }), { instanceOf: RangeError, message: 'invalid dataset.limit: got -Infinity; allowed: a finite number' })
  const gan = new DCGAN({ imageSize: 16, featuresG: 2, featuresD: 2, device: 'cpu', seed: 0 })
  const nan = new Float32Array(4 * 16 * 16).fill(Number.NaN)
  await t.throwsAsync(gan.trainStep({ data: nan, shape: [4, 1, 16, 16] }), { code: ErrorCode.INVALID_INPUT })
  await t.throwsAsync(gan.generate(1, { seed: -3 }), { code: ErrorCode.INVALID_OPTION, message: /invalid seed: got -3/ })
  await t.throwsAsync(DCGAN.load(join(tmpdir(), 'no-such-dcgan-file.safetensors')), { code: ErrorCode.FILE })
})

test('64 concurrent calls park no libuv thread: fs work completes while they are queued', async (t) => {
  const gan = new DCGAN({ imageSize: 32, featuresG: 16, featuresD: 16, device: 'cpu', seed: 0 })
  await gan.generate(1)
  const file = join(mkdtempSync(join(tmpdir(), 'dcgan-arch-')), 'small.txt')
  writeFileSync(file, 'x')
  let settled = 0
  const calls = Array.from({ length: 64 }, (_, i) => gan.generate(64, { seed: i }).then(() => settled++))
  // libuv has 4 pool threads; 8 reads in a row need them 8 times over.
  for (let i = 0; i < 8; i++) await readFile(file)
  const settledWhenFsDone = settled
  await Promise.all(calls)
  t.log(`generate calls settled when 8 fs reads were done: ${settledWhenFsDone} of 64`)
  // Were the calls parking pool threads, the reads would queue behind all 64 of them.
  t.true(settledWhenFsDone < 32, `${settledWhenFsDone} calls had settled before the fs reads got a thread`)
})

test('the modules of src/ import each other without cycles', (t) => {
  const src = join(__dirname, '..', 'src')
  const graph = new Map<string, string[]>()
  for (const f of readdirSync(src).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(join(src, f), 'utf8')
    const deps = [...text.matchAll(/from '\.\/([\w-]+)'/g)].map((m) => `${m[1]}.ts`)
    graph.set(f, deps)
  }
  const cycles: string[] = []
  const visit = (node: string, path: string[]) => {
    if (path.includes(node)) return void cycles.push([...path.slice(path.indexOf(node)), node].join(' → '))
    for (const d of graph.get(node) ?? []) visit(d, [...path, node])
  }
  for (const node of graph.keys()) visit(node, [])
  t.deepEqual([...new Set(cycles)], [])
})
