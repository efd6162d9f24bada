#!/usr/bin/env node
// Runs each fuzz target of crates/dcgan-core/tests/fuzz.rs for a time budget at low priority
// (nice 15) and prints executions per minute. A crash stops that target; its input is left in
// crates/dcgan-core/tests/fuzz-corpus/<target>/crash-* to be committed as a regression test.
//
//   node scripts/fuzz.mjs [--minutes 10] [--seed 1] [--targets idx,cifar,...] [--parallel]
//
// --parallel runs the targets side by side (each still gets its minutes of wall time).
import { spawn, spawnSync } from 'node:child_process'
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

// Build once; then run the test binary itself, so that runs side by side do not wait on cargo's lock.
const build = spawnSync('node', ['scripts/with-torch.mjs', 'cargo', 'test', '--release', '-p', 'dcgan-core', '--test', 'fuzz', '--no-run', '--message-format=json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 })
const exe = build.stdout.split('\n').filter((l) => l.includes('"executable"')).map((l) => JSON.parse(l)).find((m) => m.target?.name === 'fuzz' && m.executable)?.executable
if (!exe) {
  console.error(build.stderr.slice(-3000))
  process.exit(1)
}

function runTarget(target) {
  return new Promise((resolve) => {
    const p = spawn('nice', ['-n', '15', 'node', 'scripts/with-torch.mjs', exe, `fuzz_${target}`, '--exact', '--nocapture', '--test-threads=1'], { cwd: ROOT, env })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (out += d))
    p.on('exit', (code) => {
      const line = /fuzz (\S+): (\d+) executions in ([\d.]+) min \((\d+) per minute\)/.exec(out)
      const r = line ? { target: line[1], executions: Number(line[2]), minutes: Number(line[3]), perMinute: Number(line[4]), ok: code === 0 } : { target, ok: false, output: out.slice(-2000) }
      console.log(JSON.stringify(r))
      resolve(r)
    })
  })
}

const results = []
if (process.argv.includes('--parallel')) results.push(...(await Promise.all(targets.map(runTarget))))
else for (const t of targets) results.push(await runTarget(t))
console.log(JSON.stringify({ minutesEach: minutes, parallel: process.argv.includes('--parallel'), totalExecutions: results.reduce((a, r) => a + (r.executions ?? 0), 0), allOk: results.every((r) => r.ok) }))
if (!results.every((r) => r.ok)) process.exit(1)
