// Evaluation: the shipped MNIST classifier, FID / Inception Score against known yardsticks,
// evaluating checkpoints (deterministic, eval.json), the `dcgan eval` command and its errors.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import {
  CLASSIFIER_PATH, DCGAN, ErrorCode, type EvalResult, Trainer, type TrainConfig, evaluate, evaluateCheckpoint, evaluateImages,
  listCheckpoints, mnistImagesPath, openDataset, readSafetensors, runDirOf, saveImageGrid, writeEval,
} from '../src/index'

const CLI = join(__dirname, '..', 'dist', 'cli.js')
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-eval-'))

/** The first `n` MNIST test images as they are (28×28 in [−1, 1]) and their labels. */
function mnistTest(n: number, offset = 0) {
  const path = mnistImagesPath('test')
  const pixels = readFileSync(path).subarray(16 + offset * 784, 16 + (offset + n) * 784)
  const labels = readFileSync(join(dirname(path), 't10k-labels-idx1-ubyte')).subarray(8 + offset, 8 + offset + n)
  return { images: { data: Float32Array.from(pixels, (v) => v / 127.5 - 1), shape: [n, 1, 28, 28] }, labels }
}

/** A tiny run: a few steps on 64 MNIST images. */
async function tinyRun(extra: Partial<TrainConfig> = {}): Promise<string> {
  const outDir = tmp()
  const config = {
    imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, batchSize: 8, steps: 4, device: 'cpu', seed: 2, outDir,
    sampleEvery: 0, checkpointEvery: 1000, dataset: { kind: 'mnist', limit: 64 }, ...extra,
  } as Partial<TrainConfig>
  await new Trainer(config).fit({ progress: false })
  return outDir
}

test('the shipped classifier classifies real MNIST test images with accuracy ≥ 97%', async (t) => {
  const { images, labels } = mnistTest(2000)
  const r = await evaluateImages(images)
  t.is(r.predictions.length, 2000)
  const accuracy = r.predictions.filter((p, i) => p === labels[i]).length / 2000
  t.true(accuracy >= 0.97, `accuracy ${accuracy}`)
  const { metadata } = await readSafetensors(CLASSIFIER_PATH)
  t.true(Number(metadata.testAccuracy) >= 0.97, metadata.testAccuracy) // on all 10 000, when it was trained
})

test('real images: FID small and far below noise, Inception Score > 8, every digit covered', async (t) => {
  const real = await evaluateImages(mnistTest(500).images)
  const noise = await evaluateImages({ data: Float32Array.from({ length: 500 * 784 }, (_, i) => Math.sin(i * 12.9898) % 1), shape: [500, 1, 28, 28] })
  const blank = await evaluateImages({ data: new Float32Array(500 * 784).fill(-1), shape: [500, 1, 28, 28] })
  t.log(`FID real ${real.fid.toFixed(2)}, noise ${noise.fid.toFixed(1)}, blank ${blank.fid.toFixed(1)}; IS real ${real.inceptionScore.toFixed(2)}`)
  t.true(real.fid < 50, `real FID ${real.fid}`)
  t.true(real.fid * 10 < noise.fid && real.fid * 10 < blank.fid)
  t.true(real.inceptionScore > 8, `IS ${real.inceptionScore}`)
  t.is(real.classesCovered, 10)
  t.is(real.classHistogram.reduce((a, b) => a + b, 0), 500)
  // All images alike: IS 1, one digit.
  t.true(Math.abs(blank.inceptionScore - 1) < 1e-9)
  t.is(blank.classesCovered, 1)
  // Real images at a model's size (resized as training data is) against that size's reference.
  const batch = await (await openDataset({ kind: 'mnist', split: 'test', shuffle: false }, { imageSize: 32, batchSize: 500 })).next()
  const at32 = await evaluateImages(batch)
  t.true(at32.fid < 50 && at32.inceptionScore > 8, `FID ${at32.fid}, IS ${at32.inceptionScore}`)
})

test('evaluating a checkpoint: deterministic for a seed, eval.json with the documented shape', async (t) => {
  const run = await tinyRun()
  const a = await evaluateCheckpoint(run, { samples: 200, seed: 3 })
  const b = await evaluateCheckpoint(listCheckpoints(run).at(-1)!.path, { samples: 200, seed: 3 })
  t.deepEqual(a, b)
  t.is(a.kind, 'mnist-classifier')
  t.is(a.step, 4)
  t.is(a.checkpoint, listCheckpoints(run).at(-1)!.path)
  for (const side of [a.generated, a.real]) {
    t.true(Number.isFinite(side.fid) && side.fid >= 0)
    t.true(side.inceptionScore! >= 1 && side.inceptionScore! <= 10)
    t.is(side.classHistogram!.length, 10)
    t.is(side.classHistogram!.reduce((x, y) => x + y, 0), 200)
  }
  t.true(a.generated.fid > a.real.fid, 'a 4-step generator is worse than real digits')
  const other = await evaluateCheckpoint(run, { samples: 200, seed: 4 })
  t.not(other.generated.fid, a.generated.fid)
  const stats1 = await evaluateCheckpoint(run, { samples: 200, seed: 3, batchStats: true })
  t.deepEqual(stats1, await evaluateCheckpoint(run, { samples: 200, seed: 3, batchStats: true }))
  t.not(stats1.generated.fid, a.generated.fid)

  t.is(runDirOf(a.checkpoint!), run)
  const path = writeEval(run, { ...a, extra: 1 } as EvalResult)
  t.is(path, join(run, 'eval.json'))
  const written = JSON.parse(readFileSync(path, 'utf8'))
  t.deepEqual(Object.keys(written), ['kind', 'samples', 'seed', 'generated', 'real', 'step', 'checkpoint'])
  t.deepEqual(Object.keys(written.generated), ['fid', 'inceptionScore', 'classHistogram', 'classesCovered'])
  t.deepEqual(written, a)
})

test('other datasets are measured on discriminator features, without class numbers', async (t) => {
  const gan = new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, device: 'cpu', seed: 1 })
  const dataset = { kind: 'idx' as const, path: mnistImagesPath('test'), limit: 400 }
  const r = await evaluate(gan, { samples: 150, seed: 0, dataset })
  t.is(r.kind, 'discriminator-features')
  t.deepEqual(Object.keys(r.generated), ['fid'])
  t.deepEqual(Object.keys(r.real), ['fid'])
  t.true(r.generated.fid > r.real.fid && r.real.fid >= 0)
  t.deepEqual(r, await evaluate(gan, { samples: 150, seed: 0, dataset }))
  const rgb = new DCGAN({ imageSize: 16, channels: 3, featuresG: 4, featuresD: 4, zDim: 16, device: 'cpu', seed: 1 })
  t.is((await evaluate(rgb, { samples: 50 })).kind, 'discriminator-features') // RGB on MNIST
  await t.throwsAsync(evaluate(gan, { samples: 201, dataset }), { message: /invalid samples: got 201; the reference and the real yardstick need 402 distinct real images but the dataset .* holds 400; use samples ≤ 200/ })
})

test('bad inputs give clear errors', async (t) => {
  const gan = new DCGAN({ imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, device: 'cpu', seed: 1 })
  await t.throwsAsync(evaluate(gan, { samples: 0 }), { message: 'invalid samples: got 0; allowed: an integer from 2 to 50000' })
  await t.throwsAsync(evaluate(gan, { samples: 2.5 }), { message: 'invalid samples: got 2.5; allowed: an integer from 2 to 50000' })
  await t.throwsAsync(evaluate(gan, { seed: -1 }), { message: 'invalid seed: got -1; allowed: an integer from 0 to 9007199254740991' })
  await t.throwsAsync(evaluate(gan, { samples: 10001 }), { message: /the real yardstick needs 10001 distinct real images but the dataset .*t10k-images-idx3-ubyte\) holds 10000; use samples ≤ 10000/ })
  await t.throwsAsync(evaluate({} as DCGAN), { code: ErrorCode.INVALID_INPUT, message: 'evaluate(gan, options) takes a DCGAN (new DCGAN(…) or await DCGAN.load(file))' })
  // MNIST comes with the package: a path given with it is refused, not silently dropped.
  await t.throwsAsync(evaluate(gan, { samples: 20, dataset: { kind: 'mnist', path: '/elsewhere' } }), {
    code: ErrorCode.INVALID_OPTION,
    message: "invalid dataset.path: the mnist dataset comes with the package and takes no path; use kind 'idx' for your own IDX file (dcgan eval --dataset idx)",
  })
  const dir = tmp()
  const garbage = join(dir, 'model.safetensors')
  writeFileSync(garbage, 'not a model at all')
  await t.throwsAsync(evaluateCheckpoint(garbage), { message: /model.safetensors: not a valid safetensors file/ })
  await t.throwsAsync(evaluateCheckpoint(CLASSIFIER_PATH), { message: /mnist-classifier.safetensors: has format 'dcgan-mnist-classifier\/1', this version reads 'dcgan\/1'/ })
  await t.throwsAsync(evaluateCheckpoint(join(dir, 'nothing')), { message: /nothing: no such file or folder/ })
  await t.throwsAsync(evaluateImages({ data: new Float32Array(2 * 3 * 16 * 16), shape: [2, 3, 16, 16] }), { message: /the MNIST classifier takes grayscale images \[n, 1, S, S\]/ })
  await t.throwsAsync(evaluateImages({ data: new Float32Array(2 * 20 * 20), shape: [2, 1, 20, 20] }), { message: /no reference statistics for 20×20 images; it has them for sides 16, 28, 32, 64, 128, 256/ })
  await t.throwsAsync(evaluateImages({ data: new Float32Array(784), shape: [1, 1, 28, 28] }), { message: 'invalid samples: got 1; allowed: an integer from 2 to 50000' })
  await t.throwsAsync(evaluateImages(mnistTest(2).images, { classifier: garbage }), { message: /not a valid safetensors file/ })
})

test('dcgan eval: a table, eval.json in the run folder, one-line errors', async (t) => {
  if (!existsSync(CLI)) return t.fail(`${CLI} is missing: build with npx tsc -p tsconfig.json`)
  const run = await tinyRun({ seed: 4 })
  const r = spawnSync(process.execPath, [CLI, 'eval', '--checkpoint', run, '--samples', '100', '--seed', '1'], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /generated\s+\d+\.\d+\s+\d+\.\d+\s+\d+\/10/)
  t.regex(r.stdout, /real\s+\d+\.\d+/)
  const written = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8'))
  t.like(written, { kind: 'mnist-classifier', samples: 100, seed: 1, step: 4, checkpoint: listCheckpoints(run).at(-1)!.path })
  t.deepEqual(written, await evaluateCheckpoint(run, { samples: 100, seed: 1 }))
  const bad = join(tmp(), 'x.safetensors')
  writeFileSync(bad, 'junk')
  for (const [args, message] of [
    [['eval', '--checkpoint', bad], /^dcgan: .*x.safetensors: not a valid safetensors file/],
    [['eval', '--checkpoint', run, '--samples', '0'], /^dcgan: invalid samples: got 0; allowed: an integer from 2 to 50000\n/],
    [['eval', '--checkpoint', run, '--samples', 'lots'], /'lots' is not an integer/],
    [['eval', '--checkpoint', run, '--samples', ''], /'' is not an integer/],
    // A run trained on MNIST takes no --data-path: refused, not ignored.
    [['eval', '--checkpoint', run, '--samples', '20', '--data-path', '/nonexistent'], /^dcgan: invalid dataset.path: the mnist dataset comes with the package and takes no path/],
    // Where the result goes is checked before the evaluation, not after it.
    [['eval', '--checkpoint', run, '--samples', '20', '--out', join(bad, 'dir', 'eval.json')], /^dcgan: .*x\.safetensors\/dir\/eval\.json: cannot be written \(.*x\.safetensors is not a folder\); give another --out\n$/],
    [['eval', '--checkpoint', run, '--samples', '20', '--out', run], /^dcgan: .*: cannot be written \(it is a folder: give a file name, e\.g\. eval\.json in it\); give another --out\n$/],
    // A checkpoint that is not there is named as such, not as an eval.json that cannot be written.
    [['eval', '--checkpoint', join(run, 'nope', 'checkpoints', 'step-00000001.safetensors'), '--samples', '20'], /^dcgan: .*step-00000001\.safetensors: no such file or folder/],
  ] as Array<[string[], RegExp]>) {
    const e = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
    t.is(e.status, 1, args.join(' '))
    t.regex(e.stderr, message)
    t.is(e.stdout, '', 'nothing was evaluated')
  }
  // --out writes the evaluation elsewhere (making its folder), and leaves the run's eval.json alone.
  const elsewhere = join(tmp(), 'new', 'mine.json')
  const before = readFileSync(join(run, 'eval.json'), 'utf8')
  const o = spawnSync(process.execPath, [CLI, 'eval', '--checkpoint', run, '--samples', '20', '--out', elsewhere], { encoding: 'utf8' })
  t.is(o.status, 0, o.stderr)
  t.like(JSON.parse(readFileSync(elsewhere, 'utf8')), { samples: 20, seed: 0, step: 4 })
  t.is(readFileSync(join(run, 'eval.json'), 'utf8'), before)
  t.deepEqual(readdirSync(dirname(elsewhere)), ['mine.json'], 'the write test left nothing behind')
})

test("a run whose image folder moved: the error says where the run trained and how to point at the images now", async (t) => {
  const images = tmp()
  for (let i = 0; i < 12; i++) await saveImageGrid({ data: new Float32Array(256).fill(i / 12 - 0.5), shape: [1, 1, 16, 16] }, join(images, `${i}.png`), { nrow: 1, padding: 0 })
  const run = await tinyRun({ dataset: { kind: 'folder', path: images } })
  const moved = `${images}-moved`
  renameSync(images, moved)
  await t.throwsAsync(evaluateCheckpoint(run, { samples: 4 }), {
    code: ErrorCode.FILE,
    message: new RegExp(`is not a folder; the run trained on "${images}": if its images moved, say where they are now with dcgan eval --data-path PATH \\(evaluateCheckpoint\\(run, \\{ dataset \\}\\)\\)$`),
  })
  const r = await evaluateCheckpoint(run, { samples: 4, dataset: { kind: 'folder', path: moved } })
  t.is(r.kind, 'discriminator-features')
  // Images in place but one unreadable: that error alone, no word of moving.
  renameSync(moved, images)
  writeFileSync(join(images, '0.png'), 'not a png')
  const e = await t.throwsAsync(evaluateCheckpoint(run, { samples: 4 }), { code: ErrorCode.FILE, message: /0\.png: cannot decode image/ })
  t.false(e!.message.includes('moved'), e!.message)
})
