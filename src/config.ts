// The types of the model's options. Their defaults and rules live in the Rust core's schema
// (crates/dcgan-core/src/options.rs); the constants here are read from it.
import * as native from './native'
import { OPTION_SCHEMA, toOptionsJson } from './options'

/** How weights are initialised: the seed's N(0, 0.02) for every Conv/BatchNorm weight, or
 * pytorch/examples' BatchNorm weight N(1, 0.02) and bias 0. */
export type Init = 'seed' | 'pytorch-example'

/** The generator's objective: `'non-saturating'` maximises log D(G(z)) (the seed's code);
 * `'minimax'` minimises log(1 − D(G(z))) as the objective is written. */
export type GeneratorLoss = 'non-saturating' | 'minimax'

/** The arithmetic of a training step: `'fp32'` is the seed's (PyTorch parity to 1e-5); `'bf16'` is
 * PyTorch's autocast recipe: convolutions in bfloat16, weights, Adam moments, BatchNorm statistics
 * and the losses (BCE on D's logits) in float32. */
export type Precision = 'fp32' | 'bf16'

/** D's adversarial loss: the seed's `'bce'`, or SNGAN's `'hinge'` on D's logits (G minimises −E[D(G(z))]). */
export type AdversarialLoss = 'bce' | 'hinge'

/** DiffAugment policy applied to every image D sees (real and fake, differentiable for G's loss). */
export type Augment = 'none' | 'translation' | 'cutout' | 'translation,cutout'

/** Where tensors live: `'auto'` is CUDA when available, else the CPU. */
export type DeviceSpec = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`

/** The shape of both networks. `imageSize` 64 with the defaults is exactly the seed's network. */
export interface ModelConfig {
  /** Length of the latent vector z. Default 100. */
  zDim: number
  /** Image channels: 1 (grayscale) or 3 (RGB). Default 1. */
  channels: 1 | 3
  /** Generator width: its last hidden layer has 2·featuresG channels. Default 64. */
  featuresG: number
  /** Discriminator width: its first layer has featuresD channels. Default 64. */
  featuresD: number
  /** A power of two from 16 to 256; other sizes than 64 add or drop middle blocks. Default 64. */
  imageSize: number
  /** Weight initialisation. Default `'seed'`. */
  init: Init
  /** Spectral normalisation of D's convolutions (torch.nn.utils.spectral_norm: one power iteration per training forward). Default false. */
  spectralNorm: boolean
}

/** Adam and the schedule of one training step. Defaults are the seed's (the paper's). */
export interface OptimizerConfig {
  /** Learning rate of both Adams. Default 2e-4. */
  lr: number
  /** Adam β1. Default 0.5. */
  beta1: number
  /** Adam β2. Default 0.999. */
  beta2: number
  /** Adam ε. Default 1e-8. */
  eps: number
  /** Discriminator updates per generator update (k in the paper's algorithm). Default 1. */
  dSteps: number
  /** Default `'non-saturating'`. */
  generatorLoss: GeneratorLoss
  /** Default `'fp32'`. `'bf16'` needs a CPU with bfloat16 convolutions in oneDNN (AVX-512) or a GPU; checkpoints stay float32 either way. */
  precision: Precision
  /** D's learning rate (TTUR). Default: `lr`. */
  lrD?: number
  /** G's learning rate (TTUR). Default: `lr`. */
  lrG?: number
  /** D's BCE target for real images, in (0, 1]; 0.9 is one-sided label smoothing. Default 1. */
  realLabel: number
  /** Default `'bce'`. */
  loss: AdversarialLoss
  /** R1 penalty γ (γ/2·E‖∇ₓD(x)‖² on real images, D's logits); 0 is off. Default 0. */
  r1Gamma: number
  /** Lazy R1: the penalty on every N-th D update, scaled by N. Default 1. */
  r1Every: number
  /** Default `'none'`. */
  augment: Augment
  /** Decay of the generator's moving average (sampling, evaluation and checkpoints use it when set), e.g. 0.999; 0 is off. Default 0. */
  emaDecay: number
}

/** Where and how a model runs; not stored with its weights. */
export interface RuntimeOptions {
  /** Default `'auto'`. */
  device?: DeviceSpec
  /** CPU threads libtorch uses (process-wide), 1 to 1024. Default: libtorch's choice. */
  threads?: number
  /** Seed of the initial weights and of the noise drawn during training, an integer ≥ 0. Default: random. */
  seed?: number
}

/** Everything `new DCGAN(options)` accepts; every field is optional. */
export interface DCGANOptions extends Partial<ModelConfig>, Partial<OptimizerConfig>, RuntimeOptions {}

/** The seed's model: 64×64 grayscale images, 100-dimensional z, 64 features. */
export const DEFAULT_MODEL_CONFIG = Object.freeze({ ...OPTION_SCHEMA.model }) as Readonly<ModelConfig>

/** The seed's optimiser: Adam lr 2e-4, β1 0.5, β2 0.999; one D update per G update. */
export const DEFAULT_OPTIMIZER_CONFIG = Object.freeze({ ...OPTION_SCHEMA.optimizer }) as Readonly<OptimizerConfig>

/**
 * Checks `new DCGAN()` options without building a model: unknown keys (a typo would silently
 * fall back to a default), types and ranges. Throws an error naming the field, the value and what
 * is allowed, with `code` `ERR_DCGAN_INVALID_OPTION`.
 */
export function checkOptions(options: DCGANOptions): void {
  native.checkGanOptions(toOptionsJson(options, 'DCGAN options'))
}
