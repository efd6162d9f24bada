// Faults around a run: a full disk, a read-only folder, data that changes under the loader,
// SIGKILL and SIGINT. Each leaves the previous checkpoint loadable and the run resumable.
import test from 'ava'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { gzipSync } from 'node:zlib'
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, ErrorCode, Trainer, listCheckpoints, openDataset, type TrainConfig } from '../src/index'
import { FIXTURES, testNeeding } from './helpers'

const ROOT = join(__dirname, '..')
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-fault-'))
const tiny = (outDir: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> => ({
  imageSize: 16, featuresG: 4, featuresD: 4, zDim: 8, batchSize: 8, device: 'cpu', seed: 2, outDir,
  sampleEvery: 0, checkpointEvery: 2, dataset: { kind: 'mnist', limit: 64 }, ...extra,
} as Partial<TrainConfig>)

/** A tmpfs of `size` at a new folder (root only), unmounted by the returned function. */
function mountTmpfs(size: string): { dir: string; remount: (opts: string) => void; unmount: () => void } {
  const dir = tmp()
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
  return { dir, remount: (o) => execFileSync('mount', ['-o', `remount,${o}`, dir]), unmount: () => execFileSync('umount', ['-l', dir]) }
}
const canMount = (() => {
  try {
    mountTmpfs('64k').unmount()
    return true
  } catch {
    return false
  }
})()
const mounting = { met: canMount, reason: 'mounting a tmpfs needs root (mount -t tmpfs)', required: false }

/** Fills the file system of `dir` to the last block. */
function fill(dir: string): void {
  const chunk = Buffer.alloc(4096, 1)
  for (let i = 0; ; i++) {
    try {
      appendFileSync(join(dir, `filler-${Math.floor(i / 256)}`), chunk)
    } catch {
      return
    }
  }
}

testNeeding('a full disk while checkpointing fails that step naming the file; the previous checkpoint resumes once there is room', mounting, async (t) => {
  const disk = mountTmpfs('4m')
  try {
    const run = join(disk.dir, 'run')
    await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
    writeFileSync(join(disk.dir, 'reserve'), Buffer.alloc(4 * 4096)) // room for the lock, config and metrics, not a checkpoint
    fill(disk.dir)
    rmSync(join(disk.dir, 'reserve'))
    const resumed = await Trainer.resume(run, { steps: 4 })
    await t.throwsAsync(resumed.fit({ progress: false }), { code: ErrorCode.FILE, message: /checkpoints\/step-00000004\.safetensors: cannot write: No space left on device/ })
    t.deepEqual(listCheckpoints(run).map((c) => c.step), [2])
    t.deepEqual(readdirSync(join(run, 'checkpoints')), ['step-00000002.safetensors'], 'the failed write left a temporary file')
    t.true(await (await DCGAN.load(listCheckpoints(run)[0].path)).allFinite())
    for (const f of readdirSync(disk.dir)) if (f.startsWith('filler')) rmSync(join(disk.dir, f))
    const again = await Trainer.resume(run, { steps: 4 })
    t.is((await again.fit({ progress: false })).steps, 4)
  } finally {
    disk.unmount()
  }
})

testNeeding('a read-only run folder fails at the start naming the folder; the checkpoint still loads, and resumes once writable', mounting, async (t) => {
  const disk = mountTmpfs('4m')
  try {
    const run = join(disk.dir, 'run')
    await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
    disk.remount('ro')
    const resumed = await Trainer.resume(run, { steps: 4 })
    await t.throwsAsync(resumed.fit({ progress: false }), { code: ErrorCode.FILE, message: new RegExp(`^${run}/\\.lock: cannot take the run folder's lock \\(EROFS: read-only file system`) })
    t.true(await (await DCGAN.load(listCheckpoints(run)[0].path)).allFinite())
    disk.remount('rw')
    t.is((await (await Trainer.resume(run, { steps: 4 })).fit({ progress: false })).steps, 4)
  } finally {
    disk.unmount()
  }
})

/** An IDX file of `n` 8×8 images. */
function idxFile(n: number): string {
  const header = Buffer.alloc(16)
  header.writeUInt32BE(0x803, 0)
  header.writeUInt32BE(n, 4)
  header.writeUInt32BE(8, 8)
  header.writeUInt32BE(8, 12)
  const file = join(tmp(), 'images.idx')
  writeFileSync(file, Buffer.concat([header, Buffer.alloc(n * 64, 128)]))
  return file
}

test('an IDX file truncated mid-epoch fails the next batch naming the file; one removed mid-epoch is still read', async (t) => {
  const file = idxFile(64)
  const data = await openDataset({ kind: 'idx', path: file, prefetch: 1, shuffle: false }, { imageSize: 16, batchSize: 8 })
  await data.next()
  truncateSync(file, 16 + 8 * 64)
  const e = await t.throwsAsync(async () => {
    for (let i = 0; i < 16; i++) await data.next()
  }, { code: ErrorCode.FILE })
  t.regex(e!.message, new RegExp(`^${file}: cannot read image \\d+: the file was truncated after it was opened$`))
  const removed = idxFile(64)
  const open = await openDataset({ kind: 'idx', path: removed, prefetch: 1 }, { imageSize: 16, batchSize: 8 })
  unlinkSync(removed)
  for (let i = 0; i < 12; i++) t.is((await open.next()).shape[0], 8) // the open file lives on: the epoch completes
})

test('images removed from a folder mid-epoch fail the next batch naming the image', async (t) => {
  const root = tmp()
  for (let i = 0; i < 8; i++) copyFileSync(join(FIXTURES, 'pipeline', 'png', 'c-rgb-20x20.png'), join(root, `${i}.png`))
  const data = await openDataset({ kind: 'folder', path: root, prefetch: 1, shuffle: false }, { imageSize: 16, batchSize: 2 })
  await data.next()
  for (let i = 0; i < 8; i++) rmSync(join(root, `${i}.png`))
  await t.throwsAsync(async () => {
    for (let i = 0; i < 8; i++) await data.next()
  }, { code: ErrorCode.FILE, message: new RegExp(`^${root}/\\d\\.png: cannot open: No such file or directory`) })
})

test('SIGKILL mid-step and mid-save, 3 rounds: the newest checkpoint loads and the run resumes with every step logged once', (t) => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'kill-rounds.mjs'), '3', '--seed', '7'], { encoding: 'utf8', timeout: 240_000 })
  t.is(r.status, 0, r.stderr)
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
  t.like(result, { rounds: 3, killed: 3, metricsInOrder: true, leftoverTemporaryFiles: 0 })
  t.true(result.lastCheckpointStep >= 3)
})

test('SIGINT finishes the step, writes a checkpoint and exits 0; the run resumes from it', async (t) => {
  const run = join(tmp(), 'run')
  const cli = join(ROOT, 'dist', 'cli.js')
  const flags = ['--image-size', '16', '--features-g', '4', '--features-d', '4', '--z-dim', '8', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--sample-every', '0']
  const p = spawn(process.execPath, [cli, 'train', ...flags, '--steps', '100000', '--checkpoint-every', '100000', '--out', run], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  const exited = new Promise<number | null>((resolve) => p.on('close', resolve))
  await new Promise<void>((resolve) => p.stderr.on('data', (d) => {
    stderr += d
    if (/step 1\//.test(stderr)) resolve()
  }))
  p.kill('SIGINT')
  t.is(await exited, 0, stderr)
  const m = /aborted after (\d+) steps/.exec(stderr)
  t.truthy(m, stderr)
  const steps = Number(m![1])
  t.deepEqual(listCheckpoints(run).map((c) => c.step), [steps])
  const resumed = spawnSync(process.execPath, [cli, 'train', '--resume', run, '--steps', String(steps + 2)], { encoding: 'utf8' })
  t.is(resumed.status, 0, resumed.stderr)
  t.deepEqual(listCheckpoints(run).map((c) => c.step).at(-1), steps + 2)
})


/** Opens an IDX file in a child process whose TMPDIR is `tmpdir` (and `env`); the error it gets. */
function openIdxWith(path: string, env: Record<string, string>): { code?: string; message?: string; length?: number } {
  const script = `require(${JSON.stringify(join(ROOT, 'dist', 'index.js'))}).openDataset({ kind: 'idx', path: ${JSON.stringify(path)} }, { imageSize: 8, batchSize: 1 })
    .then((d) => console.log(JSON.stringify({ length: d.length })), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env } })
  return JSON.parse(r.stdout)
}

testNeeding('a .gz IDX inflates into TMPDIR only when a twentieth of it stays free, and into a tmpfs only within the memory limit', mounting, (t) => {
  const disk = mountTmpfs('20m')
  try {
    const idx = (count: number) => {
      const header = Buffer.alloc(16)
      header.writeUInt32BE(0x803, 0)
      header.writeUInt32BE(count, 4)
      header.writeUInt32BE(1024, 8)
      header.writeUInt32BE(1024, 12)
      const path = join(tmp(), `${count}-idx3-ubyte.gz`)
      writeFileSync(path, gzipSync(Buffer.concat([header, Buffer.alloc(count << 20)])))
      return path
    }
    const fits = idx(16) // 16 MiB of 20: 4 MiB stay free
    t.deepEqual(openIdxWith(fits, { TMPDIR: disk.dir }), { length: 16 })
    t.deepEqual(readdirSync(disk.dir), [], 'the inflated copy is unlinked')
    const tooBig = openIdxWith(idx(19), { TMPDIR: disk.dir }) // would leave 1 MiB of 20
    t.is(tooBig.code, ErrorCode.FILE)
    t.regex(tooBig.message!, /19-idx3-ubyte\.gz: inflates to 19\.0 MiB \(as its header announces\), but .* has 20\.0 MiB free, of which 1\.0 MiB stays free; set TMPDIR to a larger disk, or unpack the file \(gunzip\) and give the \.idx file$/)
    const inMemory = openIdxWith(fits, { TMPDIR: disk.dir, DCGAN_MEMORY_LIMIT: '8M' })
    t.is(inMemory.code, ErrorCode.FILE)
    t.regex(inMemory.message!, /16-idx3-ubyte\.gz: inflating it into .*, a file system in memory \(tmpfs\), needs about 16\.0 MiB, more than the memory limit of 8\.0 MiB \(DCGAN_MEMORY_LIMIT\); set TMPDIR to a folder on disk, or unpack the file \(gunzip\)$/)
  } finally {
    disk.unmount()
  }
})
