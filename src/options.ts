// How options reach the native layer: as JSON, checked there against the one schema of the Rust
// core (crates/dcgan-core/src/options.rs), which also supplies every default and preset. Only
// what JSON cannot say is checked here: that numbers are finite, and that values are plain data.
import { codedError, ErrorCode } from './errors'
import * as native from './native'

/** Defaults, presets and option names as the native schema declares them. */
export interface OptionSchema {
  model: Record<string, unknown>
  optimizer: Record<string, unknown>
  /** Every training option's name, those without a default included. */
  optimizerKeys: string[]
  runtime: Record<string, unknown>
  run: Record<string, unknown>
  ganKeys: string[]
  trainKeys: string[]
  presets: Record<string, Record<string, unknown>>
  datasetKinds: string[]
  datasetKeys: string[]
  batchKeys: string[]
  defaultRunSeed: number
}

/** The native schema, read once when the module loads (from the snapshot the build writes: no libtorch). */
export const OPTION_SCHEMA: Readonly<OptionSchema> = Object.freeze(JSON.parse(native.optionSchemaJson()) as OptionSchema)

/**
 * `value` as JSON text for the native layer. Throws naming the field for what JSON would silently
 * change: NaN and ±Infinity (they become null: a RangeError), BigInts, functions, symbols (a
 * TypeError). Each carries `code` `ERR_DCGAN_INVALID_OPTION`, as the native layer's checks do.
 */
export function toOptionsJson(value: unknown, what: string): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(TypeError, `${what} must be an object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`)
  }
  checkPlain(value, '')
  return JSON.stringify(value)
}

/** A RangeError or TypeError (their class kept for callers that test it) with dcgan's code for a bad option. */
function invalid(kind: typeof RangeError | typeof TypeError, message: string): Error {
  return codedError(kind, ErrorCode.INVALID_OPTION, message)
}

function checkPlain(value: unknown, path: string): void {
  const where = path === '' ? 'a value' : path
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw invalid(RangeError, `invalid ${where}: got ${value}; allowed: a finite number`)
      return
    case 'bigint':
      throw invalid(TypeError, `invalid ${where}: got the BigInt ${value}n; allowed: a number`)
    case 'function':
    case 'symbol':
      throw invalid(TypeError, `invalid ${where}: got a ${typeof value}; allowed: plain data (numbers, strings, booleans, objects)`)
    case 'object':
      if (value === null) return
      for (const [k, v] of Object.entries(value)) if (v !== undefined) checkPlain(v, path === '' ? k : `${path}.${k}`)
  }
}
