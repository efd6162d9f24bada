// Where dcgan finds libtorch: a cached Python virtual environment with torch==2.11.0 (made on first
// install), a Python named by DCGAN_PYTHON, or a libtorch folder named by LIBTORCH. Shared by
// setup.mjs (install and build), with-torch.mjs (run a command against it) and the benchmarks.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const TORCH_VERSION = '2.11.0'
// Installed beside torch: the reference and fixture scripts need them. Pinned to versions that install here.
export const PYTHON_PACKAGES = [`torch==${TORCH_VERSION}`, 'torchvision==0.26.0', 'pillow==13.0.0', 'safetensors==0.8.0', 'numpy==2.4.6']
// The Python modules of those packages, to check that a cached environment has them all.
const PYTHON_MODULES = ['torch', 'torchvision', 'PIL', 'safetensors', 'numpy']
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const ENV_FILE = join(ROOT, '.dcgan-env.json')

export class SetupError extends Error {}

export function cacheDir() {
  if (process.env.DCGAN_CACHE_DIR) return resolve(process.env.DCGAN_CACHE_DIR)
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return join(base, 'dcgan')
}

function which(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || null
}

export function requireTool(cmd, howToGet) {
  if (!which(cmd)) throw new SetupError(`'${cmd}' was not found on PATH. ${howToGet}`)
}

/** torch's version, lib folder and C++ ABI as seen by `python`, or null when it has no torch. */
function probeTorch(python) {
  const code =
    'import json, os, torch; print(json.dumps({"version": torch.__version__.split("+")[0],' +
    ' "lib": os.path.join(os.path.dirname(torch.__file__), "lib"),' +
    ' "abi": int(torch._C._GLIBCXX_USE_CXX11_ABI)}))'
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8' })
  if (r.status !== 0) return null
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop())
  } catch {
    return null
  }
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...options })
  if (r.status !== 0) throw new SetupError(`'${cmd} ${args.join(' ')}' failed (exit ${r.status ?? r.signal})`)
}

/** Creates the cached virtual environment with torch (about 3 GB, once per machine). */
function installVenv(venv) {
  requireTool('python3', 'Install Python 3.9 or newer (Debian: apt-get install python3 python3-venv).')
  const tmp = `${venv}.partial-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(dirname(venv), { recursive: true })
  console.log(`dcgan: installing torch ${TORCH_VERSION} into ${venv} (about 3 GB, once per machine)`)
  const made = spawnSync('python3', ['-m', 'venv', tmp], { stdio: 'inherit' })
  if (made.status !== 0) {
    throw new SetupError('python3 could not create a virtual environment. Install the venv module (Debian: apt-get install python3-venv).')
  }
  const py = join(tmp, 'bin', 'python')
  if (spawnSync(py, ['-m', 'pip', '--version']).status !== 0) {
    throw new SetupError('pip is missing from the new virtual environment. Install pip (Debian: apt-get install python3-pip python3-venv).')
  }
  run(py, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-cache-dir', ...PYTHON_PACKAGES])
  // Moved into place only when complete, so an interrupted install is never mistaken for a good one.
  rmSync(venv, { recursive: true, force: true })
  renameSync(tmp, venv)
}

/**
 * Finds (or installs) libtorch. Returns { python, lib, abi, source } where python may be null
 * when only LIBTORCH is given.
 */
export function resolveTorch({ install = true } = {}) {
  if (process.env.LIBTORCH) {
    const lib = join(resolve(process.env.LIBTORCH), 'lib')
    if (!existsSync(lib)) throw new SetupError(`LIBTORCH=${process.env.LIBTORCH} has no lib/ folder: point it at an unpacked libtorch ${TORCH_VERSION}.`)
    const python = process.env.DCGAN_PYTHON || null
    return { python, lib, abi: Number(process.env.DCGAN_TORCH_CXX11_ABI ?? 1), source: 'LIBTORCH' }
  }
  if (process.env.DCGAN_PYTHON) {
    const probe = probeTorch(process.env.DCGAN_PYTHON)
    if (!probe) throw new SetupError(`DCGAN_PYTHON=${process.env.DCGAN_PYTHON} cannot import torch. Install torch==${TORCH_VERSION} into it, or unset DCGAN_PYTHON.`)
    if (probe.version !== TORCH_VERSION) {
      throw new SetupError(`DCGAN_PYTHON has torch ${probe.version}, but dcgan needs ${TORCH_VERSION} (the version tch 0.24 binds). Unset DCGAN_PYTHON to use a cached one.`)
    }
    return { python: process.env.DCGAN_PYTHON, ...probe, source: 'DCGAN_PYTHON' }
  }
  const venv = join(cacheDir(), `torch-${TORCH_VERSION}`)
  const python = join(venv, 'bin', 'python')
  let probe = existsSync(python) ? probeTorch(python) : null
  if (!probe || probe.version !== TORCH_VERSION) {
    if (!install) throw new SetupError(`torch ${TORCH_VERSION} is not installed yet: run 'npm install' first.`)
    installVenv(venv)
    probe = probeTorch(python)
    if (!probe) throw new SetupError(`torch was installed into ${venv} but cannot be imported; delete that folder and run 'npm install' again.`)
  }
  // An environment made by an earlier version may lack a package added since: add it.
  if (install && spawnSync(python, ['-c', `import ${PYTHON_MODULES.join(', ')}`]).status !== 0) {
    run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-cache-dir', ...PYTHON_PACKAGES])
  }
  return { python, ...probe, venv, source: 'cache' }
}

/** Environment for cargo (build scripts of torch-sys and dcgan-core) and for programs using libtorch. */
export function torchEnv(torch) {
  const env = { ...process.env }
  env.CARGO_TARGET_DIR ||= join(cacheDir(), 'target')
  env.DCGAN_TORCH_CXX11_ABI = String(torch.abi)
  env.LD_LIBRARY_PATH = [torch.lib, env.LD_LIBRARY_PATH].filter(Boolean).join(':')
  if (torch.source !== 'LIBTORCH') {
    env.LIBTORCH_USE_PYTORCH = '1'
    // torch-sys runs `python` when VIRTUAL_ENV is set, `python3` otherwise.
    env.VIRTUAL_ENV = resolve(dirname(torch.python), '..')
    env.PATH = `${dirname(torch.python)}:${env.PATH}`
  }
  return env
}

export function writeEnvFile(torch) {
  writeFileSync(ENV_FILE, JSON.stringify({ python: torch.python, lib: torch.lib, abi: torch.abi, source: torch.source }, null, 2) + '\n')
}

export { run }
