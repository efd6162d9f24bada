import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { DeviceSpec } from './config'
import { DCGAN, type Tensor } from './dcgan'
import { type DatasetSpec, mnistImagesPath } from './datasets'
import { codedError, DcganError, ErrorCode, hasErrorCode } from './errors'
import * as native from './native'
import { toOptionsJson } from './options'
import { datasetConfirmed, findCheckpoint, quoted, readCheckpointInfo, RunDir, writeFileAtomic } from './run-dir'

/**
 * What the features of an evaluation come from: the MNIST classifier shipped with this package
 * (`models/mnist-classifier.safetensors`), or — for datasets other than MNIST and models that are
 * not grayscale — the model's own discriminator (the input of its last convolution, flattened).
 */
export type EvalKind = 'mnist-classifier' | 'discriminator-features'

/** The numbers of one set of images. */
export interface EvalScores {
  /**
   * Fréchet distance between a Gaussian fitted to the images' features and the reference one:
   * |μ1 − μ2|² + Tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½). Lower is closer to real data; 0 is identical
   * statistics. Reference: all 60 000 MNIST training images (mnist-classifier) or `samples`
   * other real images of the dataset (discriminator-features). Only comparable within one kind.
   */
  fid: number
  /** exp(E_x[KL(p(y|x) ‖ p(y))]) of the classifier's probabilities: from 1 (every image the same class distribution) to 10 (confident and balanced). mnist-classifier only. */
  inceptionScore?: number
  /** Images per predicted digit 0…9. mnist-classifier only. */
  classHistogram?: number[]
  /** Digits predicted for at least a quarter of their uniform share (count ≥ samples / 40); 10 means no digit is missing. mnist-classifier only. */
  classesCovered?: number
}

/** An evaluation, as `writeEval` stores it in `eval.json`. */
export interface EvalResult {
  /** Whose features were measured: the shipped MNIST classifier's, or the model's own discriminator's. */
  kind: EvalKind
  /** Generated images measured, and real held-out images measured as the yardstick. */
  samples: number
  /** Seed of the noise and of the choice of real images; the same seed gives the same numbers. */
  seed: number
  /** The model's samples. */
  generated: EvalScores
  /** Real held-out images, prepared as training data (resized to the model's size), measured the same way: the best a generator could score. */
  real: EvalScores
  /** Training steps of the model. */
  step: number
  /** The checkpoint file evaluated, when it came from one. */
  checkpoint?: string
}

/** Options of {@link evaluate}. */
export interface EvalOptions {
  /** Generated images, and as many real held-out images. Default 2000; at most 10 000 on MNIST (its test set), and the dataset must hold 2 × samples for discriminator features. */
  samples?: number
  /** Seed of the noise and of the real images chosen. Default 0. */
  seed?: number
  /** Generate with BatchNorm on batch statistics (in chunks of 100) instead of running statistics. Default false. */
  batchStats?: boolean
  /** What the model was trained on. Default MNIST: the classifier measures a grayscale model; any other dataset is measured on discriminator features. */
  dataset?: DatasetSpec
}

/** The MNIST classifier this package ships (trained by `node scripts/train-classifier.mjs`). */
export const CLASSIFIER_PATH = join(__dirname, '..', 'models', 'mnist-classifier.safetensors')

/** Where the real images of a dataset come from: MNIST's test split (held out from training), or the dataset itself. */
function realSource(dataset: DatasetSpec): { datasetJson: string; mnistFile?: string } {
  if (dataset.kind === 'mnist') {
    if (dataset.path !== undefined) {
      throw new DcganError(ErrorCode.INVALID_OPTION, "invalid dataset.path: the mnist dataset comes with the package and takes no path; use kind 'idx' for your own IDX file (dcgan eval --dataset idx)")
    }
    return { datasetJson: JSON.stringify({ kind: 'mnist', split: 'test' }), mnistFile: mnistImagesPath('test') }
  }
  if ((dataset.kind as string) === 'custom') {
    throw codedError(TypeError, ErrorCode.INVALID_OPTION, 'the model was trained on a custom dataset: pass `dataset` (a DatasetSpec of real images like its training data) to evaluate it')
  }
  return { datasetJson: toOptionsJson(dataset, 'the dataset') }
}

function scores(s: native.EvalScores): EvalScores {
  const out: EvalScores = { fid: s.fid }
  if (s.inceptionScore != null) out.inceptionScore = s.inceptionScore
  if (s.classHistogram != null) out.classHistogram = s.classHistogram
  if (s.classesCovered != null) out.classesCovered = s.classesCovered
  return out
}

/**
 * Measures what a model learned: `samples` images generated from noise drawn with `seed`, and as
 * many real held-out images as the yardstick, through the same features and statistics.
 *
 * On MNIST (the default dataset) with a grayscale model, the shipped classifier gives the Fréchet
 * distance of its penultimate features to the statistics of the 60 000 MNIST training images, the
 * Inception Score and the digits covered; real images are MNIST test images. On any other dataset
 * the Fréchet distance is computed on the discriminator's features against `samples` real images
 * of that dataset, and the real yardstick is another `samples` of them.
 *
 * ```ts
 * const r = await evaluate(await DCGAN.load('model.safetensors'), { samples: 2000, seed: 0 })
 * console.log(r.generated.fid, r.real.fid, r.generated.classesCovered)
 * ```
 */
export async function evaluate(gan: DCGAN, options: EvalOptions = {}): Promise<EvalResult> {
  const dataset = options.dataset ?? { kind: 'mnist' }
  if (!(gan instanceof DCGAN)) throw codedError(TypeError, ErrorCode.INVALID_INPUT, 'evaluate(gan, options) takes a DCGAN (new DCGAN(…) or await DCGAN.load(file))')
  const kind: EvalKind = dataset.kind === 'mnist' && gan.config.model.channels === 1 ? 'mnist-classifier' : 'discriminator-features'
  if (kind === 'mnist-classifier' && !existsSync(CLASSIFIER_PATH)) {
    throw new DcganError(ErrorCode.FILE, `${CLASSIFIER_PATH}: the MNIST classifier is missing; reinstall the package or run node scripts/train-classifier.mjs`)
  }
  const r = await native.evaluateGan(gan.native, {
    samples: options.samples ?? 2000,
    seed: options.seed ?? 0,
    batchStats: options.batchStats,
    kind,
    classifier: kind === 'mnist-classifier' ? CLASSIFIER_PATH : undefined,
    ...realSource(dataset),
  })
  return { kind, samples: r.samples, seed: r.seed, generated: scores(r.generated), real: scores(r.real), step: r.step }
}

/**
 * Evaluates a checkpoint (a file, or a run folder for its latest checkpoint) on the dataset its
 * run was trained on (from the checkpoint's training state; MNIST when it has none), or on
 * `dataset`. A dataset path read from the checkpoint is opened only when the checkpoint lies in a
 * run folder whose config.json names the same dataset; otherwise pass `dataset`.
 */
export async function evaluateCheckpoint(pathOrRun: string, options: EvalOptions & { device?: DeviceSpec } = {}): Promise<EvalResult> {
  const file = findCheckpoint(pathOrRun)
  const info = readCheckpointInfo(file)
  const dataset = options.dataset ?? checkpointDataset(file, info.trainer?.config.dataset as DatasetSpec | undefined)
  const gan = await DCGAN.load(file, { device: options.device })
  try {
    return { ...(await evaluate(gan, { ...options, dataset })), checkpoint: file }
  } catch (e) {
    // The run's own images, read where training found them: they may have moved since.
    const gone = dataset?.path !== undefined && [dataset.path].flat().some((p) => !existsSync(p))
    if (options.dataset === undefined && gone && hasErrorCode(e, ErrorCode.FILE)) {
      throw new DcganError(ErrorCode.FILE, `${e.message}; the run trained on ${quoted(dataset.path)}: if its images moved, say where they are now with dcgan eval --data-path PATH (evaluateCheckpoint(run, { dataset }))`)
    }
    throw e
  }
}

/** The dataset a checkpoint names, if its path may be read (see {@link datasetConfirmed}). */
function checkpointDataset(file: string, stored: DatasetSpec | undefined): DatasetSpec | undefined {
  if (stored === undefined || datasetConfirmed(file, stored)) return stored
  throw new DcganError(ErrorCode.INVALID_OPTION, `${file}: names the dataset path ${quoted(stored.path)}, which is not opened: a path read from a checkpoint is used only when the checkpoint lies in a run folder whose config.json names the same dataset. ` +
    'Say which real images to compare with: dcgan eval --data-path PATH [--dataset KIND], or evaluateCheckpoint(run, { dataset })')
}

/** The run folder of a run folder or of a checkpoint file in its `checkpoints/` folder; null for a file elsewhere. */
export function runDirOf(pathOrRun: string): string | null {
  return RunDir.of(pathOrRun)?.path ?? null
}

/** Writes `<runDir>/eval.json` (atomically) with exactly the fields of {@link EvalResult}; returns its path. */
export function writeEval(runDir: string, result: EvalResult): string {
  return writeEvalFile(new RunDir(runDir).evalFile, result)
}

/** Writes `result` to `path` (atomically) with exactly the fields of {@link EvalResult}; returns the path. */
export function writeEvalFile(path: string, result: EvalResult): string {
  const pick = (s: EvalScores): EvalScores => ({
    fid: s.fid,
    ...(s.inceptionScore !== undefined ? { inceptionScore: s.inceptionScore } : {}),
    ...(s.classHistogram !== undefined ? { classHistogram: [...s.classHistogram] } : {}),
    ...(s.classesCovered !== undefined ? { classesCovered: s.classesCovered } : {}),
  })
  const out: EvalResult = {
    kind: result.kind,
    samples: result.samples,
    seed: result.seed,
    generated: pick(result.generated),
    real: pick(result.real),
    step: result.step,
    ...(result.checkpoint !== undefined ? { checkpoint: result.checkpoint } : {}),
  }
  writeFileAtomic(path, JSON.stringify(out, null, 2) + '\n')
  return path
}

/** A few lines for a terminal: what was measured, then FID (and IS, digits covered) of both sides. */
export function formatEval(r: EvalResult): string {
  const head = `${r.checkpoint ?? 'model'} (step ${r.step}): ${r.samples} samples, seed ${r.seed}, ` +
    (r.kind === 'mnist-classifier' ? 'MNIST classifier features vs. 60 000 MNIST training images' : `discriminator features vs. ${r.samples} real images`)
  const rows: string[][] = [r.kind === 'mnist-classifier' ? ['', 'FID', 'IS', 'digits covered'] : ['', 'FID (D features)']]
  for (const [name, s] of [['generated', r.generated], ['real', r.real]] as const) {
    const row = [name, s.fid >= 1 || s.fid === 0 ? s.fid.toFixed(3) : s.fid.toPrecision(4)]
    if (r.kind === 'mnist-classifier') row.push(s.inceptionScore!.toFixed(3), `${s.classesCovered}/10`)
    rows.push(row)
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  const lines = rows.map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('   '))
  const hist = r.kind === 'mnist-classifier' ? [`digits of the samples (0…9): ${r.generated.classHistogram!.join(' ')}`] : []
  return [head, ...lines, ...hist].join('\n')
}

/** The MNIST classifier's numbers for a set of images, and each image's predicted digit. */
export interface ImageScores extends Required<EvalScores> {
  /** The most probable digit of each image. */
  predictions: number[]
}

/**
 * Measures any images (n×1×S×S in [−1, 1], n ≥ 2; resized to 28×28 bilinearly) with the MNIST
 * classifier: Fréchet distance to the statistics of the MNIST training images, Inception Score,
 * digit histogram and coverage, and each image's predicted digit.
 */
export async function evaluateImages(images: Tensor, options: { classifier?: string } = {}): Promise<ImageScores> {
  const data = images?.data instanceof Float32Array ? images.data : Float32Array.from(images?.data ?? [])
  return native.evaluateImages(data, images.shape, options.classifier ?? CLASSIFIER_PATH)
}
