import { constants } from 'node:fs'
import { type FileHandle, open, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { SingleBar } from 'cli-progress'
import type { StepResult } from './dcgan'
import { DcganError, ErrorCode } from './errors'
import { makeDir } from './run-dir'

/** What `Trainer.fit` reports after each step. */
export interface StepInfo extends StepResult {
  /** Steps done, this one included (counts on across resumes). */
  step: number
  /** The step the run ends at: `steps`, or `epochs` × batches per epoch. */
  totalSteps: number
  /** The epoch (from 0) the data order is in after this step. */
  epoch: number
  /** Wall time of the training step in milliseconds (data loading excluded). */
  stepMs: number
  /** Images of this batch per second of `stepMs`: training throughput, data loading excluded. */
  imagesPerSec: number
}

/** How a `fit()` ended. */
export interface FitResult {
  /** 'completed': all steps done; 'aborted': the signal fired; 'exhausted': an iterable ran out;
   * 'failed' (seen by `onTrainEnd` only: `fit()` then throws): an error ended training. */
  reason: 'completed' | 'aborted' | 'exhausted' | 'failed'
  /** Steps done in the whole run (including those before a resume). */
  steps: number
  /** The epoch (from 0) the data order stands in at the end. */
  epoch: number
  /** The last checkpoint written, or null if none was. */
  checkpoint: string | null
  /** Wall time of this `fit()` call in seconds. */
  seconds: number
}

/** Hooks into training. Each may return a Promise, which training awaits. */
export interface Callbacks {
  /** After every training step, with its losses and timing; before any sample or checkpoint of that step. */
  onStepEnd?(info: StepInfo): void | Promise<void>
  /** When the data order moves to a new epoch: `epoch` is the one that ended, `step` the steps done so far. */
  onEpochEnd?(info: { epoch: number; step: number }): void | Promise<void>
  /** After a sample grid is written; `path` is the PNG. */
  onSample?(info: { step: number; path: string }): void | Promise<void>
  /** After a checkpoint is written; `path` is the safetensors file. */
  onCheckpoint?(info: { step: number; path: string }): void | Promise<void>
  /** Something the run goes on despite: an image skipped as unreadable (`skipCorrupt`), colour images
   * made gray for a one-channel model, an option without effect. When no callback has this hook,
   * `fit()` passes the message to `process.emitWarning`. */
  onWarning?(info: { step: number; message: string }): void | Promise<void>
  /** Once when `fit()` stops, whatever the reason, even when it throws; the place to flush and close. */
  onTrainEnd?(result: FitResult): void | Promise<void>
}

/** One line of `metrics.jsonl`: a step's numbers as {@link StepInfo} has them, and when it ended. */
export type MetricRow = Pick<StepInfo, 'step' | 'epoch' | 'lossD' | 'lossG' | 'dReal' | 'dFake' | 'dFakeAfter' | 'stepMs' | 'imagesPerSec'> & {
  /** When the step ended, ISO 8601. */
  time: string
}

/** Appends one JSON line per step to `path` (e.g. `runs/x/metrics.jsonl`). */
export class MetricsLog implements Callbacks {
  readonly #path: string
  #file: Promise<FileHandle> | null

  /** Opens `path` for appending (creating its folder), so a resumed run extends the same log.
   * Each line is written (off the event loop) before the step's checkpoint: a kill cannot leave a
   * checkpoint whose step the log lacks, and a full disk fails the step that hit it (a stream
   * would report it later, as an 'error' event that nobody handles). */
  constructor(path: string) {
    makeDir(dirname(path))
    this.#path = path
    this.#file = openLog(path)
    this.#file.catch(() => undefined) // reported by the first write
  }

  /** Writes the step's losses, D outputs, timing and a timestamp as one JSON line. */
  async onStepEnd(i: StepInfo): Promise<void> {
    const row: MetricRow = {
      step: i.step,
      epoch: i.epoch,
      lossD: i.lossD,
      lossG: i.lossG,
      dReal: i.dReal,
      dFake: i.dFake,
      dFakeAfter: i.dFakeAfter,
      stepMs: +i.stepMs.toFixed(3),
      imagesPerSec: +i.imagesPerSec.toFixed(1),
      time: new Date().toISOString(),
    }
    if (this.#file === null) return
    try {
      await (await this.#file).write(JSON.stringify(row) + '\n')
    } catch (e) {
      throw new DcganError(ErrorCode.FILE, `${this.#path}: cannot write (${(e as Error).message})`)
    }
  }

  /** Closes the file. */
  async onTrainEnd(): Promise<void> {
    const file = this.#file
    this.#file = null
    await (await file?.catch(() => null))?.close()
  }
}

/**
 * Opens a log for appending. Non-blocking: a FIFO in its place (with no reader) would otherwise
 * hold the open, and the first step's write, forever; only a regular file is kept.
 */
async function openLog(path: string): Promise<FileHandle> {
  const notRegular = new Error('is not a regular file (a FIFO, a device?); only regular files are written: remove it')
  if ((await stat(path).catch(() => null))?.isFile() === false) throw notRegular // before open: a FIFO's open fails unclearly
  const file = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o666)
  if ((await file.stat()).isFile()) return file
  await file.close()
  throw notRegular
}

/**
 * Progress while training: a bar with ETA on a terminal; elsewhere (CI logs, `| tee`, nohup) a plain
 * line at the first step, then every `intervalMs` (default 10 s), and at the last step.
 */
export class ProgressBar implements Callbacks {
  #bar: SingleBar | null = null
  readonly #stream: NodeJS.WritableStream & { isTTY?: boolean }
  readonly #intervalMs: number
  #lastLine = -Infinity
  #started = 0
  #firstStep = 0

  /** Writes to `stream`, stderr by default, so that stdout stays clean for output. */
  constructor(stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr, options: { intervalMs?: number } = {}) {
    this.#stream = stream
    this.#intervalMs = options.intervalMs ?? 10_000
  }

  /** Advances the bar (or writes a line when due) with the step's losses, D outputs and images per second. */
  onStepEnd(i: StepInfo): void {
    if (!this.#stream.isTTY) return this.#line(i)
    const payload = { lossD: i.lossD.toFixed(3), lossG: i.lossG.toFixed(3), dReal: i.dReal.toFixed(2), dFake: i.dFake.toFixed(2), rate: i.imagesPerSec.toFixed(0) }
    if (!this.#bar) {
      this.#bar = new SingleBar({
        stream: this.#stream as NodeJS.WriteStream,
        format: 'step {value}/{total} [{bar}] {percentage}% ETA {eta_formatted} | D {lossD} G {lossG} D(x) {dReal} D(G(z)) {dFake} | {rate} img/s',
        hideCursor: true,
      })
      this.#bar.start(i.totalSteps, i.step - 1, payload)
    }
    this.#bar.update(i.step, payload)
  }

  /** Writes `warning: message` on a line of its own (the bar redraws below it). */
  onWarning(info: { message: string }): void {
    this.#stream.write(`${this.#bar ? '\r\x1b[2K' : ''}warning: ${info.message}\n`)
  }

  #line(i: StepInfo): void {
    const now = performance.now()
    // From the first step's start: its own time gives the first line's ETA.
    if (this.#started === 0) [this.#started, this.#firstStep] = [now - i.stepMs, i.step - 1]
    if (now - this.#lastLine < this.#intervalMs && i.step !== i.totalSteps && i.step !== this.#firstStep + 1) return
    this.#lastLine = now
    const done = i.step - this.#firstStep
    const eta = done > 0 ? ((now - this.#started) / done) * (i.totalSteps - i.step) / 1000 : NaN
    const pct = ((100 * i.step) / i.totalSteps).toFixed(0)
    this.#stream.write(`step ${i.step}/${i.totalSteps} (${pct}%) | D ${i.lossD.toFixed(3)} G ${i.lossG.toFixed(3)} D(x) ${i.dReal.toFixed(2)} D(G(z)) ${i.dFake.toFixed(2)} | ${i.imagesPerSec.toFixed(0)} img/s | ETA ${formatSeconds(eta)}\n`)
  }

  /** Stops the bar and restores the cursor. */
  onTrainEnd(): void {
    this.#bar?.stop()
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?'
  const m = Math.floor(s / 60)
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`
}
