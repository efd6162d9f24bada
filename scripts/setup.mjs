#!/usr/bin/env node
// `npm install` runs this: finds or installs torch 2.11.0, builds the native addon against it in
// release mode, and compiles the TypeScript. `--native-only` skips the TypeScript.
import { copyFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, SetupError, requireTool, resolveTorch, run, torchEnv, writeEnvFile } from './torch-env.mjs'

function buildNative(env) {
  const napi = join(ROOT, 'node_modules', '.bin', 'napi')
  if (existsSync(napi)) {
    run(napi, ['build', '--platform', '--release', '--manifest-path', 'crates/dcgan-node/Cargo.toml',
      '--package-json-path', 'package.json', '--output-dir', '.', '--js', 'index.js', '--dts', 'index.d.ts'],
    { cwd: ROOT, env })
    return
  }
  // Installed from the registry without dev dependencies: index.js and index.d.ts ship with the
  // package, so cargo alone builds the addon they load.
  run('cargo', ['build', '--release', '-p', 'dcgan-node'], { cwd: ROOT, env })
  copyFileSync(join(env.CARGO_TARGET_DIR, 'release', 'libdcgan_node.so'), join(ROOT, 'dcgan.linux-x64-gnu.node'))
}

function buildTypeScript() {
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc')
  if (existsSync(tsc)) run(tsc, ['-p', 'tsconfig.json'], { cwd: ROOT })
  else if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new SetupError('TypeScript is not installed and dist/ is missing: run npm install in the repository.')
}

try {
  if (process.env.DCGAN_SKIP_BUILD) process.exit(0)
  requireTool('cargo', 'Install Rust with rustup (https://rustup.rs), then run npm install again.')
  requireTool('c++', 'Install a C++17 compiler (Debian: apt-get install g++).')
  const torch = resolveTorch()
  writeEnvFile(torch)
  console.log(`dcgan: using torch ${torch.version ?? ''} from ${torch.lib} (${torch.source})`)
  buildNative(torchEnv(torch))
  if (!process.argv.includes('--native-only')) buildTypeScript()
} catch (e) {
  if (e instanceof SetupError) {
    console.error(`dcgan setup failed: ${e.message}`)
    process.exit(1)
  }
  throw e
}
