// Where dcgan finds libtorch, and the Python that the fixtures and benchmarks need. Shared by
// setup.mjs (install and build), with-torch.mjs (run a command against it) and the benchmarks.
//
// libtorch: a folder with lib/ and include/ made on first install from PyPI's torch 2.11.0 wheel
// (`cacheDir()/libtorch-2.11.0-<cpu|cuda>`, see installLibtorch), or a libtorch folder named by
// LIBTORCH, or the torch of a Python named by DCGAN_PYTHON.
// Python (only for tests, `npm run bench`, `npm run quality`): a cached virtual environment with
// torch, torchvision and friends (`cacheDir()/torch-2.11.0`, see resolvePython), made on demand.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const TORCH_VERSION = '2.11.0'
// Installed beside torch: the reference and fixture scripts need them. Pinned to versions that install here.
export const PYTHON_PACKAGES = [`torch==${TORCH_VERSION}`, 'torchvision==0.26.0', 'pillow==13.0.0', 'safetensors==0.8.0', 'numpy==2.4.6']
// The Python modules of those packages, to check that a cached environment has them all.
const PYTHON_MODULES = ['torch', 'torchvision', 'PIL', 'safetensors', 'numpy']
// PyPI's torch 2.11.0 for Linux is a CUDA 13 build: even its CPU library (libtorch_cpu.so) needs
// the CUDA runtime and CUPTI (libcudart.so.13, libcupti.so.13, 13 MB of wheels); everything else
// CUDA (2.7 GB) is only loaded by libtorch_cuda.so. Versions: those torch 2.11.0's METADATA pins.
const CPU_WHEELS = [`torch==${TORCH_VERSION}`, 'nvidia-cuda-runtime==13.0.96', 'nvidia-cuda-cupti==13.0.85']
// What torch 2.11.0 requires on Linux for CUDA (its METADATA), without its Python-only dependencies.
const CUDA_WHEELS = [
  'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.2',
  'nvidia-cudnn-cu13==9.19.0.56', 'nvidia-cusparselt-cu13==0.8.0', 'nvidia-nccl-cu13==2.28.9', 'nvidia-nvshmem-cu13==3.4.5',
]
// libtorch's libraries that need a GPU (and the 2.7 GB of NVIDIA wheels): left out of a CPU install.
// The addon never links them; it loads libtorch_cuda.so at run time when it is there.
const CUDA_ONLY_LIBS = /^lib(torch_cuda.*|c10_cuda|caffe2_nvrtc|torch_nvshmem|torch_python)\.so$/
// The two libraries of the NVIDIA wheels that libtorch_cpu.so itself needs.
const CPU_NVIDIA_LIBS = new Set(['libcudart.so.13', 'libcupti.so.13'])
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

// npm hides the output of install scripts unless they fail, so a long download looks hung: the
// progress also goes to the terminal itself when there is one (not in CI, not under a pipe).
let ttyFd
function terminal() {
  if (ttyFd !== undefined) return ttyFd
  ttyFd = null
  if (!process.stderr.isTTY && !process.env.DCGAN_NO_TTY) {
    try {
      ttyFd = openSync('/dev/tty', 'w')
    } catch {
      // no controlling terminal
    }
  }
  return ttyFd
}

/** A progress line: on stderr, and on the terminal when npm hides stderr. */
export function say(line) {
  process.stderr.write(`${line}\n`)
  const fd = terminal()
  if (fd !== null) {
    try {
      writeSync(fd, `${line}\n`)
    } catch {
      // the terminal went away
    }
  }
}

/** stdio for a long child (pip, cargo): their progress bars on the terminal when npm hides ours. */
function childStdio() {
  const fd = terminal()
  return fd === null ? 'inherit' : ['ignore', fd, fd]
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
  const r = spawnSync(cmd, args, { stdio: childStdio(), ...options })
  if (r.status !== 0) throw new SetupError(`'${cmd} ${args.join(' ')}' failed (exit ${r.status ?? r.signal})`)
}

/** The size of a file or folder tree in bytes (symbolic links not followed). */
export function diskUsage(path) {
  const s = statSync(path, { throwIfNoEntry: false })
  if (!s) return 0
  if (!s.isDirectory()) return s.size
  return readdirSync(path).reduce((sum, name) => sum + diskUsage(join(path, name)), 0)
}

export function humanBytes(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${Math.round(n / 1e6)} MB`
}

/** 'cpu' or 'cuda': DCGAN_TORCH, or for 'auto' (the default) whether an NVIDIA driver is installed. */
export function torchKind() {
  const asked = (process.env.DCGAN_TORCH || 'auto').toLowerCase()
  if (asked === 'cpu' || asked === 'cuda') return asked
  if (asked !== 'auto') throw new SetupError(`DCGAN_TORCH=${process.env.DCGAN_TORCH}: allowed: cpu, cuda or auto.`)
  return existsSync('/proc/driver/nvidia/version') || which('nvidia-smi') ? 'cuda' : 'cpu'
}

function requirePip() {
  requireTool('python3', 'Install Python 3.9 or newer (Debian: apt-get install python3 python3-venv).')
  if (spawnSync('python3', ['-m', 'pip', '--version']).status !== 0) {
    throw new SetupError("python3 has no pip, which fetches torch's libraries from PyPI. Install it (Debian: apt-get install python3-pip).")
  }
}

function pipInstall(target, args) {
  run('python3', ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-cache-dir', '--no-compile', '--target', target, ...args])
}

/**
 * Makes `dir` (cacheDir()/libtorch-2.11.0-<kind>): torch/{lib,include,share} from PyPI's torch
 * wheel and nvidia/ beside it, where the wheel's libraries look for the NVIDIA ones
 * ($ORIGIN/../../nvidia/…). For 'cpu' the CUDA libraries are left out.
 */
function installLibtorch(dir, kind) {
  requirePip()
  const tmp = `${dir}.partial-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { recursive: true })
  const started = Date.now()
  say(kind === 'cpu'
    ? `dcgan: [1/3] downloading torch ${TORCH_VERSION}'s libraries for the CPU (a 531 MB wheel and 13 MB of CUDA runtime; 0.5 GB on disk; DCGAN_TORCH=cuda for GPUs) into ${dir}`
    : `dcgan: [1/3] downloading torch ${TORCH_VERSION}'s libraries with CUDA (about 3.3 GB of wheels, 4 GB on disk; DCGAN_TORCH=cpu for the CPU only) into ${dir}`)
  if (kind === 'cpu') {
    pipInstall(join(tmp, 'site'), ['--no-deps', ...CPU_WHEELS])
  } else {
    pipInstall(join(tmp, 'site'), ['--no-deps', `torch==${TORCH_VERSION}`])
    // A second target: pip --target replaces a top-level folder (nvidia/) that already exists.
    pipInstall(join(tmp, 'nvidia-site'), CUDA_WHEELS)
    renameSync(join(tmp, 'nvidia-site', 'nvidia'), join(tmp, 'site', 'nvidia'))
  }
  const torch = join(tmp, 'torch')
  mkdirSync(torch)
  for (const keep of ['lib', 'include', 'share']) renameSync(join(tmp, 'site', 'torch', keep), join(torch, keep))
  renameSync(join(tmp, 'site', 'nvidia'), join(tmp, 'nvidia'))
  rmSync(join(tmp, 'site'), { recursive: true, force: true })
  rmSync(join(tmp, 'nvidia-site'), { recursive: true, force: true })
  if (kind === 'cpu') pruneForCpu(tmp)
  // torch-sys checks the version in this file when it is there.
  writeFileSync(join(torch, 'build-version'), `${TORCH_VERSION}\n`)
  // Moved into place only when complete, so an interrupted install is never mistaken for a good one.
  rmSync(dir, { recursive: true, force: true })
  renameSync(tmp, dir)
  say(`dcgan: libtorch ready: ${humanBytes(diskUsage(dir))} in ${dir} (${((Date.now() - started) / 1000).toFixed(0)} s)`)
}

function pruneForCpu(root) {
  const lib = join(root, 'torch', 'lib')
  for (const name of readdirSync(lib)) if (CUDA_ONLY_LIBS.test(name)) rmSync(join(lib, name))
  const nvidia = join(root, 'nvidia', 'cu13', 'lib')
  for (const name of readdirSync(nvidia)) if (!CPU_NVIDIA_LIBS.has(name)) rmSync(join(nvidia, name), { recursive: true })
  for (const name of readdirSync(join(root, 'nvidia', 'cu13'))) if (name !== 'lib') rmSync(join(root, 'nvidia', 'cu13', name), { recursive: true })
}

/** The cached libtorch folder of this kind (installed when missing and `install`). */
function cachedLibtorch(kind, install) {
  const dir = join(cacheDir(), `libtorch-${TORCH_VERSION}-${kind}`)
  const libtorch = join(dir, 'torch')
  if (!existsSync(join(libtorch, 'lib', 'libtorch_cpu.so'))) {
    if (!install) throw new SetupError(`libtorch ${TORCH_VERSION} is not installed yet: run 'npm install' first.`)
    installLibtorch(dir, kind)
  }
  return libtorch
}

/**
 * Finds (or installs) libtorch. Returns { libtorch, lib, abi, kind, source, python } where
 * python is the Python with torch when one is known (DCGAN_PYTHON, or the one `npm run
 * setup:python` made), else null.
 */
export function resolveTorch({ install = true } = {}) {
  if (process.env.LIBTORCH) {
    const libtorch = resolve(process.env.LIBTORCH)
    const lib = join(libtorch, 'lib')
    if (!existsSync(lib)) throw new SetupError(`LIBTORCH=${process.env.LIBTORCH} has no lib/ folder: point it at an unpacked libtorch ${TORCH_VERSION}.`)
    const python = process.env.DCGAN_PYTHON || cachedPython()
    return { libtorch, lib, abi: Number(process.env.DCGAN_TORCH_CXX11_ABI ?? 1), kind: libKind(lib), source: 'LIBTORCH', python, version: libtorchVersion(libtorch) }
  }
  if (process.env.DCGAN_PYTHON) {
    const probe = checkedProbe(process.env.DCGAN_PYTHON, 'DCGAN_PYTHON')
    return { libtorch: dirname(probe.lib), ...probe, kind: libKind(probe.lib), python: process.env.DCGAN_PYTHON, source: 'DCGAN_PYTHON' }
  }
  const kind = torchKind()
  const libtorch = cachedLibtorch(kind, install)
  return { libtorch, lib: join(libtorch, 'lib'), abi: 1, kind, source: 'cache', python: cachedPython(), version: TORCH_VERSION }
}

/** A libtorch folder's version from its `build-version` file (which torch-sys checks too), or 'unknown'. */
function libtorchVersion(libtorch) {
  try {
    return readFileSync(join(libtorch, 'build-version'), 'utf8').trim().split('+')[0] || 'unknown'
  } catch {
    return 'unknown'
  }
}

function libKind(lib) {
  return existsSync(join(lib, 'libtorch_cuda.so')) ? 'cuda' : 'cpu'
}

function checkedProbe(python, name) {
  const probe = probeTorch(python)
  if (!probe) throw new SetupError(`${name}=${python} cannot import torch. Install torch==${TORCH_VERSION} into it, or unset ${name}.`)
  if (probe.version !== TORCH_VERSION) {
    throw new SetupError(`${name} has torch ${probe.version}, but dcgan needs ${TORCH_VERSION} (the version tch 0.24 binds).`)
  }
  return probe
}

function pythonVenv() {
  return join(cacheDir(), `torch-${TORCH_VERSION}`)
}

/** The cached Python environment's python when it has been made, else null (never installs; no import check: importing torch takes seconds). */
function cachedPython() {
  const python = join(pythonVenv(), 'bin', 'python')
  return existsSync(python) ? python : null
}

function hasAllModules(python) {
  return spawnSync(python, ['-c', `import ${PYTHON_MODULES.join(', ')}`]).status === 0
}

/** Creates the cached virtual environment with torch, torchvision, … (about 4.7 GB, once per machine). */
function installVenv(venv) {
  requireTool('python3', 'Install Python 3.9 or newer (Debian: apt-get install python3 python3-venv).')
  const tmp = `${venv}.partial-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(dirname(venv), { recursive: true })
  say(`dcgan: installing Python with torch ${TORCH_VERSION} and torchvision into ${venv} (about 3.3 GB of wheels, 4.7 GB on disk, once per machine) for the tests' references, npm run bench and npm run quality`)
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
 * The Python with torch, torchvision, pillow, safetensors and numpy that the fixture scripts,
 * the Python-side tests and the benchmarks run: DCGAN_PYTHON, or the cached environment (made
 * when missing and `install`). The library itself never needs it.
 */
export function resolvePython({ install = true } = {}) {
  if (process.env.DCGAN_PYTHON) return checkedProbe(process.env.DCGAN_PYTHON, 'DCGAN_PYTHON') && process.env.DCGAN_PYTHON
  const venv = pythonVenv()
  const python = join(venv, 'bin', 'python')
  const probe = existsSync(python) ? probeTorch(python) : null
  if (!probe || probe.version !== TORCH_VERSION) {
    if (!install) throw new SetupError(`the Python environment for tests and benchmarks is not installed yet: run 'npm run setup:python'.`)
    installVenv(venv)
    checkedProbe(python, 'the new environment')
  }
  // An environment made by an earlier version may lack a package added since: add it.
  if (install && !hasAllModules(python)) {
    run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-cache-dir', ...PYTHON_PACKAGES])
  }
  return python
}

/** Environment for cargo (build scripts of torch-sys and dcgan-core) and for programs using libtorch. */
export function torchEnv(torch) {
  const env = { ...process.env }
  env.CARGO_TARGET_DIR ||= join(cacheDir(), 'target')
  env.DCGAN_TORCH_CXX11_ABI = String(torch.abi)
  env.LD_LIBRARY_PATH = [torch.lib, env.LD_LIBRARY_PATH].filter(Boolean).join(':')
  if (torch.source === 'DCGAN_PYTHON') {
    env.LIBTORCH_USE_PYTORCH = '1'
    // torch-sys runs `python` when VIRTUAL_ENV is set, `python3` otherwise.
    env.VIRTUAL_ENV = resolve(dirname(torch.python), '..')
  } else {
    env.LIBTORCH = torch.libtorch
    delete env.LIBTORCH_USE_PYTORCH
  }
  if (torch.python) env.PATH = `${dirname(torch.python)}:${env.PATH}`
  return env
}

/** The libtorch and Python in use, for the tests (`.dcgan-env.json`, not committed). */
export function writeEnvFile(torch) {
  const record = { python: torch.python, libtorch: torch.libtorch, lib: torch.lib, abi: torch.abi, kind: torch.kind, source: torch.source }
  writeFileSync(ENV_FILE, JSON.stringify(record, null, 2) + '\n')
}

/** Adds the Python made by `npm run setup:python` to `.dcgan-env.json`. */
export function recordPython(python) {
  let record = {}
  try {
    record = JSON.parse(readFileSync(ENV_FILE, 'utf8'))
  } catch {
    // not written yet: the next install writes the rest
  }
  writeFileSync(ENV_FILE, JSON.stringify({ ...record, python }, null, 2) + '\n')
}

export { run }
