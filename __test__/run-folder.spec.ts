// The run folder belongs to the run: paths stored in a checkpoint are not followed, one trainer
// writes at a time, a resumed run logs each step once, and resuming changes only what can change.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, ErrorCode, IterableDataset, Trainer, evaluateCheckpoint, listCheckpoints, readCheckpointInfo, readSafetensors, saveImageGrid, type TrainConfig } from '../src/index'

const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-run-'))
const tiny = (outDir: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> => ({
  imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, batchSize: 16, device: 'cpu', seed: 3, outDir,
  sampleEvery: 0, checkpointEvery: 2, dataset: { kind: 'mnist', limit: 100 }, ...extra,
} as Partial<TrainConfig>)
const steps = (runDir: string) => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)

test('a resumed run writes where its checkpoint lies, not where the checkpoint says', async (t) => {
  const original = join(tmp(), 'run')
  await new Trainer(tiny(original, { steps: 2 })).fit({ progress: false })
  const copy = join(tmp(), 'copy')
  cpSync(original, copy, { recursive: true })
  const resumed = await Trainer.resume(copy, { steps: 4 })
  t.is(resumed.config.outDir, copy)
  await resumed.fit({ progress: false })
  t.deepEqual(listCheckpoints(copy).map((c) => c.step), [2, 4])
  t.deepEqual(listCheckpoints(original).map((c) => c.step), [2], 'the folder named inside the checkpoint was written to')
  t.deepEqual(steps(original), [1, 2])
})

test('a checkpoint outside a run folder needs an outDir to resume', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
  const loose = join(tmp(), 'loose.safetensors')
  cpSync(listCheckpoints(run)[0].path, loose)
  await t.throwsAsync(Trainer.resume(loose, { steps: 3 }), { code: ErrorCode.INVALID_OPTION, message: /is not in a run folder's checkpoints\/; say where the resumed run goes with outDir/ })
  const elsewhere = tmp()
  t.is((await Trainer.resume(loose, { steps: 3, outDir: elsewhere })).config.outDir, elsewhere)
})

test('after a kill, a resumed run logs every step once', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 3 })).fit({ progress: false })
  // As if killed after step 3 was logged but before its checkpoint was written.
  rmSync(listCheckpoints(run).at(-1)!.path)
  t.deepEqual(steps(run), [1, 2, 3])
  await (await Trainer.resume(run, { steps: 4 })).fit({ progress: false })
  t.deepEqual(steps(run), [1, 2, 3, 4])
})

test('resuming may change the optimiser, which takes effect; not the model, seed or data', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
  const before = (await readSafetensors(listCheckpoints(run)[0].path)).tensors.get('gen.0.0.weight')!.data
  const slow = await Trainer.resume(run, { steps: 3, lr: 1e-12 })
  t.is(slow.gan.config.train.lr, 1e-12)
  await slow.fit({ progress: false })
  const after = (await slow.gan.state()).get('gen.0.0.weight')!.data
  // Adam moves each weight by about lr per step: 2e-4 with the seed's lr, 1e-12 with this one.
  const moved = Math.max(...after.map((v, i) => Math.abs(v - before[i])))
  t.true(moved < 1e-9, `weights moved by ${moved}`)
  for (const change of [{ imageSize: 32 }, { seed: 9 }, { dataset: { kind: 'mnist', limit: 50 } }] as Array<Partial<TrainConfig>>) {
    await t.throwsAsync(Trainer.resume(run, change as never), { code: ErrorCode.INVALID_OPTION, message: new RegExp(`cannot change ${Object.keys(change)[0]} when resuming`) })
  }
})

test('a second trainer on the same run folder is refused while the first writes', async (t) => {
  const run = tmp()
  const batch = { data: new Float32Array(16 * 16 * 16), shape: [16, 1, 16, 16] }
  let second: Promise<unknown> | undefined
  const first = await new Trainer(tiny(run, { steps: 3 })).fit({
    progress: false,
    // With its dataset given, fit() takes the lock before its first await: deterministic.
    callbacks: { onStepEnd: (s) => void (s.step === 1 && (second = new Trainer(tiny(run, { steps: 1 })).fit({ progress: false, dataset: new IterableDataset([batch]) }).catch((e) => e))) },
  })
  t.is(first.steps, 3)
  const refused = (await second) as Error & { code?: string }
  t.is(refused.code, ErrorCode.RUN_LOCKED)
  t.regex(refused.message, /another trainer \(process \d+\) is writing to this run folder/)
  t.is((await new Trainer(tiny(run, { steps: 1 })).fit({ progress: false, overwrite: true, dataset: new IterableDataset([batch]) })).reason, 'completed', 'the lock is released when fit() ends')
})

test('a new run refuses a folder that holds a run, unless told to overwrite it', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
  await t.throwsAsync(new Trainer(tiny(run, { steps: 3 })).fit({ progress: false }), {
    code: ErrorCode.RUN_EXISTS,
    message: `${run}: already holds a run (checkpoints up to step 2); resume it (Trainer.resume, dcgan train --resume), replace it (overwrite: true, --overwrite) or choose another outDir`,
  })
  t.deepEqual(steps(run), [1, 2], 'the refused run wrote nothing')
  await new Trainer(tiny(run, { steps: 3 })).fit({ progress: false, overwrite: true })
  t.deepEqual(steps(run), [1, 2, 3], 'metrics start again, not appended')
  t.deepEqual(listCheckpoints(run).map((c) => c.step), [2, 3])

  const cli = (...args: string[]) => spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'train', '--steps', '1', '--image-size', '16', '--features-g', '4',
    '--features-d', '4', '--z-dim', '8', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--sample-every', '0', '--out', run, ...args], { encoding: 'utf8' })
  const refused = cli()
  t.is(refused.status, 1)
  t.regex(refused.stderr, /^dcgan: .*: already holds a run \(checkpoints up to step 3\); resume it/m)
  t.is(cli('--overwrite').status, 0)
  t.deepEqual(steps(run), [1])
})

/** A folder of `n` small grey PNGs, for runs on a dataset with a path. */
async function imageFolder(n: number): Promise<string> {
  const root = tmp()
  for (let i = 0; i < n; i++) await saveImageGrid({ data: new Float32Array(16 * 16).fill(i / n - 0.5), shape: [1, 1, 16, 16] }, join(root, `${i}.png`), { nrow: 1, padding: 0 })
  return root
}

/** Rewrites a checkpoint's training state as a hand-made (or hostile) checkpoint would have it. */
async function forge(file: string, edit: (state: Record<string, any>) => void): Promise<void> {
  const state = readCheckpointInfo(file).trainer as unknown as Record<string, any>
  edit(state)
  await (await DCGAN.load(file)).save(file, { trainer: JSON.stringify(state) })
}

test('a checkpoint whose training state contradicts its model is refused, naming the checkpoint', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
  const file = listCheckpoints(run)[0].path
  const original = readFileSync(file)
  const cases: Array<[(s: Record<string, any>) => void, RegExp]> = [
    [(s) => (s.step = 0.5), /its training state has step 0\.5; allowed: an integer ≥ 0/],
    [(s) => (s.step = 3), /its training state is at step 3, its model at step 2/],
    [(s) => Object.assign(s.config, { featuresG: 64, zDim: 100 }), /its training state says zDim 100, featuresG 64, its model has zDim 16, featuresG 4/],
    [(s) => (s.data = { epoch: -1, position: 0 }), /its training state has the data position \{"epoch":-1,"position":0\}/],
  ]
  for (const [edit, message] of cases) {
    writeFileSync(file, original)
    await forge(file, edit)
    const e = await t.throwsAsync(Trainer.resume(run, { steps: 4 }), { code: ErrorCode.FILE, message })
    t.true(e!.message.startsWith(`${file}: `), e!.message)
  }
  t.deepEqual(listCheckpoints(run).map((c) => c.step), [2], 'nothing was written')
  // A checkpoint from before a model field existed (spectralNorm) lacks it: the header says it.
  writeFileSync(file, original)
  await forge(file, (s) => delete s.config.spectralNorm)
  t.false((await Trainer.resume(run, { steps: 3 })).config.spectralNorm)
})

test("a dataset path stored in a checkpoint is opened only when its run folder's config.json names it", async (t) => {
  const data = await imageFolder(8)
  const spec = { kind: 'folder' as const, path: data }
  const run = tmp()
  await new Trainer(tiny(run, { steps: 2, batchSize: 4, dataset: spec })).fit({ progress: false })
  t.is((await Trainer.resume(run, { steps: 3 })).config.dataset.path, data, 'a run trained here resumes as before')

  // The same checkpoint alone, or in a run folder whose config.json names other data: the path it
  // names (here the private folder of someone else) is not opened; the user names the data.
  const loose = join(tmp(), 'loose.safetensors')
  cpSync(listCheckpoints(run)[0].path, loose)
  const notOpened = new RegExp(`names the dataset path "${data}", which is not opened: .* --data-path PATH, or Trainer\\.resume\\(run, \\{ dataset \\}\\)`)
  await t.throwsAsync(Trainer.resume(loose, { outDir: tmp() }), { code: ErrorCode.INVALID_OPTION, message: notOpened })
  await t.throwsAsync(evaluateCheckpoint(loose), { code: ErrorCode.INVALID_OPTION, message: /which is not opened: .*dcgan eval --data-path PATH/ })
  const planted = tmp()
  cpSync(run, planted, { recursive: true })
  writeFileSync(join(planted, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')), dataset: { kind: 'mnist' } }))
  await t.throwsAsync(Trainer.resume(planted), { code: ErrorCode.INVALID_OPTION, message: notOpened })
  rmSync(join(planted, 'config.json'))
  await t.throwsAsync(Trainer.resume(planted), { code: ErrorCode.INVALID_OPTION, message: notOpened })

  // Named by the user, the data may have moved; its order (kind, limit, shuffle, split) may not change.
  const moved = join(tmp(), 'moved')
  cpSync(data, moved, { recursive: true })
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'train', '--resume', planted, '--steps', '3', ...args], { encoding: 'utf8' })
  t.regex(cli().stderr, /^dcgan: .*which is not opened: .*Say where the data is: dcgan train --resume … --data-path PATH/m)
  // Other dataset flags do not make the stored path the user's.
  t.regex(cli('--skip-corrupt').stderr, /^dcgan: .*which is not opened: /m)
  t.regex(cli('--dataset', 'folder').stderr, /^dcgan: .*which is not opened: /m)
  t.is(cli('--data-path', moved).status, 0)
  t.is(JSON.parse(readFileSync(join(planted, 'config.json'), 'utf8')).dataset.path, moved)
  t.is((await Trainer.resume(planted)).config.dataset.path, moved, 'confirmed from now on by the config.json of the resumed run')
  const resumed = await Trainer.resume(loose, { outDir: tmp(), steps: 3, dataset: { kind: 'folder', path: moved, skipCorrupt: true } })
  t.is((await resumed.fit({ progress: false })).steps, 3)
  t.deepEqual(resumed.config.dataset, { kind: 'folder', path: moved, skipCorrupt: true })
  await t.throwsAsync(Trainer.resume(run, { dataset: { ...spec, limit: 4 } }), { code: ErrorCode.INVALID_OPTION, message: /cannot change dataset when resuming \(limit: undefined in the checkpoint, 4 given\)/ })
  await t.throwsAsync(Trainer.resume(run, { dataset: { ...spec, shuffle: false } }), { code: ErrorCode.INVALID_OPTION, message: /cannot change dataset when resuming \(shuffle: / })
})

test('a checkpoint in a run folder resumes there: another outDir is refused', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
  const other = tmp()
  await t.throwsAsync(Trainer.resume(run, { steps: 3, outDir: other }), { code: ErrorCode.INVALID_OPTION, message: new RegExp(`^cannot move a resumed run to ${other}: it continues in ${run}, the run folder its checkpoint lies in`) })
  t.is((await Trainer.resume(run, { outDir: join(run, '.', '') })).config.outDir, run, 'the same folder, spelt otherwise, is fine')
})

test('a damaged newest checkpoint names the older one that resumes', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 4 })).fit({ progress: false })
  const [older, newest] = listCheckpoints(run)
  truncateSync(newest.path, statSync(newest.path).size - 100) // a disk that filled up, say
  const e = await t.throwsAsync(Trainer.resume(run, { steps: 4 }), { code: ErrorCode.FILE })
  t.regex(e!.message, new RegExp(`^${newest.path}: .*\\. The older checkpoint ${older.path} \\(step 2\\) is intact: resume from it with dcgan train --resume ${older.path}`))
  const again = await Trainer.resume(older.path, { steps: 4 })
  await again.fit({ progress: false })
  t.is((await DCGAN.load(newest.path)).config.stepsDone, 4, 'the damaged checkpoint was written anew')
  t.deepEqual(steps(run), [1, 2, 3, 4])
})

test('a FIFO as the lock or the metrics of a run folder is refused, never waited on', async (t) => {
  for (const name of ['.lock', 'metrics.jsonl']) {
    const run = tmp()
    await new Trainer(tiny(run, { steps: 2 })).fit({ progress: false })
    rmSync(join(run, name), { force: true })
    execFileSync('mkfifo', [join(run, name)])
    const resumed = await Trainer.resume(run, { steps: 3 })
    await t.throwsAsync(resumed.fit({ progress: false }), { code: ErrorCode.FILE, message: new RegExp(`${name.replace('.', '\\.')}: is a FIFO \\(named pipe\\)`) }, name)
    t.deepEqual(listCheckpoints(run).map((c) => c.step), [2], name)
  }
  // A new run's metrics log: open for appending, it would wait for a reader forever.
  const run = tmp()
  execFileSync('mkfifo', [join(run, 'metrics.jsonl')])
  await t.throwsAsync(new Trainer(tiny(run, { steps: 1 })).fit({ progress: false }), { code: ErrorCode.FILE, message: /metrics\.jsonl: cannot write \(is not a regular file/ })
})

test('a folder holding metrics but no checkpoint is not offered for resuming', async (t) => {
  const run = tmp()
  await new Trainer(tiny(run, { steps: 1 })).fit({ progress: false })
  rmSync(join(run, 'checkpoints'), { recursive: true }) // killed before its first checkpoint
  const e = await t.throwsAsync(new Trainer(tiny(run, { steps: 1 })).fit({ progress: false }), { code: ErrorCode.RUN_EXISTS })
  t.is(e!.message, `${run}: already holds a run (metrics but no checkpoint to resume from); replace it (overwrite: true, --overwrite) or choose another outDir`)
})
