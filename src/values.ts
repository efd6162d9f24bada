// Values handed to dcgan as JavaScript gives them (not exported from the package).

/** The values of a TensorInput as a Float32Array (a Buffer read as float32 values, not as bytes). */
export function asFloat32(values: Float32Array | Buffer | ArrayLike<number>, what: string): Float32Array {
  if (values instanceof Float32Array) return values
  if (Buffer.isBuffer(values)) {
    if (values.byteLength % 4 !== 0) throw new TypeError(`${what}: a Buffer must hold float32 values: ${values.byteLength} bytes is not a multiple of 4`)
    // Copy: a Buffer's offset into its pool need not be 4-byte aligned.
    return new Float32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
  }
  if (values == null || typeof (values as ArrayLike<number>).length !== 'number') {
    throw new TypeError(`${what} must be a Float32Array, a Buffer of float32 values or an array of numbers`)
  }
  return Float32Array.from(values)
}
