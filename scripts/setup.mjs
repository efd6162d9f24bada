#!/usr/bin/env node
// `npm install` runs this. Three steps:
//   1. libtorch: finds or installs torch 2.11.0's libraries (scripts/torch-env.mjs; CPU-only
//      unless an NVIDIA driver is found or DCGAN_TORCH=cuda) and links them as ./libtorch, where
//      the addon looks for them ($ORIGIN/libtorch/lib).
//   2. the native addon: skipped when the prebuilt platform package (dcgan-linux-x64-gnu) is
//      installed; otherwise built from source with cargo in release mode, and the option schema
//      written beside it (option-schema.json: `require('dcgan')` reads it without loading libtorch).
//   3. the TypeScript, when the TypeScript compiler is there (a clone); a packed package ships dist/.
// `--native-only` skips step 3.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, lstatSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { ROOT, SetupError, diskUsage, humanBytes, requireTool, resolveTorch, run, say, torchEnv, writeEnvFile } from './torch-env.mjs'

const ADDON = 'dcgan.linux-x64-gnu.node'
const PREBUILT_PACKAGE = 'dcgan-linux-x64-gnu'

/** The folder of the installed prebuilt platform package, or null. */
function prebuiltDir() {
  if (process.env.DCGAN_BUILD_FROM_SOURCE) return null
  try {
    const dir = dirname(createRequire(join(ROOT, 'package.json')).resolve(`${PREBUILT_PACKAGE}/package.json`))
    return existsSync(join(dir, ADDON)) ? dir : null
  } catch {
    return null
  }
}

/** `<dir>/libtorch` → the libtorch folder in the cache (replacing an older link). */
function linkLibtorch(dir, libtorch) {
  const link = join(dir, 'libtorch')
  const old = lstatSync(link, { throwIfNoEntry: false })
  if (old?.isSymbolicLink() && readlinkSync(link) === libtorch) return
  if (old && !old.isSymbolicLink()) throw new SetupError(`${link} exists and is not a link: move it away and run npm rebuild dcgan.`)
  rmSync(link, { force: true })
  symlinkSync(libtorch, link, 'dir')
}

function buildNative(env) {
  const started = Date.now()
  say(`dcgan: [2/3] building the native addon from source with cargo (about 10 minutes on 2 cores the first time; build output in ${env.CARGO_TARGET_DIR})`)
  const napi = join(ROOT, 'node_modules', '.bin', 'napi')
  if (existsSync(napi)) {
    run(napi, ['build', '--platform', '--release', '--manifest-path', 'crates/dcgan-node/Cargo.toml',
      '--package-json-path', 'package.json', '--output-dir', '.', '--js', 'index.js', '--dts', 'index.d.ts'],
    { cwd: ROOT, env })
  } else {
    // Installed from the registry without dev dependencies: index.js and index.d.ts ship with the
    // package, so cargo alone builds the addon they load.
    run('cargo', ['build', '--release', '-p', 'dcgan-node'], { cwd: ROOT, env })
    copyFileSync(join(env.CARGO_TARGET_DIR, 'release', 'libdcgan_node.so'), join(ROOT, ADDON))
  }
  writeOptionSchema(join(ROOT, ADDON))
  say(`dcgan: addon built in ${((Date.now() - started) / 1000).toFixed(0)} s (build output: ${humanBytes(diskUsage(env.CARGO_TARGET_DIR))})`)
}

/** option-schema.json from the addon just built: the TypeScript reads it without loading libtorch. */
function writeOptionSchema(addon) {
  const code = 'const m = { exports: {} }; process.dlopen(m, process.argv[1]); process.stdout.write(m.exports.optionSchema())'
  const r = spawnSync(process.execPath, ['-e', code, addon], { encoding: 'utf8' })
  if (r.status !== 0) throw new SetupError(`the addon was built but does not load: ${r.stderr.trim().split('\n')[0]}`)
  writeFileSync(join(ROOT, 'option-schema.json'), `${r.stdout}\n`)
}

function buildTypeScript() {
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc')
  if (existsSync(tsc)) {
    say('dcgan: [3/3] compiling the TypeScript')
    run(tsc, ['-p', 'tsconfig.json'], { cwd: ROOT })
    run(process.execPath, [join(ROOT, 'scripts', 'esm-entry.mjs')], { cwd: ROOT })
  } else if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    throw new SetupError('TypeScript is not installed and dist/ is missing: run npm install in the repository.')
  }
}

try {
  if (process.env.DCGAN_SKIP_BUILD) process.exit(0)
  const prebuilt = prebuiltDir()
  if (!prebuilt) {
    requireTool('cargo', 'Install Rust with rustup (https://rustup.rs), then run npm install again.')
    requireTool('c++', 'Install a C++17 compiler (Debian: apt-get install g++).')
  }
  const torch = resolveTorch()
  writeEnvFile(torch)
  say(`dcgan: using torch ${torch.version ?? '2.11.0'} (${torch.kind}) from ${torch.libtorch} (${torch.source})`)
  linkLibtorch(ROOT, torch.libtorch)
  if (prebuilt) {
    linkLibtorch(prebuilt, torch.libtorch)
    say(`dcgan: [2/3] using the prebuilt addon of ${PREBUILT_PACKAGE} (no compiler needed)`)
  } else {
    buildNative(torchEnv(torch))
  }
  if (!process.argv.includes('--native-only')) buildTypeScript()
} catch (e) {
  if (e instanceof SetupError) {
    console.error(`dcgan setup failed: ${e.message}`)
    process.exit(1)
  }
  throw e
}
