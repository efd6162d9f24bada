// The run folder belongs to the run: paths stored in a checkpoint are not followed, one trainer
// writes at a time, a resumed run logs each step once, and resuming changes only what can change.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ErrorCode, IterableDataset, Trainer, listCheckpoints, readSafetensors, type TrainConfig } from '../src/index'

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
