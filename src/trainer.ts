import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Callbacks, type FitResult, MetricsLog, ProgressBar, type StepInfo } from './callbacks'
import { checkpointPath, findCheckpoint, pruneCheckpoints } from './checkpoints'
import { DCGAN, saveImageGrid } from './dcgan'
import { type DataPosition, type Dataset, DatasetExhausted, openDataset } from './datasets'
import * as native from './native'
import { modelOptions, type PresetName, resolveTrainConfig, type TrainConfig } from './train-config'

/** Raised when losses or weights stop being finite; training stops and keeps the last good checkpoint. */
export class NonFiniteError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NonFiniteError'
  }
}

/** Options of {@link Trainer.fit}. */
export interface FitOptions {
  /** Overrides the dataset of the config (e.g. an `IterableDataset` over your own batches). */
  dataset?: Dataset
  /** Your hooks, called in order after the built-in metrics log and progress bar. */
  callbacks?: Callbacks | Callbacks[]
  /** Aborting finishes the current step, writes a checkpoint and resolves with reason 'aborted'. */
  signal?: AbortSignal
  /** The built-in progress bar (on a TTY only). Default true. */
  progress?: boolean
}

/** What a checkpoint stores beside the model, under the metadata key `trainer`. */
interface TrainerState {
  config: TrainConfig
  step: number
  data: DataPosition
}

/** Set by `Trainer.resume` for the constructor call it makes. */
let restoring: { gan: DCGAN; state: TrainerState; file: string } | null = null

/** The seed of the fixed noise batch that sample grids are drawn from. */
const fixedNoiseSeed = (c: TrainConfig) => c.seed + 1_000_003

/**
 * Trains a DCGAN: the seed's loop, with everything around it — datasets, metrics, sample grids
 * from a fixed noise batch, checkpoints that resume exactly, callbacks and cancellation.
 *
 * ```ts
 * const trainer = new Trainer({ outDir: 'runs/mnist' }, 'quick')
 * await trainer.fit({ callbacks: { onStepEnd: (s) => console.log(s.step, s.lossD) } })
 * const again = await Trainer.resume('runs/mnist', { steps: 3000 })
 * ```
 */
export class Trainer {
  /** The run's full configuration: defaults and preset merged in, validated. Written to `outDir/config.json` by `fit`. */
  readonly config: TrainConfig
  /** The model being trained; use it to sample or save between or after `fit` calls. */
  readonly gan: DCGAN
  #step: number
  #data: DataPosition
  #lastCheckpoint: string | null = null

  /** A new run; the config is validated here, before anything is written. */
  constructor(config: Partial<TrainConfig> = {}, preset?: PresetName) {
    this.config = resolveTrainConfig(config, preset)
    const r = restoring
    restoring = null
    this.gan = r?.gan ?? new DCGAN(modelOptions(this.config))
    this.#step = r?.state.step ?? 0
    this.#data = r?.state.data ?? { epoch: 0, position: 0 }
    this.#lastCheckpoint = r?.file ?? null
  }

  /**
   * Continues a run from a checkpoint (a file, or a run folder for its latest checkpoint) exactly
   * where it stopped. `overrides` may extend the run (`steps`, `epochs`) or move its outputs.
   */
  static async resume(pathOrRun: string, overrides: Partial<Pick<TrainConfig, 'steps' | 'epochs' | 'outDir' | 'device' | 'threads' | 'checkpointEvery' | 'sampleEvery' | 'keepCheckpoints'>> = {}): Promise<Trainer> {
    const file = findCheckpoint(pathOrRun)
    const meta = native.readMetadata(file)
    if (!meta.trainer) throw new Error(`${file}: is a model file without training state; load it with DCGAN.load instead`)
    const state = JSON.parse(meta.trainer) as TrainerState
    const config = { ...state.config, ...overrides }
    if (overrides.epochs !== undefined && overrides.steps === undefined) delete config.steps
    resolveTrainConfig(config) // fail on bad overrides before loading anything
    const gan = await DCGAN.load(file, { device: config.device })
    restoring = { gan, state, file }
    return new Trainer(config)
  }

  /** Steps done so far. */
  get step(): number {
    return this.#step
  }

  /** Where the data order stands (what a checkpoint records to resume exactly). */
  get dataPosition(): DataPosition {
    return { ...this.#data }
  }

  /** Runs training to `steps` (or `epochs`), an abort, or the end of an iterable dataset. */
  async fit(options: FitOptions = {}): Promise<FitResult> {
    const c = this.config
    const started = Date.now()
    const dataset = options.dataset ?? openDataset(c.dataset, { imageSize: c.imageSize, channels: c.channels, batchSize: c.batchSize, seed: c.seed, start: this.#data })
    const total = c.steps ?? c.epochs * (dataset.batchesPerEpoch ?? Infinity)
    if (!Number.isFinite(total)) throw new RangeError('the dataset does not know its epoch length: set `steps` in the config')
    mkdirSync(c.outDir, { recursive: true })
    // A dataset given to fit() replaces the config's: record which one was used.
    const used = options.dataset ? { ...c, dataset: options.dataset.spec ?? { kind: 'custom' } } : c
    writeFileSync(join(c.outDir, 'config.json'), JSON.stringify(used, null, 2) + '\n')
    const callbacks: Callbacks[] = [new MetricsLog(join(c.outDir, 'metrics.jsonl')), ...(options.progress === false ? [] : [new ProgressBar()]), ...[options.callbacks ?? []].flat()]
    const emit = async <K extends keyof Callbacks>(name: K, arg: Parameters<NonNullable<Callbacks[K]>>[0]) => {
      for (const cb of callbacks) await (cb[name] as ((a: typeof arg) => unknown) | undefined)?.call(cb, arg)
    }
    let reason: FitResult['reason'] = 'completed'
    let dirty = false // steps done since the last checkpoint
    try {
      while (this.#step < total) {
        if (options.signal?.aborted) {
          reason = 'aborted'
          break
        }
        let batch
        try {
          batch = await dataset.next()
        } catch (e) {
          if (e instanceof DatasetExhausted) {
            reason = 'exhausted'
            break
          }
          throw e
        }
        for (const w of batch.warnings ?? []) process.emitWarning(w, 'DatasetWarning')
        const t0 = performance.now()
        const stats = await this.gan.trainStep(batch).catch((e: Error) => {
          throw e.message.startsWith('non-finite:') ? new NonFiniteError(`${e.message.slice(12)}. The last good checkpoint is ${this.#lastCheckpoint ?? 'none'}.`) : e
        })
        const stepMs = performance.now() - t0
        const previousEpoch = this.#data.epoch
        this.#step++
        dirty = true
        if (batch.epoch !== undefined && batch.position !== undefined) this.#data = { epoch: batch.epoch, position: batch.position }
        if (![stats.lossD, stats.lossG].every(Number.isFinite)) {
          throw new NonFiniteError(`training diverged at step ${this.#step}: lossD = ${stats.lossD}, lossG = ${stats.lossG}. ` +
            `The last good checkpoint is ${this.#lastCheckpoint ?? 'none (no checkpoint was written yet)'}; try a lower lr.`)
        }
        const info: StepInfo = { ...stats, step: this.#step, totalSteps: total, epoch: this.#data.epoch, stepMs, imagesPerSec: (batch.shape[0] * 1000) / stepMs }
        await emit('onStepEnd', info)
        if (this.#data.epoch !== previousEpoch) await emit('onEpochEnd', { epoch: previousEpoch, step: this.#step })
        if (c.sampleEvery > 0 && this.#step % c.sampleEvery === 0) await emit('onSample', { step: this.#step, path: await this.sample() })
        if (this.#step % c.checkpointEvery === 0) {
          await emit('onCheckpoint', { step: this.#step, path: await this.checkpoint() })
          dirty = false
        }
      }
      if (dirty) {
        if (c.sampleEvery > 0 && this.#step % c.sampleEvery !== 0) await emit('onSample', { step: this.#step, path: await this.sample() })
        await emit('onCheckpoint', { step: this.#step, path: await this.checkpoint() })
      }
    } finally {
      await emit('onTrainEnd', this.#result(reason, started))
    }
    return this.#result(reason, started)
  }

  #result(reason: FitResult['reason'], started: number): FitResult {
    return { reason, steps: this.#step, epoch: this.#data.epoch, checkpoint: this.#lastCheckpoint, seconds: (Date.now() - started) / 1000 }
  }

  /** Writes `samples/step-NNNNNN.png` from the fixed noise batch (BatchNorm on batch statistics, as the PyTorch tutorial watches progress). */
  async sample(): Promise<string> {
    const path = join(this.config.outDir, 'samples', `step-${String(this.#step).padStart(6, '0')}.png`)
    const images = await this.gan.generate(this.config.sampleCount, { seed: fixedNoiseSeed(this.config), batchStats: true })
    await saveImageGrid(images, path, { nrow: Math.ceil(Math.sqrt(this.config.sampleCount)) })
    return path
  }

  /** Writes a checkpoint now (atomically) and prunes old ones. Refuses non-finite weights. */
  async checkpoint(): Promise<string> {
    if (!(await this.gan.allFinite())) {
      throw new NonFiniteError(`the weights hold NaN or Infinity at step ${this.#step}; not overwriting the last good checkpoint (${this.#lastCheckpoint ?? 'none'})`)
    }
    const path = checkpointPath(this.config.outDir, this.#step)
    const state: TrainerState = { config: this.config, step: this.#step, data: this.#data }
    await this.gan.save(path, { trainer: JSON.stringify(state) })
    this.#lastCheckpoint = path
    pruneCheckpoints(this.config.outDir, this.config.keepCheckpoints)
    return path
  }
}
