import { statSync } from 'node:fs'
import type { DCGANOptions, DeviceSpec, ModelConfig, OptimizerConfig } from './config'
import * as native from './native'
import { codedError, DcganError, ErrorCode } from './errors'
import { toOptionsJson } from './options'
import { asFloat32, checkFlag } from './values'
import type { DeferredStats } from './native'

/** A batch of images (or any tensor): values in row-major order and the shape, e.g. n×C×H×W. */
export interface Tensor {
  /** The values, row-major (the last dimension varies fastest). */
  data: Float32Array
  /** Size of each dimension; their product is `data.length`. */
  shape: number[]
}

/**
 * A tensor given to dcgan (a batch to train on, images to judge or save): like {@link Tensor}, but
 * the values may also be a Buffer of float32 values (native byte order) or an array of numbers.
 */
export interface TensorInput {
  /** The values, row-major: a Float32Array, a Buffer holding float32 values, or numbers. */
  data: Float32Array | Buffer | ArrayLike<number>
  /** Size of each dimension; their product is the number of values. */
  shape: number[]
}

/** What one training step measured, as the seed's loop logs it (the core's `StepStats`). */
export type StepResult = native.StepStats

export type { DeferredStats }

/** Options of a training step. */
export interface TrainStepOptions {
  /** Latent vectors to use instead of drawn ones: n×zDim values, one per real image. */
  noise?: Float32Array
}

/** Options of sampling. */
export interface GenerateOptions {
  /** Seed of the noise; the same seed gives the same images. Default: the model's own generator. */
  seed?: number
  /** Normalise with the batch's statistics instead of BatchNorm's running statistics. Default false. */
  batchStats?: boolean
}

/** The model's configuration, as it is in use. */
export interface DCGANConfig {
  /** The networks' shape and initialisation, defaults filled in. */
  model: ModelConfig
  /** The optimiser settings and step schedule, defaults filled in. */
  train: OptimizerConfig
  /** The device in use: `'cpu'` or `'cuda:N'`. */
  device: string
  /** Training steps done (generator updates). */
  stepsDone: number
}

/** A value as an error message shows it (the type where the value alone would mislead). */
function describe(v: unknown): string {
  if (typeof v === 'bigint') return `the BigInt ${v}n`
  if (typeof v === 'string') return `the string '${v}'`
  if (Array.isArray(v)) return 'an array'
  if (v === null || v === undefined) return String(v)
  return typeof v === 'object' ? 'an object' : `${String(v)}`
}

/** A tensor argument `{ data, shape }`, checked here so that the error names it (napi's own
 * messages, 'Failed to get Array length', name nothing). */
function tensorArg(t: unknown, what: string): { data: Float32Array; shape: number[] } {
  if (t === null || typeof t !== 'object') {
    throw new DcganError(ErrorCode.INVALID_INPUT, `${what} must be an object { data, shape }, got ${describe(t)}`)
  }
  const { data, shape } = t as Partial<TensorInput>
  if (!Array.isArray(shape)) throw new DcganError(ErrorCode.INVALID_INPUT, `${what}.shape must be an array of integers (e.g. [n, C, S, S]), got ${describe(shape)}`)
  shape.forEach((d: unknown, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new DcganError(ErrorCode.INVALID_INPUT, `${what}.shape[${i}] must be an integer ≥ 0, got ${describe(d)}`)
    }
  })
  return { data: asFloat32(data as Float32Array, `${what}.data`), shape }
}

/** A count or seed argument: a JavaScript number (napi cannot take a BigInt or a string); the
 * native side checks its range. */
function numberArg<T extends number | undefined>(v: T, what: string): T {
  if (v !== undefined && typeof v !== 'number') {
    throw new DcganError(ErrorCode.INVALID_OPTION, `invalid ${what}: got ${describe(v)}; allowed: a number`)
  }
  return v
}

/** Whether `path` is a folder (named here: the native side would only say it is not a regular
 * file); whatever else is wrong with it, the native side says. dcgan.ts cannot import run-dir.ts's
 * statOrNull without an import cycle. */
function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

function wrap(t: native.TensorData): Tensor {
  return { data: t.data, shape: t.shape }
}

/**
 * A DCGAN (Radford et al.) as the seed writes it: generator and discriminator, an Adam for each,
 * BCE losses. Every method that computes runs off the JavaScript thread and returns a Promise.
 *
 * ```ts
 * const gan = new DCGAN({ imageSize: 32, featuresG: 16, featuresD: 16, seed: 1 })
 * const stats = await gan.trainStep({ data, shape: [128, 1, 32, 32] })
 * const samples = await gan.generate(64, { seed: 7 })
 * ```
 */
export class DCGAN {
  readonly #native: native.NativeGan

  /**
   * New networks, initialised as the seed does. Throws on an invalid option, naming it (`code`
   * `ERR_DCGAN_INVALID_OPTION`). The networks are built off the JavaScript thread, where the
   * device is resolved too: a device that is not there rejects the first call (or
   * {@link DCGAN.create}).
   */
  constructor(options?: DCGANOptions)
  /** @internal Wraps a model the native layer loaded. */
  constructor(loaded: native.NativeGan)
  constructor(options: DCGANOptions | native.NativeGan = {}) {
    const { NativeGan } = native.binding()
    this.#native = options instanceof NativeGan ? options : new NativeGan(toOptionsJson(options, 'DCGAN options'))
  }

  /** A new model, resolved once its networks are built (so that a bad device rejects here). */
  static async create(options: DCGANOptions = {}): Promise<DCGAN> {
    const gan = new DCGAN(options)
    await gan.#native.ready()
    return gan
  }

  /** Loads a model written by {@link DCGAN.save}: weights, Adam state, configuration, random state. */
  static async load(path: string, options: { device?: DeviceSpec } = {}): Promise<DCGAN> {
    if (typeof path === 'string' && isFolder(path)) {
      throw new DcganError(ErrorCode.FILE, `${path}: is a folder; DCGAN.load takes a checkpoint file (for a run folder's latest: DCGAN.load(findCheckpoint(${JSON.stringify(path)})))`)
    }
    return new DCGAN(await native.loadGan(path, options.device))
  }

  /** @internal The native model, for this package's own modules (evaluation). */
  get native(): native.NativeGan {
    return this.#native
  }

  /** The configuration in use. */
  get config(): DCGANConfig {
    // An unset optional option (lrD, lrG) is absent, not null, as JavaScript leaves it.
    return JSON.parse(this.#native.configJson(), (_key, v) => (v === null ? undefined : v)) as DCGANConfig
  }

  /**
   * One training iteration on a real batch (n×C×S×S, values in [−1, 1]): `dSteps` discriminator
   * updates, then one generator update.
   */
  async trainStep(real: TensorInput, options: TrainStepOptions = {}): Promise<StepResult> {
    const { data, shape } = tensorArg(real, 'real')
    const noise = options?.noise === undefined ? undefined : asFloat32(options.noise, 'noise')
    return this.#native.trainStep(data, shape, noise)
  }

  /**
   * `trainStep` without waiting for this step's numbers: on a GPU the step is enqueued and the call
   * resolves with the numbers of the previous deferred step (and that step's number, `step`), so
   * the host never waits for the step it just started; null after the first. {@link flushStats}
   * gives the last step's numbers. On the CPU the step is done when the call resolves and only
   * the reporting is one call late. One process only (not in a data-parallel group).
   */
  async trainStepDeferred(real: TensorInput): Promise<DeferredStats | null> {
    const { data, shape } = tensorArg(real, 'real')
    return this.#native.trainStepDeferred(data, shape)
  }

  /**
   * From now on {@link trainStep} and {@link trainStepDeferred} run the training step as a CUDA
   * graph: `warmup` steps (default 3) eagerly, then one step captured and replayed at every later
   * step, so that the host launches one graph instead of some hundreds of kernels. A batch of
   * another size than the captured one (an epoch's shorter last batch) trains eagerly. Needs a
   * model on a CUDA device and `DCGAN_CUDA_GRAPH_LIB` naming `libdcgan_cuda_graph.so` (built by
   * `benchmark/gpu/build-cuda-graph.sh`); refused in a data-parallel group and with `emaDecay`,
   * `augment` or `r1Gamma`. Changing the optimiser settings turns graphs off again.
   */
  async useCudaGraph(options: { warmup?: number } = {}): Promise<void> {
    const warmup = options?.warmup ?? 3
    if (!Number.isInteger(warmup) || warmup < 1 || warmup > 1000) {
      throw new DcganError(ErrorCode.INVALID_OPTION, `warmup: got ${String(warmup)}; allowed: an integer from 1 to 1000 (cuDNN's and cuBLAS's first use must not happen in a capture)`)
    }
    return this.#native.useCudaGraph(warmup)
  }

  /** Steps taken by replaying the CUDA graph of {@link useCudaGraph}; null while graphs are off. */
  async cudaGraphReplays(): Promise<number | null> {
    return this.#native.cudaGraphReplays()
  }

  /** The numbers of the last {@link trainStepDeferred} step, waiting for it; null when none is pending. */
  async flushStats(): Promise<DeferredStats | null> {
    return this.#native.flushStats()
  }

  /** `n` images (n×C×S×S in [−1, 1]) from the generator. */
  async generate(n: number, options: GenerateOptions = {}): Promise<Tensor> {
    return wrap(await this.#native.generate(numberArg(n, 'n'), numberArg(options?.seed, 'seed'), checkFlag(options?.batchStats, 'batchStats')))
  }

  /** Images for the given latent vectors: `z` holds n×zDim values. */
  async generateFrom(z: Float32Array | ArrayLike<number>, options: Pick<GenerateOptions, 'batchStats'> = {}): Promise<Tensor> {
    const values = asFloat32(z, 'z')
    const zDim = this.config.model.zDim
    if (values.length === 0 || values.length % zDim !== 0) {
      throw codedError(RangeError, ErrorCode.INVALID_INPUT, `z has ${values.length} values, which is not a positive multiple of zDim = ${zDim}`)
    }
    return wrap(await this.#native.generateFrom(values, values.length / zDim, checkFlag(options?.batchStats, 'batchStats')))
  }

  /** D(x): the probability that each image (n×C×S×S in [−1, 1]) is real; n values. */
  async discriminate(images: TensorInput, options: Pick<GenerateOptions, 'batchStats'> = {}): Promise<Float32Array> {
    const { data, shape } = tensorArg(images, 'images')
    return (await this.#native.discriminate(data, shape, checkFlag(options?.batchStats, 'batchStats'))).data
  }

  /** Saves everything needed to continue training to one safetensors file, atomically. The
   * network tensors use the seed's PyTorch `state_dict` names (`gen.*`, `disc.*`); `metadata`
   * entries are stored beside dcgan's own. */
  async save(path: string, metadata?: Record<string, string>): Promise<void> {
    return this.#native.save(path, metadata)
  }

  /** Frees the native networks and optimiser state now, after the calls already made, rather
   * than when the garbage collector gets to this object (which frees them too). Later calls reject. */
  async dispose(): Promise<void> {
    return this.#native.dispose()
  }

  /** Whether every weight and buffer is finite. */
  async allFinite(): Promise<boolean> {
    return this.#native.allFinite()
  }

  /** `n` latent vectors (n×zDim values) drawn with `seed`, exactly as `generate(n, { seed })` draws them. */
  async latent(n: number, seed: number): Promise<Float32Array> {
    return (await this.#native.latent(numberArg(n, 'n'), numberArg(seed, 'seed'))).data
  }

  /** Loads weights with the seed's PyTorch names (e.g. saved with `safetensors.torch.save_file(
   * gen.state_dict())`); resolves to which networks were found. */
  async loadWeights(path: string): Promise<Array<'generator' | 'discriminator'>> {
    return (await this.#native.loadWeights(path)) as Array<'generator' | 'discriminator'>
  }

  /** Every parameter and buffer by its PyTorch `state_dict` name. */
  async state(): Promise<Map<string, Tensor>> {
    const all = await this.#native.state()
    return new Map(all.map((t) => [t.name, wrap(t)]))
  }
}

/** Models alive in native memory in this process: created or loaded, and not yet disposed or
 * garbage-collected. Watch it to see that native memory is released. */
export function liveModelCount(): number {
  return native.liveModels()
}

/** Whether libtorch sees a CUDA device (asked off the JavaScript thread: CUDA may take a while to start). */
export async function cudaAvailable(): Promise<boolean> {
  return native.cudaAvailable()
}

/** Layout and scaling of {@link saveImageGrid}: torchvision's `make_grid` options, same names in camelCase. */
export interface GridOptions {
  /** Images per row. Default 8. */
  nrow?: number
  /** Pixels between images and around them. Default 2. */
  padding?: number
  /**
   * Scale `valueRange` (values clamped to it), or the batch's own minimum and maximum, to black…white.
   * Default false: values are taken in [−1, 1], the generator's range (torchvision would take [0, 1]).
   */
  normalize?: boolean
  /** `[low, high]` for `normalize`. Default: the batch's minimum and maximum. */
  valueRange?: [number, number]
  /** The padding's value in [0, 1] (0 black, 1 white), as after scaling. Default 0. */
  padValue?: number
}

/** Writes images (n×C×H×W) as one PNG grid, `nrow` per row (default 8): torchvision's `save_image(make_grid(...))`. */
export async function saveImageGrid(images: TensorInput, path: string, options: GridOptions = {}): Promise<void> {
  const { nrow, padding, normalize, valueRange, padValue } = options ?? {}
  const { data, shape } = tensorArg(images, 'images')
  return native.writeImageGrid(data, shape, path, numberArg(nrow, 'nrow'), numberArg(padding, 'padding'), { normalize: checkFlag(normalize, 'normalize'), valueRange, padValue })
}

/** Every tensor of a safetensors file as float32, with the file's metadata. */
export async function readSafetensors(path: string): Promise<{
  /** Each tensor by its name in the file, converted to float32. */
  tensors: Map<string, Tensor>;
  /** The file's `__metadata__` string map (empty when it has none). */
  metadata: Record<string, string>
}> {
  const file = await native.readTensors(path)
  return {
    tensors: new Map(file.tensors.map((t) => [t.name, wrap(t)])),
    metadata: JSON.parse(file.metadataJson) as Record<string, string>,
  }
}
