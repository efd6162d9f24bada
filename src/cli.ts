#!/usr/bin/env node
// The `dcgan` command: train, generate, interpolate, arithmetic, eval, export, inspect, report.
import { Command, InvalidArgumentError, Option } from 'commander'
import { closeSync, openSync, readFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { DeviceSpec } from './config'
import { DCGAN, cudaAvailable, saveImageGrid } from './dcgan'
import { evaluateCheckpoint, formatEval, runDirOf, writeEvalFile } from './eval'
import { exportOnnx, exportWeb } from './export'
import type { DatasetKind, DatasetSpec } from './datasets'
import { missingInstall } from './native'
import { distributedFromEnv, launchLocal, rankDevice } from './distributed'
import { DcganError, ErrorCode } from './errors'
import { OPTION_SCHEMA } from './options'
import { reportPaths, writeReport } from './report'
import { datasetConfirmed, findCheckpoint, readCheckpointInfo, statOrNull } from './run-dir'
import { interpolate, saveImages, vectorArithmetic } from './sampling'
import { PRESETS, type PresetName, type TrainConfig } from './train-config'
import { Trainer } from './trainer'

/** This package's version, from its package.json. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version
}

/** An integer flag value; commander reports the message with the flag's name. */
/** A decimal integer: not '' or ' ' (which Number reads as 0), '1e3', '0x10' or one beyond 2^53 − 1. */
function int(value: string): number {
  const n = Number(value)
  if (!/^\s*[-+]?\d+\s*$/.test(value)) throw new InvalidArgumentError(`'${value}' is not an integer.`)
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${value}' is beyond ${Number.MAX_SAFE_INTEGER}, the largest integer taken.`)
  return n
}

/** A seed: an integer from 0 to 2^53 − 1 (the largest a JavaScript number holds exactly). */
function seed(value: string): number {
  const n = int(value)
  if (n < 0) throw new InvalidArgumentError(`'${value}' is not a seed: an integer from 0 to ${Number.MAX_SAFE_INTEGER}.`)
  return n
}

/** Images `generate` makes at most: the core's MAX_COUNT (crates/dcgan-core/src/gan.rs). */
const MAX_COUNT = 65536

/** `--count`: checked here so that the message names the flag, not the API's argument. */
function count(value: string): number {
  const n = int(value)
  if (n < 1 || n > MAX_COUNT) throw new InvalidArgumentError(`'${value}' is not an integer from 1 to ${MAX_COUNT}.`)
  return n
}

function num(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`'${value}' is not a number.`)
  return n
}

/** A comma-separated list of seeds, none of them empty ('1,2,' is refused, not read as 1,2,0). */
function seeds(value: string): number[] {
  return value.split(',').map((s) => {
    if (s.trim() === '') throw new InvalidArgumentError(`'${value}' has an empty seed: give seeds separated by commas, e.g. 1,2,3.`)
    return seed(s)
  })
}

/** Config fields as flags: [field, flag, parser, description]. */
const FIELDS: Array<[keyof TrainConfig, string, ((v: string) => unknown) | null, string]> = [
  ['imageSize', '--image-size <n>', int, 'image side: 16, 32, 64, 128 or 256'],
  ['zDim', '--z-dim <n>', int, 'latent vector length'],
  ['channels', '--channels <n>', int, '1 (grayscale) or 3 (RGB)'],
  ['featuresG', '--features-g <n>', int, 'generator width'],
  ['featuresD', '--features-d <n>', int, 'discriminator width'],
  ['init', '--init <name>', null, "'seed' or 'pytorch-example'"],
  ['lr', '--lr <x>', num, 'Adam learning rate'],
  ['beta1', '--beta1 <x>', num, 'Adam β1'],
  ['beta2', '--beta2 <x>', num, 'Adam β2'],
  ['eps', '--eps <x>', num, 'Adam ε'],
  ['dSteps', '--d-steps <n>', int, 'discriminator updates per generator update'],
  ['generatorLoss', '--generator-loss <name>', null, "'non-saturating' or 'minimax'"],
  ['precision', '--precision <name>', null, "'fp32' (default) or 'bf16' (autocast: convolutions in bfloat16)"],
  ['spectralNorm', '--spectral-norm', null, "spectral normalisation of D's convolutions"],
  ['lrD', '--lr-d <x>', num, "D's learning rate (TTUR; default: --lr)"],
  ['lrG', '--lr-g <x>', num, "G's learning rate (TTUR; default: --lr)"],
  ['realLabel', '--real-label <x>', num, "D's target for real images (0.9: one-sided label smoothing)"],
  ['loss', '--loss <name>', null, "'bce' (default) or 'hinge'"],
  ['r1Gamma', '--r1-gamma <x>', num, 'R1 penalty on real images (0: off)'],
  ['r1Every', '--r1-every <n>', int, 'lazy R1: penalty every N D updates, scaled by N'],
  ['augment', '--augment <policy>', null, "DiffAugment: 'none', 'translation', 'cutout' or 'translation,cutout'"],
  ['emaDecay', '--ema-decay <x>', num, "generator moving average decay, e.g. 0.999 (0: off); samples use it"],
  ['batchSize', '--batch-size <n>', int, 'images per step'],
  ['steps', '--steps <n>', int, 'training steps (overrides --epochs)'],
  ['epochs', '--epochs <n>', int, 'passes over the dataset'],
  ['seed', '--seed <n>', seed, 'seed of weights, noise and data order'],
  ['device', '--device <name>', null, "'auto', 'cpu', 'cuda' or 'cuda:N'"],
  ['threads', '--threads <n>', int, 'CPU threads for libtorch'],
  ['outDir', '--out <dir>', null, 'run folder for metrics, samples, checkpoints'],
  ['checkpointEvery', '--checkpoint-every <n>', int, 'steps between checkpoints'],
  ['keepCheckpoints', '--keep-checkpoints <n>', int, 'checkpoints kept'],
  ['sampleEvery', '--sample-every <n>', int, 'steps between sample grids (0: never)'],
  ['sampleCount', '--sample-count <n>', int, 'images per sample grid'],
  ['deferStats', '--defer-stats', null, "report each step's numbers one step late (the host does not wait for the GPU each step)"],
  ['cudaGraph', '--cuda-graph', null, 'run the training step as a CUDA graph (CUDA only; needs DCGAN_CUDA_GRAPH_LIB)'],
]

function readJson(path: string): Partial<TrainConfig> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new Error(`${path}: cannot read the config file (${(e as Error).message})`)
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`)
  }
}

const datasetKinds = OPTION_SCHEMA.datasetKinds as DatasetKind[]

/** `--nproc N`: this same command as N local ranks, supervised (see `launchLocal`). */
async function launchTrain(opts: Record<string, unknown>): Promise<void> {
  const argv = process.argv.slice(2)
  const i = argv.findIndex((a) => a === '--nproc' || a.startsWith('--nproc='))
  argv.splice(i, argv[i].includes('=') ? 1 : 2)
  const timeout = opts.distTimeout as number | undefined
  // Ctrl-C, SIGTERM or SIGHUP, to the launcher or to its process group, reaches every rank (twice
  // within milliseconds when sent to the group: the ranks take that as one, see stopOnSignals):
  // they agree to stop after the same step and rank 0 writes a checkpoint; the launcher waits.
  process.stderr.on('error', () => undefined) // a closed terminal (SIGHUP) fails writes to stderr
  process.once('SIGHUP', () => (hungUp = true))
  const env = { [FORWARDED_ENV]: '1' }
  const result = await launchLocal(opts.nproc as number, process.argv[1], argv, { timeout, forwardSignals: STOP_SIGNALS, env })
  if (result.code !== 0) throw new Error(`distributed training failed: ${result.failures.join('; ')}`)
}

async function train(opts: Record<string, unknown>): Promise<void> {
  if (opts.nproc !== undefined && process.env.WORLD_SIZE === undefined) return launchTrain(opts)
  const fromEnv = distributedFromEnv()
  const distributed = fromEnv
    ? { ...fromEnv, ...(opts.distTimeout === undefined ? {} : { timeout: opts.distTimeout as number }), ...(opts.syncBatchNorm === true ? { syncBatchNorm: true } : {}) }
    : undefined
  if (opts.syncBatchNorm === true && !distributed) throw new DcganError(ErrorCode.INVALID_OPTION, '--sync-batch-norm applies to a data-parallel run: add --nproc N, or launch with torchrun\'s variables (WORLD_SIZE…)')
  const writes = (distributed?.rank ?? 0) === 0
  const flags: Partial<TrainConfig> = {}
  for (const [field] of FIELDS) if (opts[field] !== undefined) (flags as Record<string, unknown>)[field] = opts[field]
  const trainer = opts.resume ? await resumeTrainer(opts, flags, distributed !== undefined) : await newTrainer(opts, flags, distributed !== undefined)
  const controller = stopOnSignals()
  if (opts.resume && writes) console.error(`resuming ${opts.resume} at step ${trainer.step}`)
  const c = trainer.config
  if (writes) console.error(`training ${c.imageSize}×${c.imageSize}, features ${c.featuresG}/${c.featuresD}, batch ${c.batchSize}, ${c.steps ?? `${c.epochs} epochs of`} ${c.steps ? 'steps' : c.dataset.kind} → ${c.outDir}`)
  const before = trainer.step
  try {
    const result = await trainer.fit({ signal: controller.signal, overwrite: opts.overwrite === true, distributed, progress: writes })
    if (!writes) return
    console.error(`${result.reason} after ${result.steps} steps in ${result.seconds.toFixed(0)} s; checkpoint ${result.checkpoint}`)
    if (result.reason === 'aborted' && result.checkpoint) console.error(`continue with: dcgan train --resume ${c.outDir}`)
  } finally {
    // Also after a failure (a diverged run, say): the report shows what happened. Only when steps
    // were taken: a fit refused before it took the run folder (locked by another trainer, say)
    // must not write into it.
    if (trainer.step > before && writes) await reportAfterTraining(c.outDir, c.dataset)
  }
}

/** Signals that stop training after the step with a checkpoint, as Ctrl-C does: a terminal that
 * closes (SIGHUP), `kill`, systemd, docker stop, Slurm (SIGTERM). A second one quits at once. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
/** Set when SIGHUP stopped training: the process then ends by SIGHUP (see `main`). */
let hungUp = false

/** Set by `--nproc`'s launcher in its ranks' environment: it forwards the stop signals to them. */
const FORWARDED_ENV = 'DCGAN_SIGNALS_FORWARDED'
/** For a rank of `--nproc`, a repeat sooner than this is the same request: a signal sent to the
 * process group (a terminal's Ctrl-C, systemd, Slurm) reaches it twice, directly and forwarded by
 * its launcher. Elsewhere a second signal quits at once, however soon. */
const SAME_SIGNAL_MS = 1000

function stopOnSignals(): AbortController {
  const controller = new AbortController()
  // A closed terminal fails writes to stderr (EIO): the progress lines are lost, not the run.
  process.stderr.on('error', () => undefined)
  const launched = process.env[FORWARDED_ENV] === '1'
  const same = launched ? SAME_SIGNAL_MS : 0
  let first = 0
  if (launched && process.channel) {
    // The launcher's IPC channel closes when it dies without passing anything on (SIGKILL, the
    // OOM killer): stop as for a signal rather than train on with no one to wait for the run.
    process.channel.unref()
    process.once('disconnect', () => {
      if (first > 0) return
      first = Date.now()
      console.error('\nthe launcher is gone: finishing the current step and writing a checkpoint')
      controller.abort()
    })
  }
  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      if (first > 0 && Date.now() - first < same) return
      if (first > 0) return dieOf(signal)
      first = Date.now()
      hungUp ||= signal === 'SIGHUP'
      console.error(`\ninterrupted${signal === 'SIGINT' ? '' : ` by ${signal}`}: finishing the current step and writing a checkpoint (${signal === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to quit at once)`)
      controller.abort()
    })
  }
  return controller
}

/**
 * Quits at once, killed by `signal` itself (a shell reports 128 + its number). Not process.exit():
 * it would run libtorch's static destructors under the thread still computing the step (a crash).
 */
function dieOf(signal: NodeJS.Signals): void {
  for (const s of STOP_SIGNALS) process.removeAllListeners(s) // back to the default action
  process.kill(process.pid, signal)
}

/** A new run from the preset, the config file and the flags. */
async function newTrainer(opts: Record<string, unknown>, flags: Partial<TrainConfig>, distributed: boolean): Promise<Trainer> {
  const fromFile = opts.config ? readJson(opts.config as string) : {}
  const config: Partial<TrainConfig> = { ...fromFile, ...flags }
  if (distributed) config.device = await localRankDevice(config.device)
  if (opts.dataset !== undefined || opts.dataPath !== undefined || opts.skipCorrupt || opts.limit !== undefined) {
    config.dataset = {
      ...(fromFile.dataset ?? { kind: 'mnist' }),
      ...(opts.dataset !== undefined ? { kind: opts.dataset as DatasetKind } : {}),
      ...(opts.dataPath !== undefined ? { path: opts.dataPath as string } : {}),
      ...(opts.skipCorrupt ? { skipCorrupt: true } : {}),
      ...(opts.limit !== undefined ? { limit: opts.limit as number } : {}),
    }
  }
  return new Trainer(config, opts.preset as PresetName | undefined)
}

/** Flags that set up a new run and that a resumed run, which keeps its checkpoint's config, cannot apply. */
const NEW_RUN_ONLY: Array<[string, string]> = [['config', '--config'], ['preset', '--preset'], ['overwrite', '--overwrite']]

/** `--resume`: the flags a resumed run can take are applied, the others refused by name. */
async function resumeTrainer(opts: Record<string, unknown>, flags: Partial<TrainConfig>, distributed: boolean): Promise<Trainer> {
  const ignored = NEW_RUN_ONLY.filter(([key]) => opts[key] !== undefined).map(([, flag]) => flag)
  if (ignored.length > 0) {
    throw new DcganError(ErrorCode.INVALID_OPTION, `${ignored.join(', ')}: ${ignored.length > 1 ? 'apply' : 'applies'} to a new run; a resumed run keeps its checkpoint's config. Change what may change with flags (--steps, --lr, …), or start a new run without --resume`)
  }
  const resume = opts.resume as string
  const dataset = resumeDataset(opts, resume)
  if (distributed) flags.device = await localRankDevice(flags.device ?? checkpointDevice(resume))
  return Trainer.resume(resume, { ...flags, ...(dataset ? { dataset } : {}) })
}

/**
 * The dataset flags of `--resume`, over the checkpoint's dataset: --data-path (the data moved, or
 * the checkpoint's path is not trusted) and --skip-corrupt apply; --dataset and --limit would
 * change the data order, so they are refused unless they repeat the run's.
 */
function resumeDataset(opts: Record<string, unknown>, resume: string): DatasetSpec | undefined {
  if (opts.dataset === undefined && opts.dataPath === undefined && !opts.skipCorrupt && opts.limit === undefined) return undefined
  const stored = storedConfig(resume)?.dataset
  if (!stored) return undefined // unreadable: Trainer.resume says why
  const changed = ([['--dataset', 'kind', opts.dataset], ['--limit', 'limit', opts.limit]] as const).filter(([, key, v]) => v !== undefined && v !== stored[key])
  if (changed.length > 0) {
    const was = changed.map(([flag, key]) => `${flag} ${stored[key] ?? '(none)'}`).join(', ')
    throw new DcganError(ErrorCode.INVALID_OPTION, `${changed.map(([flag, , v]) => `${flag} ${v}`).join(', ')}: a resumed run cannot change its dataset (it trained with ${was}): the data order depends on it; start a new run instead`)
  }
  // Without --data-path the checkpoint's own path goes on: only if its run folder confirms it, as
  // for a resume without dataset flags (otherwise Trainer.resume would take it as the user's).
  if (opts.dataPath === undefined && stored.path !== undefined && !datasetConfirmed(findCheckpoint(resume), stored)) return undefined
  return { ...stored, ...(opts.dataPath !== undefined ? { path: opts.dataPath as string } : {}), ...(opts.skipCorrupt ? { skipCorrupt: true } : {}) }
}

/** The config stored in the checkpoint of `runOrFile`, or undefined when it cannot be read. */
function storedConfig(runOrFile: string): Partial<TrainConfig> | undefined {
  try {
    return readCheckpointInfo(findCheckpoint(runOrFile)).trainer?.config as Partial<TrainConfig> | undefined
  } catch {
    return undefined
  }
}

/** The device a checkpoint's run trained on. */
function checkpointDevice(runOrFile: string): DeviceSpec | undefined {
  return storedConfig(runOrFile)?.device
}

/** Under a launcher that sets LOCAL_RANK (torchrun, `--nproc`), GPU N for local rank N. */
async function localRankDevice(device: DeviceSpec | undefined): Promise<DeviceSpec | undefined> {
  const localRank = process.env.LOCAL_RANK
  if (localRank === undefined || localRank === '') return device
  return rankDevice(device ?? 'auto', localRank, await cudaAvailable())
}

/** The report at the end of training, its real images from the dataset the run trained on (the
 * trainer's own config, not a path read back from the run folder): if it fails, a warning line,
 * and the training result stands. */
async function reportAfterTraining(runDir: string, dataset: DatasetSpec): Promise<void> {
  try {
    console.error(`report ${await writeReport(runDir, { dataset })}`)
  } catch (e) {
    console.error(`warning: the training report was not written: ${(e as Error).message.split('\n')[0]}`)
  }
}

/** `dcgan report <runDir>`: the page and the PNG charts, their paths on stdout (one a line). */
async function reportCmd(runDir: string): Promise<void> {
  const html = await writeReport(runDir)
  for (const path of [html, ...reportPaths(runDir).charts]) console.log(path)
}

async function loadModel(checkpoint: string, device?: DeviceSpec): Promise<DCGAN> {
  return DCGAN.load(findCheckpoint(checkpoint), { device })
}

async function generate(o: { checkpoint: string; count: number; seed?: number; grid?: string; dir?: string; nrow?: number; batchStats?: boolean; device?: DeviceSpec }): Promise<void> {
  if (!o.grid && !o.dir) throw new Error('say where the images go: --grid FILE.png and/or --dir FOLDER')
  const gan = await loadModel(o.checkpoint, o.device)
  const images = await gan.generate(o.count, { seed: o.seed, batchStats: o.batchStats })
  if (o.grid) {
    await saveImageGrid(images, o.grid, { nrow: o.nrow ?? Math.ceil(Math.sqrt(o.count)) })
    console.error(`wrote ${o.grid}`)
  }
  if (o.dir) console.error(`wrote ${(await saveImages(images, o.dir)).length} images to ${o.dir}`)
}

async function interpolateCmd(o: { checkpoint: string; from: number; to: number; frames: number; method: 'linear' | 'slerp'; out?: string; dir?: string; batchStats?: boolean; device?: DeviceSpec }): Promise<void> {
  if (!o.out && !o.dir) throw new Error('say where the frames go: --out STRIP.png and/or --dir FOLDER')
  const gan = await loadModel(o.checkpoint, o.device)
  const images = await interpolate(gan, { from: { seed: o.from }, to: { seed: o.to }, frames: o.frames, method: o.method, batchStats: o.batchStats })
  if (o.out) {
    await saveImageGrid(images, o.out, { nrow: o.frames })
    console.error(`wrote ${o.out}`)
  }
  if (o.dir) console.error(`wrote ${(await saveImages(images, o.dir, 'frame')).length} frames to ${o.dir}`)
}

async function arithmeticCmd(o: { checkpoint: string; a: number[]; b: number[]; c: number[]; variations: number; noise: number; seed: number; out: string; batchStats?: boolean; device?: DeviceSpec }): Promise<void> {
  const gan = await loadModel(o.checkpoint, o.device)
  const toPoints = (s: number[]) => s.map((seed) => ({ seed }))
  const r = await vectorArithmetic(gan, { a: toPoints(o.a), b: toPoints(o.b), c: toPoints(o.c), variations: o.variations, noise: o.noise, seed: o.seed, batchStats: o.batchStats })
  await saveImageGrid(r.images, o.out, { nrow: 4 })
  console.error(`wrote ${o.out}: mean a, mean b, mean c, a − b + c${o.variations ? `, then ${o.variations} variations` : ''}`)
}

async function evalCmd(o: { checkpoint: string; samples: number; seed: number; batchStats?: boolean; device?: DeviceSpec; dataset?: DatasetKind; dataPath?: string; out?: string }): Promise<void> {
  // Where the result goes is settled, and found writable, before the (possibly long) evaluation;
  // first the checkpoint is found, so that a missing one is named as such.
  const file = findCheckpoint(o.checkpoint)
  const runDir = runDirOf(o.checkpoint) ?? runDirOf(file)
  const target = o.out ?? (runDir === null ? null : join(runDir, 'eval.json'))
  if (target !== null) checkWritable(target, o.out === undefined ? 'give --out FILE.json elsewhere' : 'give another --out')
  // The flags name the real images; the checkpoint's kind is kept when only the path is given.
  const kind = o.dataset ?? (o.dataPath !== undefined ? storedConfig(o.checkpoint)?.dataset?.kind : undefined)
  const dataset = kind !== undefined || o.dataPath !== undefined ? { kind: kind ?? 'mnist', ...(o.dataPath !== undefined ? { path: o.dataPath } : {}) } : undefined
  const result = await evaluateCheckpoint(o.checkpoint, { samples: o.samples, seed: o.seed, batchStats: o.batchStats, device: o.device, dataset })
  console.log(formatEval(result))
  if (target !== null) console.error(`wrote ${writeEvalFile(target, result)}`)
  else console.error('not in a run folder: eval.json not written (--out FILE.json writes it)')
}

/** Fails now, naming `path` and `fix`, if the file cannot be written later: a folder in its place, a
 * read-only or immutable folder. Folders still missing are made by the write, so the test file goes
 * into the nearest one that exists. */
function checkWritable(path: string, fix: string): void {
  const fail = (why: string) => new DcganError(ErrorCode.FILE, `${path}: cannot be written (${why}); ${fix}`)
  if (statOrNull(path)?.isDirectory()) throw fail('it is a folder: give a file name, e.g. eval.json in it')
  let dir = dirname(resolve(path))
  while (statOrNull(dir) === null && dirname(dir) !== dir) dir = dirname(dir)
  if (!statOrNull(dir)?.isDirectory()) throw fail(`${dir} is not a folder`)
  const probe = join(dir, `.dcgan-write-test-${process.pid}`)
  try {
    closeSync(openSync(probe, 'wx'))
    rmSync(probe)
  } catch (e) {
    throw fail((e as NodeJS.ErrnoException).code ?? (e as Error).message)
  }
}


async function exportCmd(o: { checkpoint: string; format: 'onnx' | 'web'; out: string; what: 'generator' | 'discriminator'; seed?: number }): Promise<void> {
  if (o.format === 'web' && o.what !== 'generator') throw new Error('--format web exports the generator only: drop --what')
  if (o.format === 'onnx' && o.seed !== undefined) throw new Error("--seed is the web page's first seed (--format web): drop it for --format onnx")
  const gan = await DCGAN.load(findCheckpoint(o.checkpoint), { device: 'cpu' })
  if (o.format === 'onnx') {
    const info = await exportOnnx(gan, o.out, { what: o.what })
    console.error(`wrote ${o.out} (${statSync(o.out).size} bytes): ${info.what}, opset ${info.opset}, input ${info.input.name} [${info.input.shape.map((d) => d ?? 'n')}], output ${info.output.name} [${info.output.shape.map((d) => d ?? 'n')}]`)
    return
  }
  const files = await exportWeb(gan, o.out, { seed: o.seed })
  const total = files.reduce((s, f) => s + f.bytes, 0)
  console.error(`wrote ${files.length} files (${(total / 1e6).toFixed(1)} MB) to ${o.out}: open ${join(o.out, 'index.html')} in a browser`)
}

function inspect(o: { checkpoint: string }): void {
  const c = readCheckpointInfo(findCheckpoint(o.checkpoint))
  const info = {
    file: c.file,
    bytes: statSync(c.file).size,
    format: c.format,
    model: c.model,
    optimizer: c.optimizer,
    steps: c.steps,
    ...(c.trainer ? { trainStep: c.trainer.step, data: c.trainer.data, config: c.trainer.config } : {}),
  }
  console.log(JSON.stringify(info, null, 2))
}

export function program(): Command {
  const p = new Command('dcgan')
    .description('Train and use DCGANs (Radford et al.) on libtorch from Node.js')
    .version(packageVersion(), '-V, --version', 'print the version of dcgan')
    // Help loads no libtorch, so it works when install scripts were skipped; it says what to run then.
    .addHelpText('after', () => {
      const missing = missingInstall()
      return missing ? `\nnote: ${missing}` : ''
    })
    // Errors in one line (the README's promise), the usage hint on the same line.
    .configureOutput({ outputError: (text, write) => write(`dcgan: ${text.replace(/^error: /, '').trim().split('\n')[0]} (see --help)\n`) })
  const t = p
    .command('train')
    .description('train a DCGAN; Ctrl-C finishes the step, writes a checkpoint and exits')
    .addOption(new Option('--preset <name>', 'start from a preset').choices(Object.keys(PRESETS)))
    .option('--config <file.json>', 'a JSON config file (flags override it)')
    .option('--resume <run|checkpoint>', 'continue a run exactly where it stopped')
    .option('--overwrite', 'replace the run already in --out (by default a new run refuses a folder that holds one)')
    .addOption(new Option('--dataset <kind>', 'what to train on (default mnist)').choices(datasetKinds))
    .option('--data-path <path>', 'the dataset file or folder (idx, cifar10, folder)')
    .option('--skip-corrupt', 'skip unreadable images with a warning')
    .option('--limit <n>', 'use only the first n images', int)
    .option('--nproc <n>', 'data-parallel: start n local worker processes (Gloo); batch-size is the global batch', int)
    .option('--dist-timeout <s>', 'data-parallel: seconds to wait for a rank before failing (default 300)', num)
    .option('--sync-batch-norm', 'data-parallel: BatchNorm on the statistics of the global batch (SyncBatchNorm), as one process computes')
  for (const [, flag, parser, help] of FIELDS) {
    const o = new Option(flag, help)
    if (parser) o.argParser(parser as (v: string) => unknown)
    t.addOption(o)
  }
  // A run's config keeps cudaGraph: resuming it where there is no GPU needs a way to say no.
  t.addOption(new Option('--no-cuda-graph', 'train without a CUDA graph (e.g. to resume a --cuda-graph run elsewhere)'))
  t.action((opts) => train(renameFlags(opts)))
  p.command('generate')
    .description('write generated images: one grid PNG and/or one PNG each')
    .requiredOption('--checkpoint <run|file>', 'a run folder (its latest checkpoint) or a checkpoint file')
    .option('--count <n>', 'images', count, 64)
    .option('--seed <n>', 'noise seed', seed)
    .option('--grid <file.png>', 'one PNG grid')
    .option('--dir <folder>', 'one PNG per image')
    .option('--nrow <n>', 'images per grid row', int)
    .option('--batch-stats', 'BatchNorm on batch statistics instead of running ones')
    .option('--device <name>', "'auto', 'cpu', 'cuda' or 'cuda:N'")
    .action(generate)
  p.command('interpolate')
    .description('images along a path between two latent points, as a strip and/or frames')
    .requiredOption('--checkpoint <run|file>', 'a run folder or a checkpoint file')
    .requiredOption('--from <seed>', 'seed of the start point', seed)
    .requiredOption('--to <seed>', 'seed of the end point', seed)
    .option('--frames <n>', 'images along the path', int, 10)
    .addOption(new Option('--method <name>', 'interpolation').choices(['linear', 'slerp']).default('slerp'))
    .option('--out <file.png>', 'the frames side by side')
    .option('--dir <folder>', 'one PNG per frame')
    .option('--batch-stats', 'BatchNorm on batch statistics')
    .option('--device <name>', 'device')
    .action(interpolateCmd)
  p.command('arithmetic')
    .description('latent vector arithmetic: mean(a) − mean(b) + mean(c), each a list of seeds')
    .requiredOption('--checkpoint <run|file>', 'a run folder or a checkpoint file')
    .requiredOption('--a <seeds>', 'comma-separated seeds of concept a (e.g. smiling woman)', seeds)
    .requiredOption('--b <seeds>', 'seeds of concept b (e.g. neutral woman)', seeds)
    .requiredOption('--c <seeds>', 'seeds of concept c (e.g. neutral man)', seeds)
    .option('--variations <n>', 'extra images around the result', int, 8)
    .option('--noise <x>', 'standard deviation of the variations (≥ 0)', num, 0.25)
    .option('--seed <n>', "seed of the variations' noise", seed, 0)
    .requiredOption('--out <file.png>', 'the grid: a, b, c, result, variations')
    .option('--batch-stats', 'BatchNorm on batch statistics')
    .option('--device <name>', 'device')
    .action(arithmeticCmd)
  p.command('eval')
    .description('measure a checkpoint: FID (and on MNIST Inception Score, digits covered) of samples and of real held-out images; writes eval.json into the run folder')
    .requiredOption('--checkpoint <run|file>', 'a run folder (its latest checkpoint) or a checkpoint file')
    .option('--samples <n>', 'generated images, and as many real held-out images', int, 2000)
    .option('--seed <n>', 'seed of the noise and of the real images chosen', seed, 0)
    .option('--batch-stats', 'BatchNorm on batch statistics instead of running ones')
    .option('--device <name>', "'auto', 'cpu', 'cuda' or 'cuda:N'")
    .addOption(new Option('--dataset <kind>', "the real images' format (default: the checkpoint's)").choices(datasetKinds))
    .option('--data-path <path>', 'the real images (idx, cifar10, folder); needed when the checkpoint names a path its run folder does not confirm')
    .option('--out <file.json>', 'where the evaluation is written (default: eval.json in the run folder)')
    .action(evalCmd)
  p.command('export')
    .description('the generator (or discriminator) as an ONNX file, or a static web page that samples and interpolates offline')
    .requiredOption('--checkpoint <run|file>', 'a run folder (its latest checkpoint) or a checkpoint file')
    .addOption(new Option('--format <name>', 'onnx: one .onnx file; web: a folder with index.html').choices(['onnx', 'web']).makeOptionMandatory())
    .requiredOption('--out <path>', 'the .onnx file, or the folder of the page')
    .addOption(new Option('--what <network>', 'which network (onnx only)').choices(['generator', 'discriminator']).default('generator'))
    .option('--seed <n>', "the page's first seed (web only)", seed)
    .action(exportCmd)
  p.command('inspect')
    .description("show a checkpoint's configuration, step and size")
    .requiredOption('--checkpoint <run|file>', 'a run folder or a checkpoint file')
    .action(inspect)
  p.command('report')
    .description('write report.html (curves, samples over time, real vs fake, evaluation, config) and charts/*.png for a run folder')
    .argument('<runDir>', 'the run folder (the --out of dcgan train)')
    .action(reportCmd)
  return p
}

/** commander names `--out` 'out' and `--features-g` 'featuresG'; map flags to config fields. */
function renameFlags(opts: Record<string, unknown>): Record<string, unknown> {
  const out = { ...opts }
  if (out.out !== undefined) out.outDir = out.out
  return out
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv)
  } catch (e) {
    console.error(`dcgan: ${(e as Error).message.split('\n')[0]}`)
    process.exitCode = 1
  }
  // With its terminal gone, a normal exit aborts (Node restores the terminal's mode and fails on
  // EIO): the work saved, end as a hung-up process does.
  if (hungUp) dieOf('SIGHUP')
}

if (require.main === module) void main()
