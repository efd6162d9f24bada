import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs'
import { dirname } from 'node:path'
import { SingleBar } from 'cli-progress'
import type { StepResult } from './dcgan'

/** What `Trainer.fit` reports after each step. */
export interface StepInfo extends StepResult {
  step: number
  totalSteps: number
  epoch: number
  /** Wall time of the training step (data loading excluded). */
  stepMs: number
  imagesPerSec: number
}

/** How a `fit()` ended. */
export interface FitResult {
  /** 'completed': all steps done; 'aborted': the signal fired; 'exhausted': an iterable ran out. */
  reason: 'completed' | 'aborted' | 'exhausted'
  steps: number
  epoch: number
  /** The last checkpoint written. */
  checkpoint: string | null
  seconds: number
}

/** Hooks into training. Each may return a Promise, which training awaits. */
export interface Callbacks {
  onStepEnd?(info: StepInfo): void | Promise<void>
  onEpochEnd?(info: { epoch: number; step: number }): void | Promise<void>
  onSample?(info: { step: number; path: string }): void | Promise<void>
  onCheckpoint?(info: { step: number; path: string }): void | Promise<void>
  onTrainEnd?(result: FitResult): void | Promise<void>
}

/** Appends one JSON line per step to `path` (e.g. `runs/x/metrics.jsonl`). */
export class MetricsLog implements Callbacks {
  #out: WriteStream

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true })
    this.#out = createWriteStream(path, { flags: 'a' })
  }

  onStepEnd(i: StepInfo): void {
    const row = {
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
    this.#out.write(JSON.stringify(row) + '\n')
  }

  onTrainEnd(): Promise<void> {
    return new Promise((resolve) => this.#out.end(resolve))
  }
}

/** A progress bar with ETA on a terminal; silent when stderr is not a TTY (logs, CI). */
export class ProgressBar implements Callbacks {
  #bar: SingleBar | null = null
  readonly #stream: NodeJS.WriteStream

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream
  }

  onStepEnd(i: StepInfo): void {
    if (!this.#stream.isTTY) return
    const payload = { lossD: i.lossD.toFixed(3), lossG: i.lossG.toFixed(3), dReal: i.dReal.toFixed(2), dFake: i.dFake.toFixed(2), rate: i.imagesPerSec.toFixed(0) }
    if (!this.#bar) {
      this.#bar = new SingleBar({
        stream: this.#stream,
        format: 'step {value}/{total} [{bar}] {percentage}% ETA {eta_formatted} | D {lossD} G {lossG} D(x) {dReal} D(G(z)) {dFake} | {rate} img/s',
        hideCursor: true,
      })
      this.#bar.start(i.totalSteps, i.step - 1, payload)
    }
    this.#bar.update(i.step, payload)
  }

  onTrainEnd(): void {
    this.#bar?.stop()
  }
}
