// Values handed to dcgan as JavaScript gives them (not exported from the package).
import { codedError, ErrorCode } from './errors'

/** The values of a TensorInput as a Float32Array (a Buffer read as float32 values, not as bytes). */
export function asFloat32(values: Float32Array | Buffer | ArrayLike<number>, what: string): Float32Array {
  if (values instanceof Float32Array) return values
  if (Buffer.isBuffer(values)) {
    if (values.byteLength % 4 !== 0) throw codedError(TypeError, ErrorCode.INVALID_INPUT, `${what}: a Buffer must hold float32 values: ${values.byteLength} bytes is not a multiple of 4`)
    // Copy: a Buffer's offset into its pool need not be 4-byte aligned.
    return new Float32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
  }
  if (values == null || typeof (values as ArrayLike<number>).length !== 'number') {
    throw codedError(TypeError, ErrorCode.INVALID_INPUT, `${what} must be a Float32Array, a Buffer of float32 values or an array of numbers`)
  }
  return Float32Array.from(values)
}

/** The largest seed, 2^53 − 1: the largest integer a JavaScript number holds exactly (as the native side's MAX_SEED). */
export const MAX_SEED = Number.MAX_SAFE_INTEGER

/** A seed option: an integer from 0 to 2^53 − 1. */
export function checkSeed(seed: unknown, what = 'seed'): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
    throw codedError(RangeError, ErrorCode.INVALID_OPTION, `invalid ${what}: got ${typeof seed === 'string' ? `'${seed}'` : String(seed)}; allowed: an integer from 0 to ${MAX_SEED}`)
  }
  return seed
}

/** An optional boolean option, checked here so that the error names it (napi's says 'BooleanExpected'). */
export function checkFlag(value: unknown, what: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') {
    throw codedError(TypeError, ErrorCode.INVALID_OPTION, `invalid ${what}: got ${typeof value === 'string' ? `'${value}'` : String(value)}; allowed: true or false`)
  }
  return value
}
