// The package as a user installs it: packed tarballs (the napi-rs platform package with the
// prebuilt addon, and the main package) installed into a fresh project on a PATH without cargo
// and c++; the addon's run paths; libtorch loaded only when needed; blocked install scripts; the
// exports map from CommonJS and ESM. Slow-ish (npm pack and two npm installs, about a minute).
import test from 'ava'
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN } from '../src/index'
import { testNeeding } from './helpers'

const ROOT = join(__dirname, '..')
const ADDON = join(ROOT, 'dcgan.linux-x64-gnu.node')
const ENV = JSON.parse(readFileSync(join(ROOT, '.dcgan-env.json'), 'utf8')) as { libtorch: string; kind: string }
const TINY = ['--image-size', '16', '--features-g', '4', '--features-d', '4', '--z-dim', '16', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--seed', '3']

/** Temporary folders of this file (two npm installs and a copy: hundreds of MB a run), removed at the end. */
const scratchDirs: string[] = []
function scratch(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  scratchDirs.push(dir)
  return dir
}
test.after.always(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true })
})

/** A folder of links to just these programs: a PATH without cargo and c++. */
function pathOf(...programs: string[]): string {
  const bin = scratch('dcgan-bin-')
  for (const p of programs) symlinkSync(execFileSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).trim(), join(bin, p))
  return bin
}

const BIN = pathOf('node', 'npm', 'npx', 'sh')
/** A user's environment: no compiler on PATH, no LD_LIBRARY_PATH; libtorch from this checkout's install (nothing big downloads). */
const USER_ENV: NodeJS.ProcessEnv = {
  HOME: process.env.HOME,
  PATH: BIN,
  LIBTORCH: ENV.libtorch,
  DCGAN_NO_TTY: '1',
  npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME ?? tmpdir(), '.npm'),
}

function sh(cmd: string, args: string[], cwd: string, env = USER_ENV): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 })
}

function freshProject(): string {
  const dir = scratch('dcgan-user-')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true }))
  return dir
}

function npmInstall(dir: string, args: string[]): void {
  const r = sh(join(BIN, 'npm'), ['install', '--no-audit', '--no-fund', '--prefer-offline', ...args], dir)
  if (r.status !== 0) throw new Error(`npm install failed: ${r.stderr}`)
}

const packed = (() => {
  let tarballs: { platform: string; main: string } | undefined
  return () => {
    tarballs ??= JSON.parse(execFileSync(process.execPath, [join(ROOT, 'scripts', 'pack-prebuilt.mjs'), scratch('dcgan-packed-')], { encoding: 'utf8' }))
    return tarballs!
  }
})()

test.serial('the prebuilt tarballs install without cargo or c++ and train 20 steps from the CLI', (t) => {
  t.not(sh('sh', ['-c', 'command -v cargo || command -v c++'], ROOT).status, 0, 'the PATH must lack cargo and c++')
  const { platform, main } = packed()
  const project = freshProject()
  npmInstall(project, [platform, main])
  const pkg = join(project, 'node_modules', 'dcgan')
  t.false(existsSync(join(pkg, 'dcgan.linux-x64-gnu.node')), 'the addon came from the platform package, not a build')
  t.true(existsSync(join(project, 'node_modules', 'dcgan-linux-x64-gnu', 'dcgan.linux-x64-gnu.node')))
  t.true(existsSync(join(pkg, 'benchmark', 'reference', 'dcgan.py')), "the seed's PyTorch module, which the README's PyTorch snippet imports")
  const run = join(project, 'run')
  const r = sh(join(project, 'node_modules', '.bin', 'dcgan'), ['train', ...TINY, '--steps', '20', '--out', run], project)
  t.is(r.status, 0, r.stderr)
  t.regex(r.stderr, /completed after 20 steps/)
  t.is(readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 20)

  // ESM and CommonJS through the exports map: one module instance for both.
  const esm = sh(join(BIN, 'node'), ['--input-type=module', '-e',
    "import dcgan, { DCGAN, ErrorCode } from 'dcgan'; import { createRequire } from 'node:module';" +
    " const cjs = createRequire(process.cwd() + '/x.js')('dcgan');" +
    " console.log(typeof DCGAN, ErrorCode.FILE, DCGAN === cjs.DCGAN, dcgan === cjs)"], project)
  t.is(esm.stdout.trim(), 'function ERR_DCGAN_FILE true true', esm.stderr)

  // Copied elsewhere (with its link to libtorch), the installed package still loads and runs.
  const copy = scratch('dcgan-copy-')
  cpSync(join(project, 'node_modules'), join(copy, 'node_modules'), { recursive: true, verbatimSymlinks: true })
  const gen = sh(join(BIN, 'node'), ['-e', "const d = require('dcgan'); d.DCGAN.load(d.findCheckpoint(process.argv[1])).then(g => g.generate(2)).then(x => console.log(x.shape.join('x')))", run], copy)
  t.is(gen.stdout.trim(), '2x1x16x16', gen.stderr)

  // Without libtorch where the link points: one line saying what to run.
  renameSync(join(copy, 'node_modules', 'dcgan-linux-x64-gnu', 'libtorch'), join(copy, 'moved-libtorch'))
  const broken = sh(join(BIN, 'node'), ['-e', "require('dcgan').cudaAvailable().catch(e => { console.log(e.code); console.log(e.message) })"], copy)
  t.is(broken.stdout.trim().split('\n')[0], 'ERR_DCGAN_NOT_INSTALLED')
  t.regex(broken.stdout.trim().split('\n')[1], /^libtorch is not where the addon looks for it \(.*dcgan-linux-x64-gnu\/libtorch: missing or a broken link\): run npm rebuild dcgan to install it$/)
})

// The fallback where no prebuilt package fits: the main tarball alone, installed by a user who has
// Rust and a C++ compiler, builds the addon from the packed sources (cargo only: no dev
// dependencies, so no napi CLI) and trains. The build output goes to the same cache as this
// checkout's (CARGO_TARGET_DIR), so only the two workspace crates compile again; that takes minutes,
// hence ava's 15-minute timeout (package.json).
test.serial('without a prebuilt package, npm install builds the addon from the packed sources with cargo, and it trains', (t) => {
  const project = freshProject()
  const env: NodeJS.ProcessEnv = { ...USER_ENV, PATH: process.env.PATH }
  for (const name of ['DCGAN_CACHE_DIR', 'CARGO_TARGET_DIR', 'CARGO_HOME', 'RUSTUP_HOME']) if (process.env[name]) env[name] = process.env[name]
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', packed().main],
    { cwd: project, env, encoding: 'utf8', timeout: 14 * 60_000 }) // inside ava's 15 minutes, so a stuck build shows its output
  t.is(npm.status, 0, npm.stderr.slice(-3000))
  const log = npm.stdout + npm.stderr
  t.regex(log, /building the native addon from source with cargo/)
  t.regex(log, /dcgan: addon built in \d+ s/)
  t.false(existsSync(join(project, 'node_modules', 'dcgan-linux-x64-gnu')), 'no platform package was installed')
  t.true(existsSync(join(project, 'node_modules', 'dcgan', 'dcgan.linux-x64-gnu.node')), 'the addon was built into the package')
  const run = join(project, 'run')
  const r = sh(join(project, 'node_modules', '.bin', 'dcgan'), ['train', ...TINY, '--steps', '5', '--out', run], project)
  t.is(r.status, 0, r.stderr)
  t.is(readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 5)
})

// The registry page shows the README without the repository beside it (the package has no public
// repository yet), so its images are addressed in the published package itself through jsDelivr's
// npm mirror: each must name this version and a file the tarball really holds.
test.serial("the README's images are URLs into this version's published package, and the tarball holds each file", (t) => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const images = [...readme.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1])
  t.true(images.length >= 4, `expected the README's images, found ${images.length}`)
  const inTarball = new Set(execFileSync('tar', ['-tzf', packed().main], { encoding: 'utf8' }).split('\n').map((f) => f.replace(/^package\//, '')))
  const prefix = `https://cdn.jsdelivr.net/npm/dcgan@${version}/`
  for (const url of images) {
    t.true(url.startsWith(prefix), `${url} does not start with ${prefix}`)
    const file = url.slice(prefix.length)
    t.true(existsSync(join(ROOT, file)), `${file} is not in the checkout`)
    t.true(inTarball.has(file), `${file} is not in the packed tarball (package.json "files")`)
  }
})

test.serial('with install scripts skipped: require works, the first native call and --help say to run npm rebuild dcgan', (t) => {
  const project = freshProject()
  npmInstall(project, ['--ignore-scripts', packed().main])
  const use = sh(join(BIN, 'node'), ['-e', "const d = require('dcgan'); try { new d.DCGAN() } catch (e) { console.log(e.code + ': ' + e.message) }"], project)
  t.is(use.stdout.trim(), 'ERR_DCGAN_NOT_INSTALLED: the native addon of dcgan is not built (were install scripts skipped? npm --ignore-scripts, pnpm and allow-scripts skip them): run npm rebuild dcgan')
  const help = sh(join(project, 'node_modules', '.bin', 'dcgan'), ['--help'], project)
  t.is(help.status, 0)
  t.regex(help.stdout, /Usage: dcgan/)
  t.regex(help.stdout, /note: the native addon of dcgan is not built .*: run npm rebuild dcgan\n$/)
  const train = sh(join(project, 'node_modules', '.bin', 'dcgan'), ['train', ...TINY, '--steps', '1', '--out', join(project, 'run')], project)
  t.is(train.status, 1)
  t.is(train.stderr.trim(), 'dcgan: the native addon of dcgan is not built (were install scripts skipped? npm --ignore-scripts, pnpm and allow-scripts skip them): run npm rebuild dcgan')
})

test('the addon finds libtorch relative to itself: no absolute path, no CUDA library linked', (t) => {
  const dynamic = execFileSync('readelf', ['-d', ADDON], { encoding: 'utf8' })
  const runpath = dynamic.match(/\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]/)
  t.is(runpath?.[1], '$ORIGIN/libtorch/lib')
  t.notRegex(dynamic, /NEEDED.*(cuda|cudnn|cublas|nccl)/)
  const ldd = execFileSync('ldd', [ADDON], { encoding: 'utf8' })
  t.false(ldd.includes(realpathSync(ENV.libtorch)), 'resolved through the package\'s libtorch link, not the cache path')
  t.regex(ldd, /libtorch_cpu\.so => .*\/libtorch\/lib\/libtorch_cpu\.so/)
  // libcudart and libcupti (5 MB) are needed by PyPI's libtorch_cpu.so itself; nothing else of CUDA.
  t.notRegex(ldd, /libtorch_cuda|libc10_cuda|cudnn|cublas|nccl|cufft|cusparse/)
})

/** Whether a node process running `args` mapped libtorch, and how much memory it held at exit. */
function libtorchLoaded(args: string[]): { loaded: boolean; rssMb: number; out: string } {
  const probe = join(scratch('dcgan-probe-'), 'probe.js')
  writeFileSync(probe, "process.on('exit', () => { const m = require('fs').readFileSync('/proc/self/maps', 'utf8'); process.stderr.write(`\\nPROBE ${m.includes('libtorch_cpu.so')} ${Math.round(process.memoryUsage().rss / 1e6)}\\n`) })")
  const r = spawnSync(process.execPath, ['-r', probe, ...args], { cwd: ROOT, encoding: 'utf8' })
  const [, loaded, rss] = r.stderr.match(/PROBE (true|false) (\d+)/) ?? []
  return { loaded: loaded === 'true', rssMb: Number(rss), out: r.stdout }
}

test('require("dcgan"), dcgan --help and --version load no libtorch; the first native call does', (t) => {
  t.false(libtorchLoaded(['-e', "require('./dist/index.js')"]).loaded)
  const help = libtorchLoaded(['dist/cli.js', '--help'])
  t.regex(help.out, /Usage: dcgan/)
  t.false(help.loaded)
  t.false(libtorchLoaded(['dist/cli.js', 'train', '--help']).loaded)
  t.false(libtorchLoaded(['dist/cli.js', '--version']).loaded)
  t.true(libtorchLoaded(['-e', "require('./dist/index.js').cudaAvailable()"]).loaded)
})

testNeeding("device 'cuda' on a CPU-only libtorch names the missing library and how to get it",
  { met: ENV.kind === 'cpu', required: false, reason: `this checkout uses a libtorch with CUDA (${ENV.libtorch})` }, async (t) => {
    const gan = new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, device: 'cuda' })
    const e = await t.throwsAsync(gan.generate(1))
    t.regex(e!.message, /^invalid device: got 'cuda'; CUDA cannot be used: .*\/libtorch_cuda\.so is missing \(this libtorch is CPU-only\); install libtorch with CUDA: DCGAN_TORCH=cuda npm rebuild dcgan$/)
    t.true(await new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, device: 'auto' }).generate(1).then(() => true))
  })

test('an option-schema.json other than the addon\'s is refused on the first native call, naming the file', (t) => {
  const copy = scratch('dcgan-stale-')
  for (const f of ['dist', 'index.js', 'package.json', 'dcgan.linux-x64-gnu.node']) cpSync(join(ROOT, f), join(copy, f), { recursive: true })
  symlinkSync(ENV.libtorch, join(copy, 'libtorch'))
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'))
  const schema = JSON.parse(readFileSync(join(ROOT, 'option-schema.json'), 'utf8'))
  schema.model.zDim = 7 // a default the addon does not have
  writeFileSync(join(copy, 'option-schema.json'), JSON.stringify(schema))
  const r = spawnSync(process.execPath, ['-e', "const d = require('./dist/index.js'); d.cudaAvailable().catch(e => console.log(e.code + ': ' + e.message))"], { cwd: copy, encoding: 'utf8' })
  t.is(r.stdout.trim(), `ERR_DCGAN_NOT_INSTALLED: ${join(copy, 'option-schema.json')} does not match the native addon (they were built from different sources): run npm rebuild dcgan (in a clone: npm run build:native)`, r.stderr)
})
