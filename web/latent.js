// The latent vectors of `gan.latent(n, seed)` / `gan.generate(n, { seed })`, drawn in JavaScript
// exactly as dcgan-core draws them in Rust, so that a seed in the exported page is the same point
// of latent space as in the library:
//
//   ChaCha8Rng::seed_from_u64(seed)   (rand_core 0.9.5: PCG32 fills the 32-byte key;
//                                      rand_chacha 0.9.0: ChaCha with 8 rounds, 64-bit block
//                                      counter and stream 0, words consumed in order, a u64 is
//                                      two consecutive words, low first)
//   Normal(0, 1) as f32               (rand_distr 0.5.1: StandardNormal in f64 by the ZIGNOR
//                                      ziggurat with its 257-entry tables, then rounded to f32)
//
// The values are bit-identical to the library's (checked by __test__/export.spec.ts over
// 100,000 draws, which take every path of the ziggurat) except that Math.exp/Math.log may differ
// from the platform's libm in the last bit, which could flip a draw only when a comparison falls
// within one ulp: a chance far below one in a billion per draw.
//
// A classic script (no modules: it must load from file://); defines `dcganLatent` on the global
// object, or module.exports under Node.
;(function (root) {
  'use strict'
  const MASK64 = (1n << 64n) - 1n

  // rand_core's SeedableRng::seed_from_u64: PCG32 (XSH RR) output words as the seed's bytes.
  function seedFromU64(seed) {
    let state = BigInt.asUintN(64, BigInt(seed))
    const key = new Uint32Array(8)
    for (let i = 0; i < 8; i++) {
      state = (state * 6364136223846793005n + 11634580027462260723n) & MASK64
      const xorshifted = Number((((state >> 18n) ^ state) >> 27n) & 0xffffffffn)
      const rot = Number(state >> 59n)
      key[i] = ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0
    }
    return key
  }

  function rotl(x, n) {
    return (x << n) | (x >>> (32 - n))
  }

  // One ChaCha8 block of 16 words for the 64-bit block counter `counter` (stream 0).
  function chachaBlock(key, counter, out) {
    const s = new Uint32Array(16)
    s[0] = 0x61707865; s[1] = 0x3320646e; s[2] = 0x79622d32; s[3] = 0x6b206574
    s.set(key, 4)
    s[12] = Number(counter & 0xffffffffn)
    s[13] = Number(counter >> 32n)
    const x = Uint32Array.from(s)
    const quarter = (a, b, c, d) => {
      x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 16)
      x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 12)
      x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 8)
      x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 7)
    }
    for (let round = 0; round < 8; round += 2) {
      quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
      quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
    }
    for (let i = 0; i < 16; i++) out[i] = (x[i] + s[i]) >>> 0
  }

  // ChaCha8Rng: next_u64 as a BigInt.
  function ChaCha8(seed) {
    const key = seedFromU64(seed)
    const block = new Uint32Array(16)
    let counter = 0n
    let index = 16
    this.nextU64 = function () {
      if (index >= 16) {
        chachaBlock(key, counter, block)
        counter = (counter + 1n) & MASK64
        index = 0
      }
      const lo = BigInt(block[index])
      const hi = BigInt(block[index + 1])
      index += 2
      return (hi << 32n) | lo
    }
  }

  const bitsView = new DataView(new ArrayBuffer(8))
  // rand's into_float_with_exponent: 52 fraction bits under a fixed exponent.
  function floatWithExponent(fraction, exponent) {
    bitsView.setBigUint64(0, fraction | (BigInt(1023 + exponent) << 52n))
    return bitsView.getFloat64(0)
  }

  const EPSILON = Math.pow(2, -52)
  // rand's StandardUniform for f64: 53 bits times 2^-53, in [0, 1).
  function uniform(rng) {
    return Number(rng.nextU64() >> 11n) * Math.pow(2, -53)
  }
  // rand's Open01 for f64: in (0, 1).
  function open01(rng) {
    return floatWithExponent(rng.nextU64() >> 12n, 0) - (1 - EPSILON / 2)
  }

  // rand_distr's StandardNormal for f64 (utils.rs ziggurat, symmetric, with normal.rs's zero case).
  function standardNormal(rng, X, F, R) {
    for (;;) {
      const bits = rng.nextU64()
      const i = Number(bits & 0xffn)
      const u = floatWithExponent(bits >> 12n, 1) - 3
      const x = u * X[i]
      if (Math.abs(x) < X[i + 1]) return x
      if (i === 0) {
        let tx = 1
        let ty = 0
        while (-2 * ty < tx * tx) {
          tx = Math.log(open01(rng)) / R
          ty = Math.log(open01(rng))
        }
        return u < 0 ? tx - R : R - tx
      }
      if (F[i + 1] + (F[i] - F[i + 1]) * uniform(rng) < Math.exp((-x * x) / 2)) return x
    }
  }

  // n×zDim values, row-major: the z of gan.latent(n, seed).
  function latent(n, zDim, seed) {
    if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer ≥ 0, got ${seed}`)
    const { X, F, R } = root.dcganZigguratTables || require('./ziggurat-tables.js')
    const rng = new ChaCha8(seed)
    const out = new Float32Array(n * zDim)
    for (let k = 0; k < out.length; k++) out[k] = standardNormal(rng, X, F, R)
    return out
  }

  // Spherical interpolation as src/sampling.ts's slerp (in float64, rounded to float32 at the end).
  function slerp(a, b, t) {
    let dot = 0
    let na = 0
    let nb = 0
    for (let i = 0; i < a.length; i++) {
      dot += a[i] * b[i]
      na += a[i] * a[i]
      nb += b[i] * b[i]
    }
    const lerp = () => a.map((x, i) => (1 - t) * x + t * b[i])
    if (na === 0 || nb === 0) return lerp()
    const cos = Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb)))
    const omega = Math.acos(cos)
    if (omega < 1e-6) return lerp()
    const s = Math.sin(omega)
    const wa = Math.sin((1 - t) * omega) / s
    const wb = Math.sin(t * omega) / s
    return a.map((x, i) => wa * x + wb * b[i])
  }

  const api = { latent, slerp, ChaCha8 }
  if (typeof module === 'object' && module.exports) module.exports = api
  else root.dcganLatent = api
})(typeof globalThis !== 'undefined' ? globalThis : this)
