#!/usr/bin/env node
// Plants one bug at a time in the TypeScript layer (src/), runs the ava spec that should catch it,
// restores the file, and prints which were caught: the TypeScript half of the mutation score in
// TESTING.md (cargo-mutants covers the Rust core). Specs import src/ through tsx, so no build is
// needed between plants. Run from the repository root: node scripts/plant-bugs.mjs
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './torch-env.mjs'

const BUGS = [
  ['trainer.ts', 'this.#run.pruneCheckpoints(this.config.keepCheckpoints)', 'this.#run.pruneCheckpoints(this.config.keepCheckpoints + 1)', 'trainer', 'keeps one checkpoint too many'],
  ['trainer.ts', 'if (batch.epoch !== undefined && batch.position !== undefined) this.#data = { epoch: batch.epoch, position: batch.position }', '', 'trainer', 'never records the data position'],
  ['trainer.ts', 'throw hasErrorCode(e, ErrorCode.NON_FINITE) ?', 'throw hasErrorCode(e, ErrorCode.INVALID_INPUT) ?', 'trainer', 'does not recognise divergence by its code'],
  ['trainer.ts', "const FIXED_ON_RESUME = [...Object.keys(OPTION_SCHEMA.model), 'seed', 'dataset']", 'const FIXED_ON_RESUME = [...Object.keys(OPTION_SCHEMA.model)]', 'run-folder', 'lets a resume change the seed and dataset'],
  ['trainer.ts', 'if (this.#step > 0) await this.#run.trimMetrics(this.#step)', '', 'run-folder', 'keeps duplicate metrics after a kill'],
  ['trainer.ts', 'const outDir = overrides.outDir ?? RunDir.of(file)?.path', 'const outDir = overrides.outDir ?? (info.trainer.config.outDir as string)', 'run-folder', 'trusts the outDir stored in a checkpoint'],
  ['run-dir.ts', 'if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {', 'if (false) {', 'run-folder', 'takes over a live lock'],
  ['run-dir.ts', 'return (JSON.parse(line) as { step?: unknown }).step as number <= step', 'return (JSON.parse(line) as { step?: unknown }).step as number < step', 'run-folder', 'drops the checkpoint step from the metrics'],
  ['callbacks.ts', '      step: i.step,', '      step: i.step - 1,', 'trainer', 'logs each step under the previous number'],
  ['datasets.ts', 'this.#position += t.shape[0] ?? 0', 'this.#position += 1', 'datasets', 'counts batches instead of images in an iterable'],
  ['options.ts', "if (!Number.isFinite(value)) throw new RangeError(`invalid ${where}: got ${value}; allowed: a finite number`)", "if (Number.isNaN(value)) throw new RangeError(`invalid ${where}: got ${value}; allowed: a finite number`)", 'architecture', 'lets Infinity through (it becomes null in JSON)'],
  ['eval.ts', "return { datasetJson: JSON.stringify({ kind: 'mnist', split: 'test' }), mnistFile: mnistImagesPath('test') }", "return { datasetJson: JSON.stringify({ kind: 'mnist', split: 'train' }), mnistFile: mnistImagesPath('train') }", 'eval', 'measures real images from the training split'],
  ['sampling.ts', 'return a.map((x, i) => (1 - t) * x + t * b[i])', 'return a.map((x, i) => t * x + (1 - t) * b[i])', 'sampling', 'lerp runs backwards'],
  ['sampling.ts', 'const result = a.map((x, i) => x - b[i] + c[i])', 'const result = a.map((x, i) => x + b[i] - c[i])', 'sampling', 'arithmetic computes a + b − c'],
  ['sampling.ts', 'k / (frames - 1)', 'k / frames', 'sampling', 'interpolation stops short of its end point'],
  ['sampling.ts', 'const [wa, wb] = [Math.sin((1 - t) * omega) / s, Math.sin(t * omega) / s]', 'const [wa, wb] = [Math.sin(t * omega) / s, Math.sin((1 - t) * omega) / s]', 'sampling', 'slerp weights swapped'],
  ['dcgan.ts', 'return wrap(await this.#native.generateFrom(values, values.length / zDim, options.batchStats))', 'return wrap(await this.#native.generateFrom(values, values.length / zDim, !options.batchStats))', 'parity', 'generateFrom inverts batchStats'],
]

const rows = []
for (const [file, find, replace, spec, what] of BUGS) {
  const path = join(ROOT, 'src', file)
  const original = readFileSync(path, 'utf8')
  if (!original.includes(find)) {
    rows.push([file, what, 'NOT PLANTED (code changed; update this script)'])
    continue
  }
  writeFileSync(path, original.replace(find, replace))
  try {
    const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'ava'), [`__test__/${spec}.spec.ts`], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' } })
    rows.push([file, what, r.status === 0 ? `MISSED by ${spec}.spec.ts` : `caught by ${spec}.spec.ts`])
  } finally {
    writeFileSync(path, original)
  }
  console.error(rows.at(-1).join(' | '))
}
const caught = rows.filter((r) => r[2].startsWith('caught')).length
console.log(['| file | planted bug | result |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`), '', `${caught} of ${rows.length} caught`].join('\n'))
process.exitCode = caught === rows.length ? 0 : 1
