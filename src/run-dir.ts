// The run folder, and the only module that knows its layout:
//
//   <run>/config.json                          the resolved training config
//   <run>/metrics.jsonl                        one MetricRow per step
//   <run>/samples/step-NNNNNN.png              grids from the fixed noise batch
//   <run>/checkpoints/step-NNNNNNNN.safetensors checkpoints (zero-padded: names sort by step)
//   <run>/eval.json, report.html, charts/*.png, real.png
//   <run>/.lock                                held by the trainer writing to it
//
// Every file is written atomically through one native helper (temporary file `.<name>.tmp-<pid>`,
// fsync, rename), the scheme checkpoints use too, so one cleanup rule covers all of them.
import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { DcganError, ErrorCode } from './errors'
import * as native from './native'
import type { DataPosition } from './datasets'

const CHECKPOINT = /^step-(\d+)\.safetensors$/
const SAMPLE = /^step-(\d+)\.png$/
const TEMPORARY = /^\.(.+)\.tmp-(\d+)$/
/** A lock file holds a pid: anything longer is not one of ours. */
const MAX_LOCK_BYTES = 64
/** metrics.jsonl at most (read whole to trim it, and by the report): the trainer writes under 300
 * bytes a step, so about four million steps fit. */
const MAX_METRICS_BYTES = 1024 * 1024 * 1024
const NEWLINE = Buffer.from('\n')

/** The step of a metrics line, or Infinity for a torn or foreign one (dropped when trimming). */
function stepOf(line: Buffer): number {
  try {
    const step = (JSON.parse(line.toString('utf8')) as { step?: unknown }).step
    return typeof step === 'number' ? step : Infinity
  } catch {
    return Infinity
  }
}
/** What `statSync` says of `path`, or null when there is nothing there (or it cannot be asked). */
export function statOrNull(path: string): ReturnType<typeof statSync> | null {
  try {
    return statSync(path)
  } catch {
    return null
  }
}

/** config.json of a run: a few hundred bytes. */
const MAX_CONFIG_BYTES = 1024 * 1024

/** A file of a run with the training step it belongs to. */
export interface StepFile {
  /** The training step, read from the file name. */
  step: number
  /** The file. */
  path: string
}

/** The training state a `Trainer` stores in its checkpoints. */
export interface CheckpointTrainerState {
  /** The run's resolved configuration. */
  config: Record<string, unknown>
  /** Training steps done. */
  step: number
  /** Where the dataset's order stands. */
  data: DataPosition
}

/** What a dcgan checkpoint or model file holds besides its tensors, parsed. */
export interface CheckpointInfo {
  /** The file. */
  file: string
  /** The file format, e.g. 'dcgan/1'. */
  format: string
  /** The model's shape and initialisation. */
  model: Record<string, unknown>
  /** The optimiser settings. */
  optimizer: Record<string, unknown>
  /** Training steps of the model. */
  steps: number
  /** The training state a `Trainer` stored, or null for a plain model file. */
  trainer: CheckpointTrainerState | null
}

/** The files of one training run. */
export class RunDir {
  /** The run folder. */
  readonly path: string

  constructor(path: string) {
    this.path = path
  }

  /** The run folder of a run folder, or of a checkpoint file in its `checkpoints/` folder; null for a file elsewhere. */
  static of(pathOrCheckpoint: string): RunDir | null {
    if (existsSync(pathOrCheckpoint) && statSync(pathOrCheckpoint).isDirectory()) return new RunDir(pathOrCheckpoint)
    const parent = dirname(pathOrCheckpoint)
    return basename(parent) === 'checkpoints' ? new RunDir(dirname(parent)) : null
  }

  /** `config.json`: the resolved training config. */
  get configFile(): string {
    return join(this.path, 'config.json')
  }

  /** `metrics.jsonl`: one line per step. */
  get metricsFile(): string {
    return join(this.path, 'metrics.jsonl')
  }

  /** `eval.json`: the last evaluation. */
  get evalFile(): string {
    return join(this.path, 'eval.json')
  }

  /** `report.html`. */
  get reportFile(): string {
    return join(this.path, 'report.html')
  }

  /** `real.png`: a grid of training images for the report. */
  get realImagesFile(): string {
    return join(this.path, 'real.png')
  }

  /** A chart of the report, `charts/<name>`. */
  chartFile(name: string): string {
    return join(this.path, 'charts', name)
  }

  /** The folder of the checkpoints. */
  get checkpointDir(): string {
    return join(this.path, 'checkpoints')
  }

  /** The checkpoint file of `step`. */
  checkpointFile(step: number): string {
    return join(this.checkpointDir, `step-${String(step).padStart(8, '0')}.safetensors`)
  }

  /** The sample grid of `step`. */
  sampleFile(step: number): string {
    return join(this.path, 'samples', `step-${String(step).padStart(6, '0')}.png`)
  }

  /** The checkpoints, oldest first (unfinished temporary files are not listed). */
  checkpoints(): StepFile[] {
    return stepFiles(this.checkpointDir, CHECKPOINT)
  }

  /** The sample grids, oldest first. */
  samples(): StepFile[] {
    return stepFiles(join(this.path, 'samples'), SAMPLE)
  }

  /** The last step this folder holds a record of (a checkpoint or a metrics line), or null when it holds no run. */
  lastRecordedStep(): number | null {
    const checkpoint = this.checkpoints().at(-1)?.step
    if (checkpoint !== undefined) return checkpoint
    return existsSync(this.metricsFile) && statSync(this.metricsFile).size > 0 ? 0 : null
  }

  /** Deletes what a run wrote here (its metrics, checkpoints, samples, evaluation and report), keeping other files. */
  clear(): void {
    for (const f of [this.configFile, this.metricsFile, this.evalFile, this.reportFile, this.realImagesFile]) rmSync(f, { force: true })
    for (const d of [this.checkpointDir, join(this.path, 'samples'), join(this.path, 'charts')]) rmSync(d, { recursive: true, force: true })
  }

  /** Drops the lines of `metrics.jsonl` past `step` (and torn ones), so a resumed run logs each step once. */
  async trimMetrics(step: number): Promise<void> {
    if (!existsSync(this.metricsFile)) return
    const kept: Buffer[] = []
    let dropped = false
    for (const line of this.metricsLines()) {
      if (line.toString('utf8').trim() === '') continue
      if (stepOf(line) <= step) kept.push(line, NEWLINE)
      else dropped = true
    }
    if (dropped) await writeFileAtomicAsync(this.metricsFile, Buffer.concat(kept))
  }

  /** The lines of `metrics.jsonl` (a regular file of at most 1 GiB), without their newlines, as
   * views of one Buffer: a long run's log is larger than one JavaScript string may be. */
  *metricsLines(): Generator<Buffer> {
    const bytes = readRegularFile(this.metricsFile, MAX_METRICS_BYTES)
    for (let start = 0; start < bytes.length;) {
      const end = bytes.indexOf(0x0a, start)
      yield bytes.subarray(start, end === -1 ? bytes.length : end)
      start = end === -1 ? bytes.length : end + 1
    }
  }

  /** Deletes all but the newest `keep` checkpoints, and temporary files left by writers that died. */
  pruneCheckpoints(keep: number): void {
    const all = this.checkpoints()
    for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.path, { force: true })
    if (!existsSync(this.checkpointDir)) return
    for (const f of readdirSync(this.checkpointDir)) {
      const m = TEMPORARY.exec(f)
      if (m && !isAlive(Number(m[2]))) rmSync(join(this.checkpointDir, f), { force: true })
    }
  }

  /**
   * Takes the run folder for one writer: a second trainer on the same folder (in this process or
   * another) gets an error with code `ERR_DCGAN_RUN_LOCKED`. A lock left by a process that died is
   * taken over. Returns the function that releases it.
   */
  lock(): () => void {
    makeDir(this.path)
    const file = join(this.path, '.lock')
    const failed = (e: unknown) => new DcganError(ErrorCode.FILE, `${file}: cannot take the run folder's lock (${(e as Error).message})`)
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number
      try {
        fd = openSync(file, 'wx')
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw failed(e)
        const holder = lockHolder(file)
        if (holder !== null && isAlive(holder)) {
          throw new DcganError(ErrorCode.RUN_LOCKED, `${this.path}: another trainer (process ${holder}) is writing to this run folder; wait for it to finish or use another outDir`)
        }
        rmSync(file, { force: true }) // left by a process that died
        continue
      }
      try {
        writeSync(fd, String(process.pid))
      } catch (e) {
        rmSync(file, { force: true }) // created but not written: a full disk
        throw failed(e)
      } finally {
        closeSync(fd)
      }
      return () => rmSync(file, { force: true })
    }
    throw new DcganError(ErrorCode.RUN_LOCKED, `${this.path}: cannot take the run folder's lock`)
  }
}

/**
 * The process id written in a lock file, or null when there is none to wait for (the file is gone,
 * or holds no pid: a writer died between creating and writing it). A lock file that is not a
 * regular file (a FIFO would block the read forever) or longer than a pid is refused.
 */
function lockHolder(file: string): number | null {
  let text: string
  try {
    text = readRegularFile(file, MAX_LOCK_BYTES, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null // released meanwhile
    throw new DcganError(ErrorCode.FILE, `${(e as Error).message}; it is no lock that dcgan wrote: remove it`)
  }
  const pid = Number(text.trim())
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null
}

/**
 * Creates `dir` and its missing parents, one level at a time. Node 20's `mkdirSync(dir,
 * { recursive: true })` spins forever on a path under `/proc` (it retries on ENOENT), so it is
 * not used. Throws `ERR_DCGAN_FILE` naming the folder that cannot be made.
 */
export function makeDir(dir: string): string[] {
  const missing: string[] = []
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.push(d)
    if (dirname(d) === d) break
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new DcganError(ErrorCode.FILE, `${d}: cannot create the folder (${(e as Error).message})`)
    }
  }
  if (!statSync(dir).isDirectory()) throw new DcganError(ErrorCode.FILE, `${dir}: is not a folder`)
  return missing // the folders made, outermost first
}

/**
 * Reads `file` if it is a regular file of at most `maxBytes`, as `readFileSync` would, without
 * blocking on a FIFO with no writer (opened non-blocking, then checked with fstat) or reading a
 * device such as `/dev/zero` without end. Throws `ERR_DCGAN_FILE` saying what the path is
 * instead; a missing file throws Node's ENOENT error, as `readFileSync` does.
 */
export function readRegularFile(file: string, maxBytes: number): Buffer
export function readRegularFile(file: string, maxBytes: number, encoding: 'utf8'): string
export function readRegularFile(file: string, maxBytes: number, encoding?: 'utf8'): Buffer | string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) {
      const what = stat.isDirectory() ? 'a folder' : stat.isFIFO() ? 'a FIFO (named pipe)' : stat.isSocket() ? 'a socket' : 'a device'
      throw new DcganError(ErrorCode.FILE, `${file}: is ${what}; only regular files are read`)
    }
    if (stat.size > maxBytes) {
      throw new DcganError(ErrorCode.FILE, `${file}: is ${stat.size} bytes, more than the ${maxBytes} this kind of file may have`)
    }
    const bytes = Buffer.alloc(stat.size)
    let read = 0
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, read)
      if (n === 0) break
      read += n
    }
    const out = bytes.subarray(0, read)
    return encoding ? out.toString(encoding) : out
  } finally {
    closeSync(fd)
  }
}

/** Writes `file` atomically (temporary file, fsync, rename): a reader never sees half a file. */
export function writeFileAtomic(file: string, contents: string | Uint8Array): void {
  native.writeFileAtomic(file, asNative(contents))
}

/** {@link writeFileAtomic} off the JavaScript thread. */
export async function writeFileAtomicAsync(file: string, contents: string | Uint8Array): Promise<void> {
  return native.writeFileAtomicAsync(file, asNative(contents))
}

function asNative(contents: string | Uint8Array): string | Buffer {
  return typeof contents === 'string' ? contents : Buffer.from(contents.buffer, contents.byteOffset, contents.byteLength)
}

function stepFiles(dir: string, pattern: RegExp): StepFile[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .map((f) => ({ m: pattern.exec(f), f }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), path: join(dir, x.f) }))
    .sort((a, b) => a.step - b.step)
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The checkpoints of a run, oldest first. Unfinished temporary files (dot files) are not listed. */
export function listCheckpoints(runDir: string): StepFile[] {
  return new RunDir(runDir).checkpoints()
}

/**
 * A checkpoint file from a run folder (its latest checkpoint) or a checkpoint file itself.
 * Throws naming the path when there is none.
 */
export function findCheckpoint(pathOrRun: string): string {
  if (!existsSync(pathOrRun)) throw new DcganError(ErrorCode.FILE, `${pathOrRun}: no such file or folder`)
  const stat = statSync(pathOrRun)
  if (stat.isFile()) return pathOrRun
  if (!stat.isDirectory()) throw new DcganError(ErrorCode.FILE, `${pathOrRun}: is neither a checkpoint file nor a run folder (a device, FIFO or socket is never read)`)
  const run = new RunDir(pathOrRun)
  const all = run.checkpoints()
  if (all.length === 0) throw new DcganError(ErrorCode.FILE, `${pathOrRun}: holds no checkpoints (expected ${join(run.checkpointDir, 'step-*.safetensors')})`)
  return all[all.length - 1].path
}

/**
 * Whether the dataset that checkpoint `file` names may be opened without the user naming it. A
 * path read from a file is not trusted alone: a checkpoint from a stranger could point it at
 * private images (or /etc), which would be trained on and shown in real.png. So a dataset with a
 * path is used only when `file` lies in a run folder's checkpoints/ and that folder's config.json
 * names the same dataset, as in a run trained on this machine; one without a path (MNIST) always.
 */
export function datasetConfirmed(file: string, dataset: unknown): boolean {
  if (typeof dataset !== 'object' || dataset === null) return false
  if ((dataset as { path?: unknown }).path === undefined) return true
  const run = RunDir.of(file)
  if (!run) return false
  try {
    const config = JSON.parse(readRegularFile(run.configFile, MAX_CONFIG_BYTES, 'utf8')) as { dataset?: unknown } | null
    return isDeepStrictEqual(config?.dataset, dataset)
  } catch {
    return false // missing, unreadable or not JSON: nothing confirms the path
  }
}

/** A value read from a file, for a message: quoted (no control characters reach the terminal) and short. */
export function quoted(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/** Reads a model or checkpoint file's header (not its tensors), checked and parsed once, natively. */
export function readCheckpointInfo(file: string): CheckpointInfo {
  return { file, ...JSON.parse(native.readCheckpointInfo(file)) } as CheckpointInfo
}
