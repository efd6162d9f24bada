#!/usr/bin/env node
// `npm test`: the core's Rust tests, then the ava suite against the built addon.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, SetupError, resolvePython } from './torch-env.mjs'

function step(cmd, args) {
  console.log(`\n> ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

/** Whether the CPU claims what oneDNN's bfloat16 convolutions need (x86: AVX-512 F/BW/VL/DQ). */
function cpuHasBf16() {
  const flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/)
  return ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.includes(f))
}

/** PyTorch's bf16 reference computed on this machine: its numbers depend on the CPU's bfloat16
 * kernels (AMX, AVX512-BF16 or emulated), by more than a bug moves them on another CPU, so the
 * Rust bf16 test compares with PyTorch run here, from the committed fixture's inputs. */
function liveBf16Reference() {
  if (!cpuHasBf16()) return {}
  try {
    resolvePython({ install: false })
  } catch (e) {
    if (!(e instanceof SetupError) || process.env.CI) throw e
    console.log(`\nnote: ${e.message} The bf16 test compares with the committed fixtures instead (written on a CPU with AMX).`)
    return {}
  }
  const dir = mkdtempSync(join(tmpdir(), 'dcgan-bf16-reference-'))
  step('node', ['scripts/with-torch.mjs', 'python', 'benchmark/reference/make_bf16_fixtures.py', '--out', dir])
  return { DCGAN_BF16_FIXTURES: dir }
}

step(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json']) // the CLI tests run dist/
step('node', ['scripts/esm-entry.mjs']) // dist/index.mjs, for the test importing dcgan from ESM
step(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', '__test__/types/tsconfig.json']) // option types against their key lists; the GPU check's Node side against the API
// One test at a time: tests running side by side in one process share libtorch's thread pool, and
// bit-exact comparisons (a resumed bf16 run equals a straight one) then vary in their last bits.
// --show-output: a Rust test that cannot compare its numbers on this machine (bf16 on a CPU
// without bfloat16 convolutions) checks the refusal instead and says so; cargo has no skip status,
// so those lines are repeated at the end rather than lost among passing tests.
const rust = ['scripts/with-torch.mjs', 'cargo', 'test', '--release', '-p', 'dcgan-core', '--', '--test-threads=1', '--show-output']
const rustEnv = { ...process.env, ...liveBf16Reference() }
console.log(`\n> ${rustEnv.DCGAN_BF16_FIXTURES ? `DCGAN_BF16_FIXTURES=${rustEnv.DCGAN_BF16_FIXTURES} ` : ''}node ${rust.join(' ')}`)
const r = spawnSync('node', rust, { stdio: ['inherit', 'pipe', 'inherit'], cwd: ROOT, env: rustEnv, encoding: 'utf8', maxBuffer: 256 << 20 })
process.stdout.write(r.stdout ?? '')
const notRun = (r.stdout ?? '').split('\n').filter((l) => l.includes(': NOT RUN on this'))
if (notRun.length > 0) console.log(`\nRust tests whose comparison could not run on this machine (they checked what they could):\n${notRun.map((l) => `  ${l}`).join('\n')}`)
if (rustEnv.DCGAN_BF16_FIXTURES) rmSync(rustEnv.DCGAN_BF16_FIXTURES, { recursive: true, force: true })
if (r.status !== 0) process.exit(r.status ?? 1)
step(join(ROOT, 'node_modules', '.bin', 'ava'), [])
