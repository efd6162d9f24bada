// Bad input gets a message that names the field, the value and what is allowed; never a crash.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, ErrorCode, Trainer, evaluate, interpolate, lerp, openDataset, saveImageGrid, slerp, vectorArithmetic, type DCGANOptions } from '../src/index'
import { testNeeding } from './helpers'

const small: DCGANOptions = { imageSize: 16, featuresG: 2, featuresD: 2, device: 'cpu', seed: 0 }

const badConfigs: Array<[DCGANOptions, RegExp]> = [
  [{ imageSize: 48 }, /invalid imageSize: got 48; allowed: a power of two from 16 to 256/],
  [{ imageSize: 512 }, /invalid imageSize: got 512/],
  [{ zDim: 0 }, /invalid zDim: got 0; allowed: an integer from 1/],
  [{ zDim: 2.5 }, /invalid zDim: got 2.5; allowed: an integer/],
  [{ channels: 2 as 1 }, /invalid channels: got 2; allowed: 1 \(grayscale\) or 3 \(RGB\)/],
  [{ featuresG: -1 }, /invalid featuresG: got -1/],
  [{ lr: 0 }, /invalid lr: got 0/],
  [{ beta1: 1 }, /invalid beta1: got 1; allowed: a number in \[0, 1\)/],
  [{ dSteps: 0 }, /invalid dSteps: got 0/],
  [{ init: 'xavier' as 'seed' }, /invalid init: got 'xavier'; allowed: 'seed', 'pytorch-example'/],
  [{ generatorLoss: 'wgan' as 'minimax' }, /invalid generatorLoss: got 'wgan'; allowed: 'non-saturating', 'minimax'/],
  [{ device: 'tpu' as 'cpu' }, /invalid device: got 'tpu'; allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'/],
  [{ threads: 0 }, /invalid threads: got 0/],
  [{ imageSize: '64' as unknown as number }, /invalid imageSize: got '64'; allowed: an integer/],
  [{ imagesize: 64 } as DCGANOptions, /unknown option 'imagesize'; allowed: zDim, channels, featuresG, featuresD, imageSize/],
]

for (const [options, message] of badConfigs) {
  test(`rejects ${JSON.stringify(options)}`, (t) => {
    t.throws(() => new DCGAN({ ...small, ...options }), { message })
  })
}

/** What `DCGAN.create({ device })` rejects with for each device, in a process that sees the GPUs `visible` lists. */
function deviceErrors(visible: string, devices: string[]): { cuda: boolean; messages: string[] } {
  const script = `
    const { DCGAN, cudaAvailable } = require(${JSON.stringify(join(__dirname, '..', 'src', 'index.ts'))})
    ;(async () => {
      const messages = []
      for (const device of ${JSON.stringify(devices)}) {
        // The device is resolved where the model is built, off the JavaScript thread: create() rejects.
        try { await DCGAN.create({ imageSize: 16, featuresG: 2, featuresD: 2, device }); messages.push('no error') } catch (e) { messages.push(e.message) }
      }
      console.log(JSON.stringify({ cuda: await cudaAvailable(), messages }))
    })()`
  const env = { ...process.env, CUDA_VISIBLE_DEVICES: visible }
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { env, encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').pop()!)
}

// In a child process with every GPU hidden, so that GPU machines check this message too.
// A CPU-only libtorch (the install without an NVIDIA driver) has no libtorch_cuda.so to load: the
// message names it and how to get it; a libtorch with CUDA on a machine without a GPU says that.
const cpuOnlyTorch = !existsSync(join(JSON.parse(readFileSync(join(__dirname, '..', '.dcgan-env.json'), 'utf8')).lib, 'libtorch_cuda.so'))

test('asking for CUDA where there is none says so', (t) => {
  const r = deviceErrors('', ['cuda', 'cuda:1'])
  t.false(r.cuda, 'CUDA_VISIBLE_DEVICES="" did not hide the GPUs')
  if (cpuOnlyTorch) {
    t.regex(r.messages[0], /^invalid device: got 'cuda'; CUDA cannot be used: \/.*\/libtorch_cuda\.so is missing \(this libtorch is CPU-only\); install libtorch with CUDA: DCGAN_TORCH=cuda npm rebuild dcgan$/)
    t.regex(r.messages[1], /^invalid device: got 'cuda:1'; CUDA cannot be used: .*libtorch_cuda\.so is missing/)
  } else {
    t.regex(r.messages[0], /invalid device: got 'cuda'; CUDA is not available on this machine.*use 'cpu' or 'auto'/)
    t.regex(r.messages[1], /CUDA is not available/)
  }
})

// A machine with an NVIDIA driver claims CUDA: there libtorch must see it (an addon built without
// torch_cuda linked would silently train on the CPU).
testNeeding(
  'asking for a GPU index beyond the devices says how many there are',
  { met: existsSync('/dev/nvidiactl') && deviceErrors('0', []).cuda, required: existsSync('/dev/nvidiactl'), reason: existsSync('/dev/nvidiactl') ? 'this machine has an NVIDIA driver (/dev/nvidiactl) but libtorch sees no CUDA device' : 'no CUDA on this machine' },
  (t) => {
    const r = deviceErrors('0', ['cuda:0', 'cuda:1'])
    t.deepEqual(r, { cuda: true, messages: ['no error', "invalid device: got 'cuda:1'; this machine has 1 CUDA device(s), numbered 0 to 0"] })
  },
)

test('a real batch of the wrong shape, size or values is rejected with what was expected', async (t) => {
  const gan = new DCGAN(small)
  const ok = new Float32Array(4 * 256)
  await t.throwsAsync(gan.trainStep({ data: ok, shape: [4, 1, 32, 8] }), { message: /the real batch has shape \[4, 1, 32, 8\]; expected \[n, 1, 16, 16\]/ })
  await t.throwsAsync(gan.trainStep({ data: ok, shape: [4, 3, 16, 16] }), { message: /needs 3072 values but 1024 were given/ })
  await t.throwsAsync(gan.trainStep({ data: ok, shape: [1024] }), { message: /has shape \[1024\]; expected \[n, 1, 16, 16\]/ })
  const nan = ok.slice()
  nan[17] = NaN
  await t.throwsAsync(gan.trainStep({ data: nan, shape: [4, 1, 16, 16] }), { message: /value 17 is NaN.*must be finite/ })
  const inf = ok.slice()
  inf[3] = Infinity
  await t.throwsAsync(gan.trainStep({ data: inf, shape: [4, 1, 16, 16] }), { message: /value 3 is inf/ })
  await t.throwsAsync(gan.trainStep({ data: ok, shape: [4, 1, 16, 16] }, { noise: new Float32Array(7) }), { message: /the noise batch: shape \[4, 100\] needs 400 values but 7 were given/ })
  await t.throwsAsync(gan.trainStep({ data: [1, 2] as unknown as Float32Array, shape: [4, 1, 16, 16] }), { message: /needs 1024 values but 2 were given/ })
  await t.throwsAsync(gan.trainStep({ data: new Float32Array(1), shape: [] }, { noise: new Float32Array(100) }), { message: /the real batch has shape \[\]; expected \[n, channels, imageSize, imageSize\]/ })
  await t.throwsAsync(gan.trainStep({ data: ok, shape: [2 ** 40, 2 ** 40, 2 ** 20, 1] }), { message: /the real batch: shape \[.*\] is too large/ })
  await t.throwsAsync(saveImageGrid({ data: new Float32Array(0), shape: [1, 1, 0, 5] }, join(mkdtempSync(join(tmpdir(), 'dcgan-grid-')), 'g.png')), { message: /an image batch needs every dimension ≥ 1, got \[1, 1, 0, 5\]/ })
  // The model is still usable after all of that.
  const s = await gan.trainStep({ data: ok, shape: [4, 1, 16, 16] })
  t.true(Number.isFinite(s.lossD))
})

test('bad sampling requests are rejected', async (t) => {
  const gan = new DCGAN(small)
  await t.throwsAsync(gan.generate(0), { message: /invalid n: got 0; allowed: an integer from 1/ })
  await t.throwsAsync(gan.generate(1.5), { message: /invalid n: got 1.5/ })
  await t.throwsAsync(gan.generateFrom(new Float32Array(150)), { message: /150 values, which is not a positive multiple of zDim = 100/ })
  await t.throwsAsync(gan.discriminate({ data: new Float32Array(10), shape: [10] }), { message: /the image batch has shape \[10\]/ })
  await t.throwsAsync(gan.generateFrom(new Float32Array(150)), { instanceOf: RangeError, code: ErrorCode.INVALID_INPUT })
  // Seeds stop at 2^53 − 1, and the message says so (a larger number is not the integer typed).
  await t.throwsAsync(gan.generate(1, { seed: 2 ** 60 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid seed: got 1152921504606847000; allowed: an integer from 0 to 9007199254740991' })
  await t.throwsAsync(evaluate(gan, { samples: 20, seed: 2 ** 53 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid seed: got 9007199254740992; allowed: an integer from 0 to 9007199254740991' })
  t.is((await gan.latent(1, Number.MAX_SAFE_INTEGER)).length, 100)
  // Options of the wrong type are named, not napi's 'BooleanExpected'.
  await t.throwsAsync(gan.generate(2, { batchStats: 'yes' as never }), { instanceOf: TypeError, code: ErrorCode.INVALID_OPTION, message: "invalid batchStats: got 'yes'; allowed: true or false" })
  await t.throwsAsync(saveImageGrid({ data: new Float32Array(4), shape: [1, 1, 2, 2] }, join(tmpdir(), 'never.png'), { normalize: 1 as never }), { code: ErrorCode.INVALID_OPTION, message: 'invalid normalize: got 1; allowed: true or false' })
  await t.throwsAsync(gan.generate('4' as never), { code: ErrorCode.INVALID_OPTION, message: "invalid n: got the string '4'; allowed: a number" })
})

test('bad interpolation and arithmetic requests carry a code and name what is wrong', async (t) => {
  const gan = new DCGAN({ ...small, zDim: 4 })
  const zero = new Float32Array(4)
  await t.throwsAsync(interpolate(gan, undefined as never), { instanceOf: TypeError, code: ErrorCode.INVALID_OPTION, message: 'interpolate(gan, options) takes options { from, to }, got undefined' })
  await t.throwsAsync(interpolate(gan, { from: { seed: 1.5 }, to: { seed: 2 } }), { code: ErrorCode.INVALID_OPTION, message: 'invalid from.seed: got 1.5; allowed: an integer from 0 to 9007199254740991' })
  await t.throwsAsync(interpolate(gan, { from: 'x' as never, to: { seed: 2 } }), { instanceOf: TypeError, code: ErrorCode.INVALID_INPUT, message: /^from: a latent point must be/ })
  await t.throwsAsync(interpolate(gan, { from: [1, 2], to: { seed: 2 } }), { instanceOf: RangeError, code: ErrorCode.INVALID_INPUT, message: 'from has 2 values; a latent vector has zDim = 4' })
  await t.throwsAsync(interpolate(gan, { from: zero, to: zero, frames: 1 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid frames: got 1; allowed: an integer from 2 to 1024' })
  await t.throwsAsync(interpolate(gan, { from: zero, to: zero, method: 'cubic' as never }), { code: ErrorCode.INVALID_OPTION, message: "invalid method: got \"cubic\"; allowed: 'linear', 'slerp'" })
  await t.throwsAsync(vectorArithmetic(gan, { a: [], b: [zero], c: [zero] }), { code: ErrorCode.INVALID_INPUT, message: 'a needs at least one latent point' })
  await t.throwsAsync(vectorArithmetic(gan, { a: [zero], b: [zero], c: [zero], variations: -1 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid variations: got -1; allowed: an integer from 0 to 1024' })
  await t.throwsAsync(vectorArithmetic(gan, { a: [zero], b: [zero], c: [zero], noise: -2 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid noise: got -2; allowed: a standard deviation, a finite number ≥ 0' })
  await t.throwsAsync(vectorArithmetic(gan, { a: [zero], b: [zero], c: [zero], seed: -1 }), { code: ErrorCode.INVALID_OPTION, message: 'invalid seed: got -1; allowed: an integer from 0 to 9007199254740991' })
  t.throws(() => lerp(Float32Array.of(1, 2, 3), Float32Array.of(1, 2), 0.5), { code: ErrorCode.INVALID_INPUT, message: 'the two vectors have 3 and 2 values: give two of the same length' })
  // From the origin no great circle exists: slerp is the straight line there (it was NaN).
  const b = Float32Array.of(1, -2, 0.5, 4)
  t.deepEqual(slerp(zero, b, 0.25), lerp(zero, b, 0.25))
  t.deepEqual(slerp(b, zero, 0.25), lerp(b, zero, 0.25))
  const frames = await interpolate(gan, { from: zero, to: { seed: 2 }, frames: 3 })
  t.deepEqual(frames, await gan.generateFrom(Float32Array.from([...zero, ...lerp(zero, await gan.latent(1, 2), 0.5), ...(await gan.latent(1, 2))])))
})

test('loading a missing, foreign or corrupt file names it and says what is wrong', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dcgan-errors-'))
  const missing = join(dir, 'nope.safetensors')
  await t.throwsAsync(DCGAN.load(missing), { message: new RegExp(`${missing}: cannot open: No such file or directory`) })
  const junk = join(dir, 'junk.safetensors')
  writeFileSync(junk, 'this is not a safetensors file')
  await t.throwsAsync(DCGAN.load(junk), { message: /junk.safetensors: not a valid safetensors file/ })
  await t.throwsAsync(DCGAN.load(dir), { code: ErrorCode.FILE, message: `${dir}: is a folder; DCGAN.load takes a checkpoint file (for a run folder's latest: DCGAN.load(findCheckpoint(${JSON.stringify(dir)})))` })
  const gan = new DCGAN(small)
  await t.throwsAsync(gan.loadWeights(junk), { message: /junk.safetensors: not a valid safetensors file/ })
  // Weights of another configuration.
  const other = new DCGAN({ ...small, featuresG: 3 })
  const otherPath = join(dir, 'other.safetensors')
  await other.save(otherPath)
  await t.throwsAsync(gan.loadWeights(otherPath), { message: /'gen.0.0.weight' has shape \[100, 12, 4, 4\] in the weights but \[100, 8, 4, 4\] in this model/ })
})

test('a truncated or foreign IDX file is named in the error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dcgan-idx-'))
  const truncated = join(dir, 'short-idx3-ubyte')
  const header = Buffer.alloc(16)
  header.writeUInt32BE(0x803, 0)
  header.writeUInt32BE(10, 4)
  header.writeUInt32BE(28, 8)
  header.writeUInt32BE(28, 12)
  writeFileSync(truncated, Buffer.concat([header, Buffer.alloc(100)]))
  await t.throwsAsync(openDataset({ kind: 'idx', path: truncated }, { imageSize: 32, batchSize: 2 }), {
    message: new RegExp(`${truncated}: truncated: the header announces 10 images of 28×28 \\(7856 bytes\\) but the file has 116`),
  })
  const labels = join(dir, 'labels-idx1-ubyte')
  const lh = Buffer.alloc(8)
  lh.writeUInt32BE(0x801, 0)
  writeFileSync(labels, lh)
  await t.throwsAsync(openDataset({ kind: 'idx', path: labels }, { imageSize: 32, batchSize: 2 }), { message: /truncated: 8 bytes|not an IDX image file/ })
  await t.throwsAsync(openDataset({ kind: 'idx', path: join(dir, 'absent') }, { imageSize: 32, batchSize: 2 }), { message: /absent: cannot open/ })
})

test('non-finite and non-plain options carry ERR_DCGAN_INVALID_OPTION, as every bad option does', (t) => {
  const code = ErrorCode.INVALID_OPTION
  for (const options of [{ lr: Number.NaN }, { lr: Infinity }, { beta1: Number.NaN }, { eps: -Infinity }] as DCGANOptions[]) {
    const [field, value] = Object.entries(options)[0]
    t.throws(() => new DCGAN({ ...small, ...options }), { code, message: `invalid ${field}: got ${value}; allowed: a finite number` })
  }
  t.throws(() => new Trainer({ lr: Number.NaN }), { code, message: /^invalid lr: got NaN/ })
  t.throws(() => new Trainer({ dataset: { kind: 'mnist', limit: Infinity } }), { code, message: /^invalid dataset\.limit: got Infinity/ })
  t.throws(() => new DCGAN({ ...small, lr: 1n as never }), { code, message: /^invalid lr: got the BigInt 1n/ })
  t.throws(() => new DCGAN(null as never), { code, message: 'DCGAN options must be an object, got null' })
})
