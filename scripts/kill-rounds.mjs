#!/usr/bin/env node
// SIGKILL a training process at random moments (mid-step and mid-save: it checkpoints after every
// step) and check after each kill that the newest checkpoint loads and that the run resumes.
//
//   node scripts/kill-rounds.mjs [rounds=50] [--seed N]
//
// Prints one JSON line: { rounds, killed, resumedSteps, ... }; exits 1 on the first round that
// leaves a run that cannot be loaded or resumed. Needs the built addon and dist/ (npm run build).
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const dcgan = require(join(ROOT, 'dist'))

const args = process.argv.slice(2)
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 50)
let seed = Number(args[args.indexOf('--seed') + 1] ?? 1) || 1
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)

const run = mkdtempSync(join(tmpdir(), 'dcgan-kill-'))
const config = {
  imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, batchSize: 8, device: 'cpu', seed: 5, threads: 1,
  outDir: run, steps: 1_000_000, checkpointEvery: 1, keepCheckpoints: 2, sampleEvery: 3, sampleCount: 4,
  dataset: { kind: 'mnist', limit: 64 },
}

// The child trains (a new run, or a resumed one) and says on stdout when each step has ended.
const child = `
const d = require(${JSON.stringify(join(ROOT, 'dist'))})
;(async () => {
  const resume = d.listCheckpoints(${JSON.stringify(run)}).length > 0
  const t = resume ? await d.Trainer.resume(${JSON.stringify(run)}) : new d.Trainer(${JSON.stringify(config)})
  await t.fit({ progress: false, overwrite: !resume, callbacks: { onStepEnd: (s) => console.log('step', s.step) } })
})().catch((e) => { console.error('child failed:', e.message); process.exit(3) })`

/** Runs the child until it has ended `minSteps` steps, then kills it `delay` ms later. */
function trainAndKill(minSteps, delay) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', child], { stdio: ['ignore', 'pipe', 'pipe'] })
    let steps = 0
    let stderr = ''
    let armed = false
    p.stderr.on('data', (d) => (stderr += d))
    p.stdout.on('data', (d) => {
      steps += String(d).split('\n').filter((l) => l.startsWith('step')).length
      if (steps >= minSteps && !armed) {
        armed = true
        setTimeout(() => p.kill('SIGKILL'), delay)
      }
    })
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(steps) : reject(new Error(`the child exited with ${code}: ${stderr}`))))
  })
}

/** The run after a kill: its newest checkpoint loads, agrees with itself, and metrics are whole lines. */
async function check(round) {
  const all = dcgan.listCheckpoints(run)
  if (all.length === 0) throw new Error(`round ${round}: no checkpoint left`)
  const last = all.at(-1)
  const info = dcgan.readCheckpointInfo(last.path)
  if (info.steps !== last.step || info.trainer.step !== last.step) throw new Error(`round ${round}: ${last.path} holds step ${info.steps} / trainer ${info.trainer.step}`)
  const gan = await dcgan.DCGAN.load(last.path)
  if (!(await gan.allFinite())) throw new Error(`round ${round}: ${last.path} holds non-finite weights`)
  return last.step
}

const started = Date.now()
let killed = 0
let lastStep = 0
for (let round = 1; round <= rounds; round++) {
  // Kill between 0 and 300 ms after a step ended: inside the checkpoint write, the sample, or the next steps.
  // The first round waits for a second step, so that the run has its first checkpoint.
  await trainAndKill(round === 1 ? 2 : 1, Math.floor(random() * 300))
  killed++
  const step = await check(round)
  if (step < lastStep) throw new Error(`round ${round}: the newest checkpoint went back from step ${lastStep} to ${step}`)
  lastStep = step
}
// A final resume to completion: every step logged once, in order.
const final = await dcgan.Trainer.resume(run, { steps: lastStep + 3 })
await final.fit({ progress: false })
const logged = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)
const inOrder = logged.every((s, i) => s === i + 1)
const leftovers = readdirSync(join(run, 'checkpoints')).filter((f) => f.startsWith('.'))
const result = { rounds, killed, lastCheckpointStep: lastStep, finalStep: final.step, metricsInOrder: inOrder, metricsLines: logged.length, leftoverTemporaryFiles: leftovers.length, seconds: Math.round((Date.now() - started) / 1000) }
console.log(JSON.stringify(result))
if (existsSync(run)) rmSync(run, { recursive: true, force: true })
if (!inOrder || leftovers.length > 0 || final.step !== lastStep + 3) process.exit(1)
