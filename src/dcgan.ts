import type { DCGANOptions, DeviceSpec, ModelConfig, OptimizerConfig } from './config'
import * as native from './native'
import { toOptionsJson } from './options'

/** A batch of images (or any tensor): values in row-major order and the shape, e.g. n×C×H×W. */
export interface Tensor {
  /** The values, row-major (the last dimension varies fastest). */
  data: Float32Array
  /** Size of each dimension; their product is `data.length`. */
  shape: number[]
}

/** What one training step measured, as the seed's loop logs it (the core's `StepStats`). */
export type StepResult = native.StepStats

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

function asFloat32(values: Float32Array | ArrayLike<number>, what: string): Float32Array {
  if (values instanceof Float32Array) return values
  if (values == null || typeof (values as ArrayLike<number>).length !== 'number') {
    throw new TypeError(`${what} must be a Float32Array or an array of numbers`)
  }
  return Float32Array.from(values)
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
    this.#native = options instanceof native.NativeGan ? options : new native.NativeGan(toOptionsJson(options, 'DCGAN options'))
  }

  /** A new model, resolved once its networks are built (so that a bad device rejects here). */
  static async create(options: DCGANOptions = {}): Promise<DCGAN> {
    const gan = new DCGAN(options)
    await gan.#native.ready()
    return gan
  }

  /** Loads a model written by {@link DCGAN.save}: weights, Adam state, configuration, random state. */
  static async load(path: string, options: { device?: DeviceSpec } = {}): Promise<DCGAN> {
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
  async trainStep(real: Tensor, options: TrainStepOptions = {}): Promise<StepResult> {
    const data = asFloat32(real?.data, 'real.data')
    const noise = options.noise === undefined ? undefined : asFloat32(options.noise, 'noise')
    return this.#native.trainStep(data, real.shape, noise)
  }

  /** `n` images (n×C×S×S in [−1, 1]) from the generator. */
  async generate(n: number, options: GenerateOptions = {}): Promise<Tensor> {
    return wrap(await this.#native.generate(n, options.seed, options.batchStats))
  }

  /** Images for the given latent vectors: `z` holds n×zDim values. */
  async generateFrom(z: Float32Array | ArrayLike<number>, options: Pick<GenerateOptions, 'batchStats'> = {}): Promise<Tensor> {
    const values = asFloat32(z, 'z')
    const zDim = this.config.model.zDim
    if (values.length === 0 || values.length % zDim !== 0) {
      throw new RangeError(`z has ${values.length} values, which is not a positive multiple of zDim = ${zDim}`)
    }
    return wrap(await this.#native.generateFrom(values, values.length / zDim, options.batchStats))
  }

  /** D(x): the probability that each image (n×C×S×S in [−1, 1]) is real; n values. */
  async discriminate(images: Tensor, options: Pick<GenerateOptions, 'batchStats'> = {}): Promise<Float32Array> {
    const data = asFloat32(images?.data, 'images.data')
    return (await this.#native.discriminate(data, images.shape, options.batchStats)).data
  }

  /** Saves everything needed to continue training to one safetensors file, atomically. The
   * network tensors use the seed's PyTorch `state_dict` names (`gen.*`, `disc.*`); `metadata`
   * entries are stored beside dcgan's own. */
  async save(path: string, metadata?: Record<string, string>): Promise<void> {
    return this.#native.save(path, metadata)
  }

  /** Whether every weight and buffer is finite. */
  async allFinite(): Promise<boolean> {
    return this.#native.allFinite()
  }

  /** `n` latent vectors (n×zDim values) drawn with `seed`, exactly as `generate(n, { seed })` draws them. */
  async latent(n: number, seed: number): Promise<Float32Array> {
    return (await this.#native.latent(n, seed)).data
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

/** Whether libtorch sees a CUDA device (asked off the JavaScript thread: CUDA may take a while to start). */
export async function cudaAvailable(): Promise<boolean> {
  return native.cudaAvailable()
}

/** Writes images (n×C×H×W in [−1, 1]) as one PNG grid, `nrow` per row (default 8), like torchvision's `save_image`. */
export async function saveImageGrid(images: Tensor, path: string, options: { nrow?: number; padding?: number } = {}): Promise<void> {
  return native.writeImageGrid(asFloat32(images.data, 'images.data'), images.shape, path, options.nrow, options.padding)
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
