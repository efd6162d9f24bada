// Compile-time half of the option-schema test (typechecked by `npm test`, see tsconfig.json here):
// each object must name every field of its TypeScript type and nothing else, so a field added to
// the type but not here (or the reverse) fails to compile; architecture.spec.ts then checks these
// names against the native schema, so a field added on one side only fails the suite.
import type { BatchOptions, DatasetSpec, DCGANOptions, TrainConfig } from '../../src/index'

export const TRAIN_CONFIG_KEYS = {
  zDim: true, channels: true, featuresG: true, featuresD: true, imageSize: true, init: true, spectralNorm: true,
  lr: true, beta1: true, beta2: true, eps: true, dSteps: true, generatorLoss: true, precision: true,
  lrD: true, lrG: true, realLabel: true, loss: true, r1Gamma: true, r1Every: true, augment: true, emaDecay: true,
  device: true, threads: true, seed: true,
  batchSize: true, steps: true, epochs: true, outDir: true, checkpointEvery: true, keepCheckpoints: true,
  sampleEvery: true, sampleCount: true, dataset: true, deferStats: true, cudaGraph: true,
} satisfies Record<keyof TrainConfig, true>

export const GAN_OPTION_KEYS = {
  zDim: true, channels: true, featuresG: true, featuresD: true, imageSize: true, init: true, spectralNorm: true,
  lr: true, beta1: true, beta2: true, eps: true, dSteps: true, generatorLoss: true, precision: true,
  lrD: true, lrG: true, realLabel: true, loss: true, r1Gamma: true, r1Every: true, augment: true, emaDecay: true,
  device: true, threads: true, seed: true,
} satisfies Record<keyof DCGANOptions, true>

export const DATASET_SPEC_KEYS = {
  kind: true, path: true, split: true, skipCorrupt: true, limit: true, shuffle: true, prefetch: true, workers: true,
} satisfies Record<keyof DatasetSpec, true>

export const BATCH_OPTION_KEYS = {
  imageSize: true, channels: true, batchSize: true, seed: true, start: true, shard: true,
} satisfies Record<keyof BatchOptions, true>
