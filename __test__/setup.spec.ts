// `npm install` (scripts/setup.mjs) stops with one clear line when a tool it needs is missing.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const SETUP = join(__dirname, '..', 'scripts', 'setup.mjs')

/** A PATH holding only the named programs (found on the current PATH). */
function pathWith(...programs: string[]): string {
  const bin = mkdtempSync(join(tmpdir(), 'dcgan-path-'))
  for (const p of programs) {
    const found = spawnSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).stdout.trim()
    if (found) symlinkSync(found, join(bin, p))
  }
  return bin
}

/** Runs the set-up with `env` over this process's environment, minus a libtorch given by hand. */
function setup(env: Record<string, string>) {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LIBTORCH' && k !== 'DCGAN_PYTHON'))
  return spawnSync(process.execPath, [SETUP, '--native-only'], { encoding: 'utf8', env: { ...inherited, ...env } })
}

test('without cargo: one line saying to install Rust', (t) => {
  const r = setup({ PATH: pathWith('sh') })
  t.is(r.status, 1)
  t.is(r.stderr.trim(), "dcgan setup failed: 'cargo' was not found on PATH. Install Rust with rustup (https://rustup.rs), then run npm install again.")
})

test('without a C++ compiler: one line saying to install one', (t) => {
  const r = setup({ PATH: pathWith('sh', 'cargo') })
  t.is(r.status, 1)
  t.regex(r.stderr.trim(), /^dcgan setup failed: 'c\+\+' was not found on PATH\. Install a C\+\+17 compiler/)
})

test('without python3 (and no torch cached yet): one line saying to install Python', (t) => {
  const r = setup({ PATH: pathWith('sh', 'cargo', 'c++'), DCGAN_CACHE_DIR: mkdtempSync(join(tmpdir(), 'dcgan-cache-')) })
  t.is(r.status, 1)
  t.regex(r.stderr.trim(), /^dcgan setup failed: 'python3' was not found on PATH\. Install Python 3\.9 or newer/)
})

test('DCGAN_TORCH other than cpu, cuda or auto: one line naming the allowed values', (t) => {
  const r = setup({ DCGAN_TORCH: 'rocm', DCGAN_CACHE_DIR: mkdtempSync(join(tmpdir(), 'dcgan-cache-')) })
  t.is(r.status, 1)
  t.is(r.stderr.trim(), 'dcgan setup failed: DCGAN_TORCH=rocm: allowed: cpu, cuda or auto.')
})
