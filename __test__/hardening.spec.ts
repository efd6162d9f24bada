// Hostile and careless inputs: each gets an error naming the input and what is allowed, never an
// abort, a hang or a silent wrong result. docs/RELIABILITY.md lists which test holds which case.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, symlinkSync, writeFileSync, ftruncateSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32, deflateSync, gzipSync } from 'node:zlib'
import { DCGAN, ErrorCode, IterableDataset, Trainer, listCheckpoints, liveModelCount, openDataset, readCheckpointInfo, readOnnxInfo, saveImageGrid, saveImages, type TrainConfig } from '../src/index'
import { FIXTURES } from './helpers'

// A limit far below this machine's memory, so that "too large" does not depend on the machine.
// (ava runs each file in a process of its own; the core reads the variable at each check.)
process.env.DCGAN_MEMORY_LIMIT = '2G'
const LIMIT = /more than the memory limit of 2\.0 GiB \(DCGAN_MEMORY_LIMIT\)/

const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-hard-'))
const tiny = { imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, device: 'cpu' as const, seed: 1 }
const idxHeader = (count: number, rows: number, cols: number) => {
  const b = Buffer.alloc(16)
  b.writeUInt32BE(0x803, 0)
  b.writeUInt32BE(count, 4)
  b.writeUInt32BE(rows, 8)
  b.writeUInt32BE(cols, 12)
  return b
}
/** A safetensors file with no tensors and the given metadata. */
const safetensorsWith = (metadata: Record<string, string>) => {
  const header = Buffer.from(JSON.stringify({ __metadata__: metadata }))
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(header.length))
  return Buffer.concat([len, header])
}
const rssMiB = () => Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096 / 2 ** 20

test('a model valid field by field but too large to hold is refused before anything is allocated', (t) => {
  const e = t.throws(() => new DCGAN({ featuresG: 1024, featuresD: 1024, imageSize: 128 }), { code: ErrorCode.INVALID_OPTION })
  t.regex(e!.message, /^invalid featuresG\/featuresD\/imageSize: a model of featuresG 1024, featuresD 1024 at imageSize 128 \(1\.431e10 parameters\) needs about \d+\.\d GiB/)
  t.regex(e!.message, LIMIT)
  t.throws(() => new Trainer({ featuresG: 1024, featuresD: 1024, imageSize: 128 }), { code: ErrorCode.INVALID_OPTION, message: LIMIT })
})

test('a training batch too large for memory is refused by the config and by openDataset', async (t) => {
  t.throws(() => new Trainer({ ...tiny, imageSize: 256, channels: 3, batchSize: 65536 } as Partial<TrainConfig>), { code: ErrorCode.INVALID_OPTION, message: /^invalid batchSize: training batches of 65536 at imageSize 256 .* needs about/ })
  await t.throwsAsync(openDataset({ kind: 'mnist' }, { imageSize: 256, channels: 3, batchSize: 50000 }), {
    code: ErrorCode.INVALID_OPTION, message: /^invalid batchSize: an epoch's order of 60000 images with 6 batches of 50000 images at 256×256 prepared ahead needs about 219\.7 GiB, more than the memory limit/,
  })
})

test('a checkpoint whose header declares a huge model is refused before its tensors are read', async (t) => {
  const file = join(tmp(), 'huge.safetensors')
  writeFileSync(file, safetensorsWith({ format: 'dcgan/1', model: JSON.stringify({ featuresG: 1024, featuresD: 1024, imageSize: 256 }), train: '{}', steps: '0' }))
  await t.throwsAsync(DCGAN.load(file), { code: ErrorCode.FILE, message: new RegExp(`^${file}: declares a model that cannot be built: invalid featuresG/featuresD/imageSize: .*${LIMIT.source}`) })
})

test('an IDX header that announces more than memory or the file holds is refused (sparse files)', async (t) => {
  const dir = tmp()
  const huge = join(dir, 'huge-images.idx') // 65535×65535 images: 4 GiB each, in a sparse file
  writeFileSync(huge, idxHeader(2, 65535, 65535))
  let fd = openSync(huge, 'r+')
  ftruncateSync(fd, 16 + 2 * 65535 * 65535)
  closeSync(fd)
  await t.throwsAsync(openDataset({ kind: 'idx', path: huge }, { imageSize: 32, batchSize: 1 }), { code: ErrorCode.FILE, message: /huge-images\.idx: announces images of 65535×65535 \(4\.0 GiB\), more than the 512\.0 MiB one image may have/ })
  const many = join(dir, 'many-images.idx') // 2^31 images of 28×28 in a sparse 1.6 TB file: the epoch order alone is 8 GiB
  writeFileSync(many, idxHeader(2 ** 31, 28, 28))
  fd = openSync(many, 'r+')
  try {
    ftruncateSync(fd, 16 + 2 ** 31 * 784)
  } finally {
    closeSync(fd)
  }
  await t.throwsAsync(openDataset({ kind: 'idx', path: many }, { imageSize: 28, batchSize: 4 }), { code: ErrorCode.INVALID_OPTION, message: LIMIT })
})

test('a .gz IDX file is inflated as a stream: bounded memory, and no further than its header announces', async (t) => {
  const dir = tmp()
  const n = 100_000 // 78 MB inflated, a few hundred kB compressed
  const file = join(dir, 'zeros-idx3-ubyte.gz')
  writeFileSync(file, gzipSync(Buffer.concat([idxHeader(n, 28, 28), Buffer.alloc(n * 784)])))
  ;(globalThis as { gc?: () => void }).gc?.()
  const before = rssMiB()
  const data = await openDataset({ kind: 'idx', path: file, prefetch: 1 }, { imageSize: 28, batchSize: 2 })
  t.is(data.length, n)
  const b = await data.next()
  t.true(b.data.every((v) => v === -1))
  t.true(rssMiB() - before < 40, `resident memory grew by ${(rssMiB() - before).toFixed(0)} MiB opening a 78 MB stream`)
  // A gzip bomb: the stream holds far more than the header's 3 images; only those are inflated.
  const bomb = join(dir, 'bomb.gz')
  writeFileSync(bomb, gzipSync(Buffer.concat([idxHeader(3, 4, 4), Buffer.alloc(50 << 20)])))
  t.is((await openDataset({ kind: 'idx', path: bomb }, { imageSize: 16, batchSize: 1 })).length, 3)
  const claims = join(dir, 'claims.gz') // 2^32 − 1 images of 8192×8192: more than any disk holds
  writeFileSync(claims, gzipSync(idxHeader(2 ** 32 - 1, 8192, 8192)))
  await t.throwsAsync(openDataset({ kind: 'idx', path: claims }, { imageSize: 16, batchSize: 1 }), { code: ErrorCode.FILE, message: /claims\.gz: inflates to .* TiB \(as its header announces\), but .* has .* free, of which .* stays free; set TMPDIR to a larger disk, or unpack the file \(gunzip\)/ })
  const short = join(dir, 'short.gz')
  writeFileSync(short, gzipSync(Buffer.concat([idxHeader(10, 4, 4), Buffer.alloc(100)])))
  await t.throwsAsync(openDataset({ kind: 'idx', path: short }, { imageSize: 16, batchSize: 1 }), { code: ErrorCode.FILE, message: /short\.gz: truncated: the header announces 176 bytes but the file inflates to 116/ })
})

test('output folders that cannot be made fail at once, also under /proc (where Node\'s recursive mkdir spins)', async (t) => {
  const trainer = new Trainer({ ...tiny, outDir: '/proc/dcgan-x/run', steps: 1, batchSize: 4, dataset: { kind: 'mnist', limit: 8 } } as Partial<TrainConfig>)
  await t.throwsAsync(trainer.fit({ progress: false }), { code: ErrorCode.FILE, message: /^\/proc\/dcgan-x: cannot create the folder \(ENOENT/ })
  const gan = await DCGAN.create(tiny)
  const images = await gan.generate(2, { seed: 1 })
  await t.throwsAsync(saveImages(images, '/proc/dcgan-x'), { code: ErrorCode.FILE, message: /^\/proc\/dcgan-x: cannot create the folder/ })
  await t.throwsAsync(saveImageGrid(images, '/proc/dcgan-x/grid.png'), { code: ErrorCode.FILE, message: /^\/proc\/dcgan-x: cannot create the folder/ })
  await t.throwsAsync(gan.save('/proc/dcgan-x/model.safetensors'), { code: ErrorCode.FILE })
  const cli = execFileSync('sh', ['-c', `node ${join(__dirname, '..', 'dist', 'cli.js')} train --image-size 16 --features-g 4 --features-d 4 --steps 1 --batch-size 4 --limit 8 --out /proc/dcgan-x 2>&1; echo "exit $?"`], { encoding: 'utf8', timeout: 60_000 })
  t.regex(cli, /^dcgan: \/proc\/dcgan-x: cannot create the folder \(ENOENT[^\n]*\nexit 1\n$/m)
})

test('an image folder with symlink loops lists each image once and ends', async (t) => {
  const root = tmp()
  mkdirSync(join(root, 'a', 'b'), { recursive: true })
  copyFileSync(join(FIXTURES, 'pipeline', 'png', 'c-rgb-20x20.png'), join(root, 'a', 'one.png'))
  copyFileSync(join(FIXTURES, 'pipeline', 'png', 'c-rgb-20x20.png'), join(root, 'a', 'b', 'two.png'))
  symlinkSync('..', join(root, 'a', 'b', 'up')) // a loop
  symlinkSync(root, join(root, 'a', 'b', 'root')) // a second, through the top
  symlinkSync(join(root, 'a'), join(root, 'again')) // the same folder under a second name
  symlinkSync(join(root, 'missing'), join(root, 'dangling.png'))
  const data = await openDataset({ kind: 'folder', path: root }, { imageSize: 16, batchSize: 1 })
  t.is(data.length, 2)
})

test('FIFOs and devices are never read: not in an image folder, not as checkpoints', async (t) => {
  const root = tmp()
  copyFileSync(join(FIXTURES, 'pipeline', 'png', 'c-rgb-20x20.png'), join(root, 'real.png'))
  execFileSync('mkfifo', [join(root, 'x.png')])
  const data = await openDataset({ kind: 'folder', path: root }, { imageSize: 16, batchSize: 1, channels: 3 })
  t.is(data.length, 1)
  await data.next()
  await t.throwsAsync(DCGAN.load(join(root, 'x.png')), { code: ErrorCode.FILE, message: /x\.png: is a FIFO \(named pipe\); only regular files are read/ })
  await t.throwsAsync(DCGAN.load('/dev/zero'), { code: ErrorCode.FILE, message: /^\/dev\/zero: is a device; only regular files are read/ })
  await t.throwsAsync(Trainer.resume('/dev/zero'), { code: ErrorCode.FILE, message: /^\/dev\/zero: is neither a checkpoint file nor a run folder/ })
  await t.throwsAsync(openDataset({ kind: 'idx', path: join(root, 'x.png') }, { imageSize: 16, batchSize: 1 }), { code: ErrorCode.FILE, message: /is a FIFO/ })
  await t.throwsAsync(openDataset({ kind: 'cifar10', path: '/dev/zero' }, { imageSize: 16, batchSize: 1 }), { code: ErrorCode.FILE, message: /is a device/ })
  await t.throwsAsync(readOnnxInfo(join(root, 'x.png')), { code: ErrorCode.FILE, message: /x\.png: is a FIFO \(named pipe\); only regular files are read/ })
  await t.throwsAsync(readOnnxInfo('/dev/zero'), { code: ErrorCode.FILE, message: /^\/dev\/zero: is a device/ })
})

test.serial('an ONNX file that would decode to far more than its size is refused before decoding', async (t) => {
  const varint = (v: number) => {
    const out: number[] = []
    for (; v > 127; v = Math.floor(v / 128)) out.push((v % 128) | 128)
    return Buffer.from([...out, v])
  }
  const message = (field: number, payload: Buffer) => Buffer.concat([varint(field * 8 + 2), varint(payload.length), payload])
  // 10 million empty nodes (GraphProto.node, field 1) in 20 MB: decoded, about 1.6 GB of structs.
  const nodes = Buffer.alloc(20_000_000)
  for (let i = 0; i < nodes.length; i += 2) nodes[i] = 0x0a
  const path = join(tmp(), 'bomb.onnx')
  writeFileSync(path, message(7, nodes)) // ModelProto.graph
  const before = rssMiB()
  await t.throwsAsync(readOnnxInfo(path), { code: ErrorCode.FILE, message: /bomb\.onnx: not an ONNX model written by dcgan: more than 200000 fields and list entries/ })
  t.true(rssMiB() - before < 300, `resident memory grew by ${rssMiB() - before} MiB`)
})

test('images in a folder decode within the memory limit shared among the loader threads', async (t) => {
  // A black gray PNG of 12000² pixels: 140 kB on disk, 137 MiB decoded.
  const side = 12000
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(side, 0)
  header.writeUInt32BE(side, 4)
  header[8] = 8 // bit depth; colour type 0 (gray), no interlace
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.alloc(side * (side + 1)))), chunk('IEND', Buffer.alloc(0))])
  const root = tmp()
  for (let i = 0; i < 8; i++) writeFileSync(join(root, `big-${i}.png`), png)
  // 8 threads under DCGAN_MEMORY_LIMIT = 2G: about 128 MiB for each decode (allocations counted twice).
  const data = await openDataset({ kind: 'folder', path: root, workers: 8 }, { imageSize: 16, batchSize: 8, channels: 1 })
  const e = await t.throwsAsync(data.next(), { code: ErrorCode.FILE })
  t.regex(e!.message, /big-\d\.png: cannot decode image: it needs more than the 12\d\.\d MiB one image may take here \(the memory limit shared among the loader's threads/)
})

test('an image grid larger than memory or a PNG is refused, not allocated', async (t) => {
  const images = { data: new Float32Array(4e6), shape: [4e6, 1, 1, 1] }
  const dir = tmp()
  // 2000 × 2000 cells of 65 pixels: 16.9 GB of pixels for 16 MB of input.
  await t.throwsAsync(saveImageGrid(images, join(dir, 'g.png'), { nrow: 2000, padding: 64 }), { message: /a grid of 130064×130064 pixels needs about 15\.8 GiB, more than the memory limit of 2\.0 GiB/ })
})

test('trainer.checkpoint() while fit() runs saves the state of one step boundary', async (t) => {
  const outDir = tmp()
  const batch = { data: new Float32Array(4 * 256).fill(0.5), shape: [4, 1, 16, 16] }
  const trainer = new Trainer({ ...tiny, outDir, steps: 12, batchSize: 4, sampleEvery: 0, checkpointEvery: 1000, keepCheckpoints: 100 } as Partial<TrainConfig>)
  let done = false
  const fit = trainer.fit({ dataset: new IterableDataset(() => [batch, batch, batch]), progress: false }).finally(() => (done = true))
  let taken = 0
  while (!done) {
    const file = await trainer.checkpoint()
    const info = readCheckpointInfo(file)
    t.is(info.steps, info.trainer!.step, `${file}: weights of step ${info.steps} stored with the trainer state of step ${info.trainer!.step}`)
    taken++
  }
  await fit
  t.true(taken >= 2)
  t.is(listCheckpoints(outDir).at(-1)!.step, 12)
})

/** A copy of a checkpoint with its header edited (offsets stay valid: only names, dtypes of the same width and shapes of the same size change). */
function editCheckpoint(file: string, edit: (header: Record<string, { dtype: string; shape: number[] }>) => void): string {
  const bytes = readFileSync(file)
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'))
  edit(header)
  // As a file from another writer, without dcgan's checksum (which would refuse any edit first).
  delete header.__metadata__['dcgan.checksum']
  const text = Buffer.from(JSON.stringify(header))
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(text.length))
  const out = join(tmp(), 'edited.safetensors')
  writeFileSync(out, Buffer.concat([len, text, bytes.subarray(8 + n)]))
  return out
}

test('loading a checkpoint checks every tensor and names the tensor and the file', async (t) => {
  const gan = await DCGAN.create(tiny)
  const file = join(tmp(), 'model.safetensors')
  await gan.save(file)
  const rename = (from: string, to: string) => (h: Record<string, { dtype: string; shape: number[] }>) => {
    h[to] = h[from]
    delete h[from]
  }
  const cases: Array<[(h: Record<string, { dtype: string; shape: number[] }>) => void, RegExp]> = [
    [(h) => (h['gen.0.1.weight'].dtype = 'I32'), /tensor 'gen\.0\.1\.weight' has dtype Int; expected Float/],
    [(h) => (h['optim.gen.exp_avg.gen.0.0.weight'].shape = [...h['optim.gen.exp_avg.gen.0.0.weight'].shape].reverse()), /tensor 'optim\.gen\.exp_avg\.gen\.0\.0\.weight' has shape \[4, 4, 16, 8\]; expected \[8, 16, 4, 4\] for the model its header declares/],
    [rename('optim.disc.exp_avg_sq.disc.0.weight', 'other'), /lacks tensor 'optim\.disc\.exp_avg_sq\.disc\.0\.weight'/],
    [(h) => (h['disc.2.1.num_batches_tracked'].dtype = 'F64'), /tensor 'disc\.2\.1\.num_batches_tracked' has dtype Double; expected Int64/],
  ]
  for (const [edit, message] of cases) {
    const bad = editCheckpoint(file, edit)
    await t.throwsAsync(DCGAN.load(bad), { code: ErrorCode.FILE, message: new RegExp(`^${bad}: ${message.source}`) })
  }
  // With its checksum, any change to a tensor's header or bytes is refused as damage.
  const bytes = readFileSync(file)
  bytes[bytes.length - 1] ^= 1
  const damaged = join(tmp(), 'damaged.safetensors')
  writeFileSync(damaged, bytes)
  await t.throwsAsync(DCGAN.load(damaged), { code: ErrorCode.FILE, message: /damaged\.safetensors: the tensors do not match the checksum they were saved with \(crc32:[0-9a-f]{8}, saved crc32:[0-9a-f]{8}\)/ })
})

test('a real batch far outside [−1, 1] is refused, naming the value', async (t) => {
  const gan = await DCGAN.create(tiny)
  const bytes = new Float32Array(4 * 256).fill(0.5)
  bytes[7] = 255
  await t.throwsAsync(gan.trainStep({ data: bytes, shape: [4, 1, 16, 16] }), {
    code: ErrorCode.INVALID_INPUT, message: 'the real batch: value 7 is 255; images must be scaled to [−1, 1] (values beyond ±1.5 are refused), as (x / 255 − 0.5) / 0.5 does for bytes',
  })
  const edge = new Float32Array(4 * 256).fill(-1.5)
  await t.notThrowsAsync(gan.trainStep({ data: edge, shape: [4, 1, 16, 16] }))
})

test('wrong argument types get errors that name the argument', async (t) => {
  t.throws(() => new DCGAN(null as never), { instanceOf: TypeError, message: 'DCGAN options must be an object, got null' })
  t.throws(() => new Trainer(null as never), { instanceOf: TypeError, message: 'the training config must be an object, got null' })
  t.throws(() => new DCGAN({ seed: 10n } as never), { message: 'invalid seed: got the BigInt 10n; allowed: a number' })
  t.throws(() => new DCGAN({ imageSize: '32' } as never), { code: ErrorCode.INVALID_OPTION, message: /^invalid imageSize: got '32'/ })
  const gan = await DCGAN.create(tiny)
  const data = new Float32Array(2 * 256)
  await t.throwsAsync(gan.trainStep(null as never), { code: ErrorCode.INVALID_INPUT, message: 'real must be an object { data, shape }, got null' })
  await t.throwsAsync(gan.trainStep({ data } as never), { code: ErrorCode.INVALID_INPUT, message: 'real.shape must be an array of integers (e.g. [n, C, S, S]), got undefined' })
  await t.throwsAsync(gan.trainStep({ data, shape: ['2', 1, 16, 16] } as never), { code: ErrorCode.INVALID_INPUT, message: "real.shape[0] must be an integer ≥ 0, got the string '2'" })
  await t.throwsAsync(gan.trainStep({ data, shape: [2, 1, 16, 16.5] }), { code: ErrorCode.INVALID_INPUT, message: 'real.shape[3] must be an integer ≥ 0, got 16.5' })
  await t.throwsAsync(gan.generate(2, { seed: 10n as never }), { code: ErrorCode.INVALID_OPTION, message: 'invalid seed: got the BigInt 10n; allowed: a number' })
  await t.throwsAsync(gan.generate('2' as never), { code: ErrorCode.INVALID_OPTION, message: "invalid n: got the string '2'; allowed: a number" })
  await t.throwsAsync(gan.discriminate({ data, shape: 'x' } as never), { code: ErrorCode.INVALID_INPUT, message: "images.shape must be an array of integers (e.g. [n, C, S, S]), got the string 'x'" })
  await t.throwsAsync(saveImageGrid({ data, shape: [2, 1, 16, 16] }, join(tmp(), 'g.png'), { nrow: 2n as never }), { code: ErrorCode.INVALID_OPTION, message: 'invalid nrow: got the BigInt 2n; allowed: a number' })
})

test('a bad DCGAN_MEMORY_LIMIT is named', async (t) => {
  const out = execFileSync('node', ['-e', `const d=require(${JSON.stringify(join(__dirname, '..', 'dist'))});try{new d.DCGAN({})}catch(e){console.log(e.code, e.message)}`], {
    encoding: 'utf8', env: { ...process.env, DCGAN_MEMORY_LIMIT: 'lots' },
  })
  t.is(out.trim(), "ERR_DCGAN_INVALID_OPTION invalid DCGAN_MEMORY_LIMIT: got 'lots'; allowed: a number of bytes, optionally with a unit K, M, G or T (e.g. 8G)")
})


test.serial('dispose() frees a model at once, garbage collection frees the rest: the live-model count returns', async (t) => {
  const gc = (globalThis as { gc?: () => void }).gc
  t.truthy(gc, 'ava runs with --expose-gc (package.json)')
  const base = liveModelCount()
  let gans: DCGAN[] | null = await Promise.all([1, 2, 3].map(() => DCGAN.create(tiny)))
  t.is(liveModelCount(), base + 3)
  await gans[0].dispose()
  t.is(liveModelCount(), base + 2)
  await t.throwsAsync(gans[0].generate(1), { code: ErrorCode.INVALID_INPUT, message: 'the model was disposed (dispose()); load or create another' })
  gans = null
  for (let i = 0; i < 50 && liveModelCount() > base; i++) {
    gc!()
    await new Promise((r) => setTimeout(r, 20))
  }
  t.is(liveModelCount(), base, 'models dropped by JavaScript were not freed')
})
