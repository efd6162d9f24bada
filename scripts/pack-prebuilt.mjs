#!/usr/bin/env node
// Packs dcgan the napi-rs way, as `napi prepublish` publishes it: the platform package
// (npm/linux-x64-gnu, made by `napi create-npm-dirs`) holding the built addon, and the main
// package with an `optionalDependencies` entry on it at the same version. A machine with a
// prebuilt package that fits installs without Rust or a C++ compiler; elsewhere npm skips the
// optional package (its os/cpu/libc do not match) and the install script builds from source.
//   node scripts/pack-prebuilt.mjs OUT_DIR   → prints {"platform": tgz, "main": tgz}
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { ROOT } from './torch-env.mjs'

const ADDON = 'dcgan.linux-x64-gnu.node'
const PLATFORM_DIR = join(ROOT, 'npm', 'linux-x64-gnu')

function npm(args, cwd) {
  const r = spawnSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed in ${cwd} (exit ${r.status})`)
  return r.stdout
}

/** `npm pack` of `dir` into `out`; the tarball's path. */
function pack(dir, out) {
  const [info] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', out], dir))
  return join(out, info.filename)
}

const out = resolve(process.argv[2] ?? join(ROOT, 'packed'))
mkdirSync(out, { recursive: true })
if (!existsSync(join(ROOT, ADDON))) throw new Error(`${ADDON} is not built: run npm run build:native first`)
const stage = mkdtempSync(join(tmpdir(), 'dcgan-pack-'))
try {
  // The platform package: its package.json and README as napi create-npm-dirs wrote them, plus the addon.
  const platformStage = join(stage, 'platform')
  cpSync(PLATFORM_DIR, platformStage, { recursive: true })
  copyFileSync(join(ROOT, ADDON), join(platformStage, ADDON))
  const platformPkg = JSON.parse(readFileSync(join(platformStage, 'package.json'), 'utf8'))
  const platform = pack(platformStage, out)

  // The main package: dist/ built afresh (prepack), the files `npm pack` would ship, and the
  // optionalDependencies entry napi prepublish adds.
  spawnSync(process.execPath, [join(ROOT, 'scripts', 'prepack.mjs')], { stdio: 'inherit' })
  const [listing] = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT))
  const mainStage = join(stage, 'main')
  for (const { path } of listing.files) {
    mkdirSync(dirname(join(mainStage, path)), { recursive: true })
    copyFileSync(join(ROOT, path), join(mainStage, path))
  }
  const pkg = JSON.parse(readFileSync(join(mainStage, 'package.json'), 'utf8'))
  pkg.optionalDependencies = { ...pkg.optionalDependencies, [platformPkg.name]: pkg.version }
  if (platformPkg.version !== pkg.version) throw new Error(`npm/linux-x64-gnu is at ${platformPkg.version}, dcgan at ${pkg.version}: run napi version`)
  writeFileSync(join(mainStage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')
  const main = pack(mainStage, out)
  console.log(JSON.stringify({ platform, main }))
} finally {
  rmSync(stage, { recursive: true, force: true })
}
