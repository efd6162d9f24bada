// The generated napi-rs binding (index.js / index.d.ts at the package root), loaded on first use:
// loading it loads libtorch (here 0.7 s and 115 MB of memory for the CPU libraries), which `require('dcgan')`, `dcgan --help` and
// `dcgan --version` do not need. Everything else in src/ goes through this module.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type * as Binding from '../index'
import { ErrorCode } from './errors'

export type {
  DeferredStats, EvalScores, GroupStepResult, ImageScores, LoadedBatch, NativeEvalOptions, NativeEvalReport, NativeGan, NativeLoader, StepStats, TensorData, TensorFile,
} from '../index'

/** The package root (this file runs from src/ in a clone, from dist/ in the package). */
const ROOT = join(__dirname, '..')
const ADDON = 'dcgan.linux-x64-gnu.node'
const PREBUILT_PACKAGE = 'dcgan-linux-x64-gnu'
/** The option schema of the addon, written by the install script beside it (scripts/setup.mjs). */
const SCHEMA_FILE = join(ROOT, 'option-schema.json')

let loaded: typeof Binding | undefined

/** The native binding, loaded on the first call. Throws one line saying what to run when it cannot load. */
export function binding(): typeof Binding {
  loaded ??= loadBinding()
  return loaded
}

function loadBinding(): typeof Binding {
  let b: typeof Binding
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    b = require('../index') as typeof Binding
  } catch (e) {
    throw notInstalled(e)
  }
  const snapshot = schemaSnapshot()
  if (snapshot !== null && snapshot !== b.optionSchema().trim()) {
    throw installError(`${SCHEMA_FILE} does not match the native addon (they were built from different sources): run npm rebuild dcgan (in a clone: npm run build:native)`)
  }
  return b
}

function installError(message: string, cause?: unknown): Error {
  return Object.assign(new Error(message, { cause }), { code: ErrorCode.NOT_INSTALLED })
}

/** The folder of the addon that the generated loader would load (the package's own, else the prebuilt one), or null. */
export function addonDir(): string | null {
  if (existsSync(join(ROOT, ADDON))) return ROOT
  try {
    const dir = dirname(require.resolve(`${PREBUILT_PACKAGE}/package.json`, { paths: [ROOT] }))
    return existsSync(join(dir, ADDON)) ? dir : null
  } catch {
    return null
  }
}

/** What is missing for the addon to load without loading it (null: nothing seems missing). */
export function missingInstall(): string | null {
  const dir = addonDir()
  if (dir === null) return 'the native addon of dcgan is not built (were install scripts skipped? npm --ignore-scripts, pnpm and allow-scripts skip them): run npm rebuild dcgan'
  if (!existsSync(join(dir, 'libtorch', 'lib', 'libtorch_cpu.so'))) {
    return `libtorch is not where the addon looks for it (${join(dir, 'libtorch')}: missing or a broken link): run npm rebuild dcgan to install it`
  }
  return null
}

/** The one-line error for an addon that failed to load; the loader's own errors stay in `cause`. */
function notInstalled(e: unknown): Error {
  const missing = missingInstall()
  if (missing !== null) return installError(missing, e)
  const first = messagesOf(e).find((m) => !m.startsWith('Cannot find native binding')) ?? String(e)
  return installError(`the native addon of dcgan does not load (${first.split('\n')[0]}): run npm rebuild dcgan`, e)
}

function messagesOf(e: unknown): string[] {
  if (Array.isArray(e)) return e.flatMap(messagesOf)
  if (!(e instanceof Error)) return []
  return [e.message, ...messagesOf((e as Error & { cause?: unknown }).cause)]
}

function schemaSnapshot(): string | null {
  try {
    return readFileSync(SCHEMA_FILE, 'utf8').trim()
  } catch {
    return null
  }
}

/** The option schema as JSON: the snapshot written at build time (no libtorch), else the addon's. */
export function optionSchemaJson(): string {
  return schemaSnapshot() ?? binding().optionSchema()
}

// The binding's functions, each loading the binding on its first call.
type Fn = (...args: never[]) => unknown
function lazy<K extends { [P in keyof typeof Binding]: (typeof Binding)[P] extends Fn ? P : never }[keyof typeof Binding]>(name: K): (typeof Binding)[K] {
  return ((...args: unknown[]) => (binding()[name] as (...a: unknown[]) => unknown)(...args)) as (typeof Binding)[K]
}
export const checkGanOptions = lazy('checkGanOptions')
export const cudaAvailable = lazy('cudaAvailable')
export const distributedSync = lazy('distributedSync')
export const distributedVote = lazy('distributedVote')
export const evaluateGan = lazy('evaluateGan')
export const evaluateImages = lazy('evaluateImages')
export const exportOnnx = lazy('exportOnnx')
export const getThreads = lazy('getThreads')
export const initDistributed = lazy('initDistributed')
export const liveModels = lazy('liveModels')
export const loadGan = lazy('loadGan')
export const openLoader = lazy('openLoader')
export const readCheckpointInfo = lazy('readCheckpointInfo')
export const readMetadata = lazy('readMetadata')
export const readOnnxInfo = lazy('readOnnxInfo')
export const readTensors = lazy('readTensors')
export const resolveTrainConfig = lazy('resolveTrainConfig')
export const shutdownDistributed = lazy('shutdownDistributed')
export const writeFileAtomic = lazy('writeFileAtomic')
export const writeFileAtomicAsync = lazy('writeFileAtomicAsync')
export const writeImageGrid = lazy('writeImageGrid')
