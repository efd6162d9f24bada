#!/usr/bin/env node
// `npm test`: the core's Rust tests, then the ava suite against the built addon.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from './torch-env.mjs'

function step(cmd, args) {
  console.log(`\n> ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

step(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json']) // the CLI tests run dist/
step('node', ['scripts/esm-entry.mjs']) // dist/index.mjs, for the test importing dcgan from ESM
step(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', '__test__/types/tsconfig.json']) // option types against their key lists
// One test at a time: tests running side by side in one process share libtorch's thread pool, and
// bit-exact comparisons (a resumed bf16 run equals a straight one) then vary in their last bits.
// --show-output: a Rust test that cannot compare its numbers on this machine (bf16 on a CPU
// without bfloat16 convolutions) checks the refusal instead and says so; cargo has no skip status,
// so those lines are repeated at the end rather than lost among passing tests.
const rust = ['scripts/with-torch.mjs', 'cargo', 'test', '--release', '-p', 'dcgan-core', '--', '--test-threads=1', '--show-output']
console.log(`\n> node ${rust.join(' ')}`)
const r = spawnSync('node', rust, { stdio: ['inherit', 'pipe', 'inherit'], cwd: ROOT, encoding: 'utf8', maxBuffer: 256 << 20 })
process.stdout.write(r.stdout ?? '')
const notRun = (r.stdout ?? '').split('\n').filter((l) => l.includes(': NOT RUN on this'))
if (notRun.length > 0) console.log(`\nRust tests whose comparison could not run on this machine (they checked what they could):\n${notRun.map((l) => `  ${l}`).join('\n')}`)
if (r.status !== 0) process.exit(r.status ?? 1)
step(join(ROOT, 'node_modules', '.bin', 'ava'), [])
