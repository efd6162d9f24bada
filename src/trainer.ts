import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import type { ModelConfig, OptimizerConfig } from './config'
import { type Callbacks, type FitResult, MetricsLog, ProgressBar, type StepInfo } from './callbacks'
import { DCGAN, type DeferredStats, saveImageGrid, type StepResult } from './dcgan'
import { type Batch, type DataPosition, type Dataset, type DatasetSpec, DatasetExhausted, openDataset } from './datasets'
import { type DistributedOptions, DistributedRun, PeerFailedError } from './distributed'
import { DcganError, ErrorCode, hasErrorCode } from './errors'
import { OPTION_SCHEMA } from './options'
import { type CheckpointInfo, datasetConfirmed, findCheckpoint, quoted, readCheckpointInfo, RunDir, writeFileAtomicAsync } from './run-dir'
import { modelOptions, type PresetName, resolveTrainConfig, type TrainConfig } from './train-config'

/** Raised when losses or weights stop being finite (`code` `ERR_DCGAN_NON_FINITE`); training stops and keeps the last good checkpoint. */
export class NonFiniteError extends DcganError {
  constructor(message: string) {
    super(ErrorCode.NON_FINITE, message)
    this.name = 'NonFiniteError'
  }
}

/** Errors thrown inside a collective step (a training step, a vote): every rank of a group saw the
 * same failure or the group is gone, so none of them tells the others it failed. */
const COLLECTIVE = Symbol('collective')
const isCollective = (e: unknown): boolean => typeof e === 'object' && e !== null && COLLECTIVE in e
const markCollective = (e: unknown): unknown => {
  if (typeof e === 'object' && e !== null && !(COLLECTIVE in e)) Object.defineProperty(e, COLLECTIVE, { value: true })
  return e
}
/** A failed rank tells the others (once: the error is marked as collective afterwards). */
async function leaving(e: unknown, dist: DistributedRun | null): Promise<unknown> {
  if (!dist || isCollective(e)) return e
  await dist.abandon()
  return markCollective(e)
}

async function collective<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (e) {
    throw markCollective(e)
  }
}

/** How a training step went: taken with its numbers (`now`), taken with the numbers of the step
 * before it (`late`, deferStats), or not taken because a rank of the group stopped the run. */
type Taken = { kind: 'now'; stats: StepResult } | { kind: 'late'; previous: DeferredStats | null } | { kind: 'stopped' }

/** A step whose numbers are still to be reported, and what happened around it. */
interface StepDone {
  step: number
  epoch: number
  previousEpoch: number
  images: number
  /** When the step started (performance.now()). */
  started: number
}

/** Options of {@link Trainer.fit}. */
export interface FitOptions {
  /** Overrides the dataset of the config (e.g. an `IterableDataset` over your own batches). */
  dataset?: Dataset
  /** Your hooks, called in order after the built-in metrics log and progress bar. */
  callbacks?: Callbacks | Callbacks[]
  /** Aborting finishes the current step, writes a checkpoint and resolves with reason 'aborted'. */
  signal?: AbortSignal
  /** Progress on stderr: a bar on a terminal, a plain line every 10 s elsewhere. Default true. */
  progress?: boolean
  /** A new run (step 0) whose `outDir` already holds a run replaces it when true; otherwise `fit()`
   * refuses with `ERR_DCGAN_RUN_EXISTS` instead of appending to its metrics and overwriting its checkpoints. Default false. */
  overwrite?: boolean
  /** Train as one rank of a data-parallel group (see `distributedFromEnv` for torchrun's variables):
   * `batchSize` is the global batch, each rank trains on its share; rank 0 alone writes the run folder
   * and runs the callbacks. */
  distributed?: DistributedOptions
}

/** What a checkpoint stores beside the model, under the metadata key `trainer`. */
interface TrainerState {
  config: TrainConfig
  step: number
  data: DataPosition
}

/** Fields a resumed run cannot change: the weights' shape and initialisation, the seed (the
 * dataset's order is checked field by field: {@link resumeDataset}). */
const FIXED_ON_RESUME = [...Object.keys(OPTION_SCHEMA.model), 'seed']
/** Dataset fields that decide the data order, with their defaults. The path may be given anew (the
 * data moved); skipCorrupt, prefetch and workers leave the order of readable images as it was. */
const DATASET_ORDER: Record<string, unknown> = { kind: undefined, split: 'train', limit: undefined, shuffle: true }
/** Older checkpoints tried when the newest of a run folder cannot be read. */
const OLDER_TRIED = 8

/** What {@link Trainer.resume} may change. */
export type ResumeOverrides = Partial<Omit<TrainConfig, keyof ModelConfig | 'seed'>>
/** Every training option, those without a default (lrD, lrG) included: what a resumed run hands back. */
const OPTIMIZER_KEYS = OPTION_SCHEMA.optimizerKeys as Array<keyof OptimizerConfig>

/** A model and training state loaded from a checkpoint, handed by `Trainer.resume` to the constructor. */
class Restored {
  constructor(readonly gan: DCGAN, readonly state: TrainerState, readonly file: string) {}
}

/** Loads checkpoint `file` and its checked training state with `overrides` applied. */
async function resumeFrom(file: string, overrides: ResumeOverrides): Promise<Trainer> {
  const info = readCheckpointInfo(file)
  const state = checkedState(info)
  const fixed = Object.keys(overrides).filter((k) => FIXED_ON_RESUME.includes(k) && (overrides as Record<string, unknown>)[k] !== undefined)
  if (fixed.length > 0) {
    throw new DcganError(ErrorCode.INVALID_OPTION, `cannot change ${fixed.join(', ')} when resuming: the checkpoint's weights and data order depend on it; start a new run instead`)
  }
  const outDir = resumeOutDir(file, overrides.outDir)
  const dataset = resumeDataset(file, state.config.dataset, overrides.dataset)
  const config = { ...state.config, ...overrides, outDir, dataset }
  if (overrides.epochs !== undefined && overrides.steps === undefined) delete config.steps
  const resolved = resolveTrainConfig(config) // fail on bad overrides before loading anything
  const gan = await DCGAN.load(file, { device: resolved.device })
  await gan.native.setOptimizer(JSON.stringify(Object.fromEntries(OPTIMIZER_KEYS.map((k) => [k, resolved[k]]))))
  return new Trainer(config, undefined, new Restored(gan, state, file))
}

/**
 * The training state of a checkpoint, checked against its model header: a checkpoint may come
 * from anyone, and a fractional step or a config that contradicts the weights would be written
 * into every later checkpoint and file name. Throws `ERR_DCGAN_FILE` naming the checkpoint.
 */
function checkedState(info: CheckpointInfo): TrainerState {
  const bad = (why: string) => new DcganError(ErrorCode.FILE, `${info.file}: its training state ${why}; it is damaged or was not written by dcgan's Trainer`)
  if (!info.trainer) throw new DcganError(ErrorCode.FILE, `${info.file}: is a model file without training state; load it with DCGAN.load instead`)
  const { config, step, data } = info.trainer as unknown as Record<string, unknown>
  const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0
  if (!isCount(step)) throw bad(`has step ${quoted(step)}; allowed: an integer ≥ 0`)
  if (typeof info.steps === 'number' && step !== info.steps) throw bad(`is at step ${step}, its model at step ${info.steps}`)
  const position = data as Record<string, unknown> | null
  if (typeof position !== 'object' || position === null || !isCount(position.epoch) || !isCount(position.position)) {
    throw bad(`has the data position ${quoted(data)}; allowed: { epoch, position }, integers ≥ 0`)
  }
  if (typeof config !== 'object' || config === null) throw bad('has no config')
  const c = config as Record<string, unknown>
  // A field newer than the checkpoint (spectralNorm, say) is missing from its config: the model
  // header, which the core fills with the default, says what it was.
  for (const k of Object.keys(OPTION_SCHEMA.model)) if (c[k] === undefined) c[k] = info.model[k]
  const differ = Object.keys(OPTION_SCHEMA.model).filter((k) => !isDeepStrictEqual(c[k], info.model[k]))
  if (differ.length > 0) throw bad(`says ${differ.map((k) => `${k} ${quoted(c[k])}`).join(', ')}, its model has ${differ.map((k) => `${k} ${quoted(info.model[k])}`).join(', ')}`)
  if (typeof c.dataset !== 'object' || c.dataset === null) throw bad(`has the dataset ${quoted(c.dataset)}`)
  return info.trainer as unknown as TrainerState
}

/** A resumed run writes into the run folder its checkpoint lies in; `outDir` only places a checkpoint from elsewhere. */
function resumeOutDir(file: string, outDir: string | undefined): string {
  const run = RunDir.of(file)
  if (run === null) {
    if (outDir !== undefined) return outDir
    throw new DcganError(ErrorCode.INVALID_OPTION, `${file}: is not in a run folder's checkpoints/; say where the resumed run goes with outDir`)
  }
  if (outDir !== undefined && resolve(outDir) !== resolve(run.path)) {
    throw new DcganError(ErrorCode.INVALID_OPTION, `cannot move a resumed run to ${outDir}: it continues in ${run.path}, the run folder its checkpoint lies in, beside its metrics and samples; leave out outDir (--out), or copy the run folder to ${outDir} and resume the copy`)
  }
  return run.path
}

/**
 * The dataset of a resumed run: the checkpoint's, if {@link datasetConfirmed} lets its path be
 * opened, or the one `given`, whose data order must be the checkpoint's.
 */
function resumeDataset(file: string, stored: DatasetSpec, given: DatasetSpec | undefined): DatasetSpec {
  if (given === undefined) {
    if (datasetConfirmed(file, stored)) return stored
    throw new DcganError(ErrorCode.INVALID_OPTION, `${file}: names the dataset path ${quoted(stored.path)}, which is not opened: a path read from a checkpoint is used only when the checkpoint lies in a run folder whose config.json names the same dataset. ` +
      'Say where the data is: dcgan train --resume … --data-path PATH, or Trainer.resume(run, { dataset })')
  }
  const a = stored as unknown as Record<string, unknown>
  const b = given as unknown as Record<string, unknown>
  const changed = Object.entries(DATASET_ORDER).filter(([k, d]) => (a[k] ?? d) !== (b[k] ?? d)).map(([k]) => k)
  if (changed.length > 0) {
    throw new DcganError(ErrorCode.INVALID_OPTION, `cannot change dataset when resuming (${changed.map((k) => `${k}: ${quoted(a[k])} in the checkpoint, ${quoted(b[k])} given`).join('; ')}): the data order depends on it; start a new run instead`)
  }
  return given
}

/**
 * `error`, from resuming `file`, the newest checkpoint of run folder `pathOrRun`: when the file
 * cannot be read, the message names the newest older checkpoint that can (resume from it).
 */
async function withOlderCheckpoint(error: unknown, pathOrRun: string, file: string): Promise<unknown> {
  if (!hasErrorCode(error, ErrorCode.FILE) || !statSync(pathOrRun, { throwIfNoEntry: false })?.isDirectory()) return error
  const older = new RunDir(pathOrRun).checkpoints().filter((c) => c.path !== file).reverse().slice(0, OLDER_TRIED)
  for (const c of older) {
    if (!(await readable(c.path))) continue
    return new DcganError(ErrorCode.FILE, `${error.message}. The older checkpoint ${c.path} (step ${c.step}) is intact: resume from it with dcgan train --resume ${c.path} (Trainer.resume of that file); the steps after it are redone`)
  }
  return error
}

/** Whether a checkpoint's header, training state and tensors read (loaded on the CPU, then freed). */
async function readable(file: string): Promise<boolean> {
  try {
    checkedState(readCheckpointInfo(file))
    await (await DCGAN.load(file, { device: 'cpu' })).dispose()
    return true
  } catch {
    return false
  }
}

/** An error of a built-in dataset's batch (per image: the dataset opened) says how to go on past an unreadable image. */
function withSkipHint(e: unknown, dataset: Dataset): unknown {
  if (!hasErrorCode(e, ErrorCode.FILE) || !dataset.spec || dataset.spec.skipCorrupt === true) return e
  return new DcganError(ErrorCode.FILE, `${e.message}; to skip unreadable images with a warning, set skipCorrupt: true in the dataset (dcgan train --skip-corrupt; a resumed run may add it)`)
}

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
  /** The end of the last queued turn (see #exclusive). */
  #turn: Promise<unknown> = Promise.resolve()
  readonly #run: RunDir

  /** A new run; the config is validated here, before anything is written. */
  constructor(config?: Partial<TrainConfig>, preset?: PresetName)
  /** @internal Continues from a checkpoint (see {@link Trainer.resume}). */
  constructor(config: Partial<TrainConfig>, preset: undefined, restored: Restored)
  constructor(config: Partial<TrainConfig> = {}, preset?: PresetName, restored?: Restored) {
    this.config = resolveTrainConfig(config, preset)
    this.#run = new RunDir(this.config.outDir)
    const r = restored instanceof Restored ? restored : null
    this.gan = r?.gan ?? new DCGAN(modelOptions(this.config))
    this.#step = r?.state.step ?? 0
    this.#data = r?.state.data ?? { epoch: 0, position: 0 }
    this.#lastCheckpoint = r?.file ?? null
  }

  /**
   * Continues a run from a checkpoint (a file, or a run folder for its latest checkpoint) exactly
   * where it stopped, in the run folder the checkpoint lies in (a path stored in the checkpoint
   * is never used). `overrides` may extend the run (`steps`, `epochs`), change the optimiser
   * (`lr`, …; it takes effect from the next step) or the schedule of outputs. `outDir` is for a
   * checkpoint outside a run folder; one inside writes to its own folder. The model's shape,
   * `seed` and the dataset's order (`kind`, `split`, `limit`, `shuffle`) cannot change: the weights
   * and the data order depend on them. `dataset` may give the data's path anew, and must when the
   * checkpoint's path is not confirmed by its run folder's config.json (see README, "CLI").
   * A run folder whose newest checkpoint cannot be read fails naming an older one that can.
   */
  static async resume(pathOrRun: string, overrides: ResumeOverrides = {}): Promise<Trainer> {
    const file = findCheckpoint(pathOrRun)
    try {
      return await resumeFrom(file, overrides)
    } catch (e) {
      throw await withOlderCheckpoint(e, pathOrRun, file)
    }
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
    if (c.cudaGraph && options.distributed) {
      throw new DcganError(ErrorCode.INVALID_OPTION, 'cudaGraph: got true in a data-parallel run, but CUDA graphs run in one process (each step of a group waits for its vote); leave cudaGraph off')
    }
    const dist = options.distributed ? await DistributedRun.join(options.distributed, this.gan, c.batchSize) : null
    try {
      // Each rank decodes only its own rows of every batch.
      const shard = dist ? { shard: dist.shardOptions } : {}
      const dataset = options.dataset ?? (await openDataset(c.dataset, { imageSize: c.imageSize, channels: c.channels, batchSize: c.batchSize, seed: c.seed, start: this.#data, ...shard }))
      const total = c.steps ?? c.epochs * (dataset.batchesPerEpoch ?? Infinity)
      if (!Number.isFinite(total)) throw new RangeError('the dataset does not know its epoch length: set `steps` in the config')
      if (dist && !dist.writes) return await this.#fitRank(options, dataset, total, started, dist)
      const unlock = this.#run.lock()
      try {
        // Once per model (a later fit() replays the graph already captured), and before the run
        // folder is touched: a refusal must not cost an old run.
        if (c.cudaGraph && (await this.gan.cudaGraphReplays()) === null) {
          await this.gan.useCudaGraph().catch((e: Error) => {
            throw new DcganError(ErrorCode.INVALID_OPTION, `cudaGraph: got true, but ${e.message}`)
          })
        }
        this.#claimFolder(options.overwrite === true)
        // After a kill, the log may hold steps past the checkpoint resumed from: they are redone.
        if (this.#step > 0) await this.#run.trimMetrics(this.#step)
        return await this.#fit(options, dataset, total, started, dist)
      } finally {
        unlock()
      }
    } catch (e) {
      throw await leaving(e, dist)
    }
  }

  /** A new run does not write over another one unless asked to. */
  #claimFolder(overwrite: boolean): void {
    if (this.#step > 0) return
    const last = this.#run.lastRecordedStep()
    if (last === null) return
    if (!overwrite) {
      // Without a checkpoint (killed before its first) there is nothing to resume from.
      const what = last > 0 ? `checkpoints up to step ${last}); resume it (Trainer.resume, dcgan train --resume), replace it` : 'metrics but no checkpoint to resume from); replace it'
      throw new DcganError(ErrorCode.RUN_EXISTS, `${this.config.outDir}: already holds a run (${what} (overwrite: true, --overwrite) or choose another outDir`)
    }
    this.#run.clear()
  }

  /**
   * The next batch, or why training stops before it: without a group, an aborted `signal` or the
   * end of the dataset. In a group a rank whose dataset ran out says so in the vote at the start
   * of the step ({@link DistributedRun.vote}), which stops every rank after the same step.
   */
  async #nextBatch(dataset: Dataset, signal: AbortSignal | undefined, dist: DistributedRun | null): Promise<Batch | 'aborted' | 'exhausted'> {
    if (!dist && signal?.aborted) return 'aborted'
    try {
      return await dataset.next()
    } catch (e) {
      if (!(e instanceof DatasetExhausted)) throw withSkipHint(e, dataset)
      if (dist) await collective(() => dist.vote(true))
      return 'exhausted'
    }
  }

  /** The training step: in a group after every rank's vote (`stopped`: some rank stopped the run);
   * `deferred`, with the numbers of the step before it. */
  #trainStep(batch: Batch, signal: AbortSignal | undefined, dist: DistributedRun | null, deferred = false): Promise<Taken> {
    const take = async (): Promise<Taken> => {
      if (dist) {
        const stats = await dist.step(batch, signal?.aborted === true)
        return stats ? { kind: 'now', stats } : { kind: 'stopped' }
      }
      return deferred ? { kind: 'late', previous: await this.gan.trainStepDeferred(batch) } : { kind: 'now', stats: await this.gan.trainStep(batch) }
    }
    return collective(() => take().catch((e: unknown) => {
      throw hasErrorCode(e, ErrorCode.NON_FINITE) ? new NonFiniteError(`${e.message}. The last good checkpoint is ${this.#lastCheckpoint ?? 'none'}.`) : e
    }))
  }

  /** A rank other than 0 of a distributed run: the same steps on its shard, nothing written. */
  async #fitRank(options: FitOptions, dataset: Dataset, total: number, started: number, dist: DistributedRun): Promise<FitResult> {
    let reason: FitResult['reason'] = 'completed'
    try {
      while (this.#step < total) {
        const batch = await this.#nextBatch(dataset, options.signal, dist)
        const taken = typeof batch === 'string' ? null : await this.#trainStep(batch, options.signal, dist)
        if (typeof batch === 'string' || taken?.kind !== 'now') {
          reason = typeof batch === 'string' ? batch : 'aborted'
          break
        }
        this.#advance(batch)
      }
      await this.#finishGroup(dist)
    } catch (e) {
      throw await leaving(e, dist)
    }
    return this.#result(reason, started)
  }

  /** One step more, and the data order where `batch` left it. */
  #advance(batch: Batch): void {
    this.#step++
    if (batch.epoch !== undefined && batch.position !== undefined) this.#data = { epoch: batch.epoch, position: batch.position }
  }

  /** The last vote (so that a rank whose end of the run failed stops the others instead of leaving
   * them in the final barrier), then the barrier, and the group is left. */
  async #finishGroup(dist: DistributedRun): Promise<void> {
    await collective(() => dist.vote(false))
    await collective(() => dist.finish())
  }

  async #fit(options: FitOptions, dataset: Dataset, total: number, started: number, dist: DistributedRun | null): Promise<FitResult> {
    const c = this.config
    // A dataset given to fit() replaces the config's: record which one was used.
    const used = options.dataset ? { ...c, dataset: options.dataset.spec ?? { kind: 'custom' } } : c
    await writeFileAtomicAsync(this.#run.configFile, JSON.stringify(used, null, 2) + '\n')
    const callbacks: Callbacks[] = [new MetricsLog(this.#run.metricsFile), ...(options.progress === false ? [] : [new ProgressBar()]), ...[options.callbacks ?? []].flat()]
    const emit = async <K extends keyof Callbacks>(name: K, arg: Parameters<NonNullable<Callbacks[K]>>[0]) => {
      for (const cb of callbacks) await (cb[name] as ((a: typeof arg) => unknown) | undefined)?.call(cb, arg)
    }
    let reason: FitResult['reason'] = 'completed'
    let dirty = false // steps done since the last checkpoint
    // With deferStats a step's numbers arrive with the next step: the step they belong to waits here.
    const deferred = c.deferStats && !dist
    const warn = async (message: string) => {
      const heard = callbacks.filter((cb) => cb.onWarning)
      if (heard.length === 0) process.emitWarning(message, 'DcganWarning')
      for (const cb of heard) await cb.onWarning!({ step: this.#step, message })
    }
    let waiting: StepDone | null = null
    let lastReport = 0
    const report = async (done: StepDone, stats: StepResult) => {
      if (![stats.lossD, stats.lossG].every(Number.isFinite)) {
        throw new NonFiniteError(`training diverged at step ${done.step}: lossD = ${stats.lossD}, lossG = ${stats.lossG}. ` +
          `The last good checkpoint is ${this.#lastCheckpoint ?? 'none (no checkpoint was written yet)'}; try a lower lr.`)
      }
      // Deferred, a step's time runs from the previous step's numbers to its own.
      const stepMs = performance.now() - Math.max(done.started, lastReport)
      lastReport = performance.now()
      await emit('onStepEnd', { ...stats, step: done.step, totalSteps: total, epoch: done.epoch, stepMs, imagesPerSec: (done.images * 1000) / stepMs })
      if (done.epoch !== done.previousEpoch) await emit('onEpochEnd', { epoch: done.previousEpoch, step: done.step })
    }
    const catchUp = async () => {
      const done = waiting
      waiting = null
      const last = done && (await this.gan.flushStats())
      if (done && last) await report(done, last.stats)
    }
    try {
      if (c.deferStats && dist) await warn('deferStats has no effect in a data-parallel run: each step waits for its vote')
      while (this.#step < total) {
        const batch = await this.#nextBatch(dataset, options.signal, dist)
        if (typeof batch === 'string') {
          reason = batch
          break
        }
        for (const w of batch.warnings ?? []) await warn(w)
        const previousEpoch = this.#data.epoch
        const started = performance.now()
        // The step and the state it advances, as one turn: a checkpoint() asked for meanwhile
        // waits for the step boundary instead of pairing new weights with the old step count.
        const taken = await this.#exclusive(async () => {
          const t = await this.#trainStep(batch, options.signal, dist, deferred)
          if (t.kind !== 'stopped') this.#advance(batch)
          return t
        })
        if (taken.kind === 'stopped') {
          reason = 'aborted'
          break
        }
        dirty = true
        const done: StepDone = { step: this.#step, epoch: this.#data.epoch, previousEpoch, images: batch.shape[0] * (batch.shard?.worldSize ?? 1), started }
        const sampleDue = c.sampleEvery > 0 && this.#step % c.sampleEvery === 0
        const checkpointDue = this.#step % c.checkpointEvery === 0
        if (taken.kind === 'now') {
          await report(done, taken.stats)
        } else {
          const previous = waiting
          waiting = done // first: if reporting the previous step throws, the catch-up reports this one
          if (previous && taken.previous) await report(previous, taken.previous.stats)
          if (sampleDue || checkpointDue || this.#step >= total) await catchUp()
        }
        if (sampleDue) await emit('onSample', { step: this.#step, path: await this.sample() })
        if (checkpointDue) {
          await emit('onCheckpoint', { step: this.#step, path: await this.checkpoint() })
          dirty = false
        }
      }
      await catchUp()
      if (dirty) {
        if (c.sampleEvery > 0 && this.#step % c.sampleEvery !== 0) await emit('onSample', { step: this.#step, path: await this.sample() })
        await emit('onCheckpoint', { step: this.#step, path: await this.checkpoint() })
      }
      if (dist) await this.#finishGroup(dist)
    } catch (e) {
      reason = 'failed'
      // The numbers of a deferred step that completed before the failure still reach the log.
      await catchUp().catch(() => undefined)
      await leaving(e, dist)
      // The ranks completed the same steps: keep them, so that resuming loses no work.
      if (e instanceof PeerFailedError && dirty) await emit('onCheckpoint', { step: this.#step, path: await this.checkpoint() }).catch(() => undefined)
      throw e
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
    const path = this.#run.sampleFile(this.#step)
    const images = await this.gan.generate(this.config.sampleCount, { seed: fixedNoiseSeed(this.config), batchStats: true })
    await saveImageGrid(images, path, { nrow: Math.ceil(Math.sqrt(this.config.sampleCount)) })
    return path
  }

  /** Runs `work` after every earlier turn (a training step, a checkpoint) has finished. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(work)
    this.#turn = run.catch(() => undefined)
    return run
  }

  /** Writes a checkpoint (atomically) and prunes old ones. Refuses non-finite weights. Called while
   * `fit()` runs, it is taken at the next step boundary, so weights and step count agree. */
  async checkpoint(): Promise<string> {
    return this.#exclusive(() => this.#checkpointNow())
  }

  async #checkpointNow(): Promise<string> {
    if (!(await this.gan.allFinite())) {
      throw new NonFiniteError(`the weights hold NaN or Infinity at step ${this.#step}; not overwriting the last good checkpoint (${this.#lastCheckpoint ?? 'none'})`)
    }
    const path = this.#run.checkpointFile(this.#step)
    const state: TrainerState = { config: this.config, step: this.#step, data: this.#data }
    await this.gan.save(path, { trainer: JSON.stringify(state) })
    this.#lastCheckpoint = path
    this.#run.pruneCheckpoints(this.config.keepCheckpoints)
    return path
  }
}
