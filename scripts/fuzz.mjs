#!/usr/bin/env node
// Runs each fuzz target of crates/dcgan-core/tests/fuzz.rs for a time budget, at low priority,
// one after another, and prints executions per minute. A crash stops the run; its input is left
// in crates/dcgan-core/tests/fuzz-corpus/<target>/crash-* to be committed as a regression test.
//
//   node scripts/fuzz.mjs [--minutes 10] [--seed 1] [--targets idx,cifar,...]
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : dflt
}
const minutes = Number(arg('minutes', 10))
const targets = arg('targets', 'idx,idx_gz,cifar,image_folder,checkpoint,options').split(',')
const env = { ...process.env, DCGAN_FUZZ_SECONDS: String(Math.round(minutes * 60)), DCGAN_FUZZ_SEED: arg('seed', '1') }
const results = []
for (const target of targets) {
  const r = spawnSync('nice', ['-n', '15', 'node', 'scripts/with-torch.mjs', 'cargo', 'test', '--release', '-p', 'dcgan-core', '--test', 'fuzz', '--', `fuzz_${target}`, '--exact', '--nocapture', '--test-threads=1'], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 1 << 26 })
  const line = /fuzz (\S+): (\d+) executions in ([\d.]+) min \((\d+) per minute\)/.exec(r.stdout)
  const result = line ? { target: line[1], executions: Number(line[2]), minutes: Number(line[3]), perMinute: Number(line[4]), ok: r.status === 0 } : { target, ok: false, output: (r.stdout + r.stderr).slice(-2000) }
  console.log(JSON.stringify(result))
  results.push(result)
  if (!result.ok) process.exit(1)
}
console.log(JSON.stringify({ minutesEach: minutes, total: results.reduce((a, r) => a + r.executions, 0) }))
