// precision: 'bf16' through the TypeScript API and the CLI. Its numbers against PyTorch's autocast
// loop are tested in crates/dcgan-core/tests/bf16.rs (fixtures from make_bf16_fixtures.py).
import test, { type ExecutionContext } from 'ava'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, ErrorCode, Trainer, listCheckpoints, readCheckpointInfo } from '../src/index'
import { testNeeding } from './helpers'

const small = { imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, device: 'cpu', seed: 2 } as const
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-precision-'))

// oneDNN's bfloat16 convolutions need AVX-512 F/BW/VL/DQ on x86: read from the CPU's flags, not
// from the library, so that a wrong check in the library fails one of the two tests below.
const flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/)
const CPU_BF16 = ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.includes(f))
const bf16Cpu = { met: CPU_BF16, required: false, reason: 'this CPU has no AVX-512 BW/VL/DQ, so oneDNN has no bfloat16 convolutions (the refusal is tested instead)' }
const noBf16Cpu = { met: !CPU_BF16, required: false, reason: 'this CPU has bfloat16 convolutions (bf16 training is tested instead)' }

testNeeding('on a CPU without bfloat16 convolutions, bf16 is refused naming the missing CPU feature', noBf16Cpu, async (t) => {
  await t.throwsAsync(DCGAN.create({ ...small, precision: 'bf16' }), {
    code: ErrorCode.INVALID_OPTION,
    message: /^invalid precision: got 'bf16', but oneDNN has no bfloat16 convolutions for this CPU \(on x86 they need AVX-512 BW\/VL\/DQ.*use 'fp32'$/,
  })
})

testNeeding('bf16 trains, reports its precision, and saves float32 checkpoints that an fp32 model loads', bf16Cpu, async (t) => {
  const gan = await DCGAN.create({ ...small, precision: 'bf16' })
  t.is(gan.config.train.precision, 'bf16')
  t.is(new DCGAN(small).config.train.precision, 'fp32', 'fp32 is the default')
  const data = new Float32Array(8 * 16 * 16).map((_, i) => Math.sin(i))
  const s = await gan.trainStep({ data, shape: [8, 1, 16, 16] })
  for (const v of Object.values(s)) t.true(Number.isFinite(v))
  t.true(s.dReal > 0 && s.dReal < 1 && s.dFake > 0 && s.dFake < 1, 'D outputs are probabilities (sigmoid of the logits)')
  const file = join(tmp(), 'bf16.safetensors')
  await gan.save(file)
  t.is(readCheckpointInfo(file).optimizer.precision, 'bf16')
  const fp32 = new DCGAN(small)
  t.deepEqual(await fp32.loadWeights(file), ['generator', 'discriminator'])
  const [a, b] = [await gan.generate(4, { seed: 1 }), await fp32.generate(4, { seed: 1 })]
  t.deepEqual(b.data, a.data, 'the same weights sample the same images in fp32')
})

test('an unknown precision is refused naming the allowed ones', (t) => {
  t.throws(() => new DCGAN({ ...small, precision: 'fp16' as 'bf16' }), { code: ErrorCode.INVALID_OPTION, message: "invalid precision: got 'fp16'; allowed: 'fp32', 'bf16'" })
})

/** A run folder of 2 bf16 steps made by `dcgan train` (one checkpoint, at step 2). */
function trainBf16Run(t: ExecutionContext): string {
  const out = tmp()
  const cli = join(__dirname, '..', 'dist', 'cli.js')
  const r = spawnSync(process.execPath, [cli, 'train', '--precision', 'bf16', '--steps', '2', '--image-size', '16', '--features-g', '4', '--features-d', '4',
    '--z-dim', '8', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--sample-every', '0', '--out', out], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  return out
}

testNeeding('dcgan train --precision bf16 and Trainer.resume switching to fp32', bf16Cpu, async (t) => {
  const out = trainBf16Run(t)
  t.is(readCheckpointInfo(listCheckpoints(out).at(-1)!.path).optimizer.precision, 'bf16')
  const resumed = await Trainer.resume(out, { steps: 3, precision: 'fp32' })
  await resumed.fit({ progress: false })
  t.is(resumed.gan.config.train.precision, 'fp32')
  t.is(readCheckpointInfo(listCheckpoints(out).at(-1)!.path).optimizer.precision, 'fp32')
})

// A bf16 run's checkpoint (made where bfloat16 convolutions exist: a GPU, this CPU) on a CPU without
// them: DCGAN_CPU_BF16=0 makes the library answer as such a CPU does, in a process of its own.
testNeeding('on a CPU without bfloat16 convolutions a bf16 checkpoint loads, samples and resumes in fp32; a bf16 step or model is refused', bf16Cpu, async (t) => {
  const out = trainBf16Run(t)
  const file = listCheckpoints(out).at(-1)!.path
  const script = `
    const { DCGAN, Trainer } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))})
    const message = (p) => p.then(() => 'accepted', (e) => e.message)
    ;(async () => {
      const gan = await DCGAN.load(${JSON.stringify(file)}, { device: 'cpu' })
      const images = await gan.generate(2, { seed: 1 })
      const step = await message(gan.trainStep({ data: new Float32Array(8 * 256), shape: [8, 1, 16, 16] }))
      const fresh = await message(DCGAN.create({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, device: 'cpu', precision: 'bf16' }))
      const resumed = await Trainer.resume(${JSON.stringify(out)}, { steps: 3, precision: 'fp32' })
      await resumed.fit({ progress: false })
      console.log(JSON.stringify({ precision: gan.config.train.precision, images: images.shape, stepsDone: gan.config.stepsDone, step, fresh, resumed: resumed.step }))
    })().catch((e) => { console.error(e); process.exit(1) })`
  const c = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, DCGAN_CPU_BF16: '0' } })
  t.is(c.status, 0, c.stderr)
  const got = JSON.parse(c.stdout.trim().split('\n').at(-1)!)
  const refusal = /^invalid precision: got 'bf16', but oneDNN has no bfloat16 convolutions for this CPU \(on x86 they need AVX-512 BW\/VL\/DQ.*use 'fp32'$/
  t.is(got.precision, 'bf16')
  t.deepEqual(got.images, [2, 1, 16, 16])
  t.regex(got.step, refusal)
  t.is(got.stepsDone, 2, 'the refused step changed nothing')
  t.regex(got.fresh, refusal)
  t.is(got.resumed, 3)
})
