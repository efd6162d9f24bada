// The `dcgan` command, run as a user runs it (dist/cli.js, built by `npm test` and `npm install`).
import test from 'ava'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DCGAN, interpolate, listCheckpoints, saveImageGrid, vectorArithmetic } from '../src/index'

const CLI = join(__dirname, '..', 'dist', 'cli.js')
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-cli-'))
const TINY = ['--image-size', '16', '--features-g', '4', '--features-d', '4', '--z-dim', '16', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--seed', '3']

function dcgan(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('--help for the program and each command, exit 0', (t) => {
  const top = dcgan('--help')
  t.is(top.code, 0)
  for (const cmd of ['train', 'generate', 'interpolate', 'arithmetic', 'inspect']) {
    t.true(top.stdout.includes(cmd), cmd)
    const r = dcgan(cmd, '--help')
    t.is(r.code, 0, cmd)
  }
  t.true(dcgan('train', '--help').stdout.includes('--checkpoint-every <n>'))
})

test('--version prints the version of package.json, exit 0', (t) => {
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'))
  for (const flag of ['--version', '-V']) t.deepEqual(dcgan(flag), { code: 0, stdout: `${version}\n`, stderr: '' })
})

test('bad input exits non-zero with a one-line reason', (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['train', '--image-size', '48', '--out', tmp()], /^dcgan: invalid imageSize: got 48; allowed: a power of two/],
    [['train', '--batch-size', 'many'], /^dcgan: option '--batch-size <n>' argument 'many' is invalid. 'many' is not an integer. \(see --help\)$/],
    [['train', '--preset', 'fast'], /argument 'fast' is invalid. Allowed choices are paper, quick/],
    [['train', ...TINY, '--cuda-graph', '--out', tmp()], /^dcgan: invalid cudaGraph: got true, but device is 'cpu': CUDA graphs need a GPU/],
    [['train', '--config', '/nonexistent/c.json'], /^dcgan: \/nonexistent\/c.json: cannot read the config file/],
    [['generate', '--checkpoint', '/nonexistent/run', '--grid', 'x.png'], /^dcgan: \/nonexistent\/run: no such file or folder/],
    [['generate', '--checkpoint', tmp()], /^dcgan: say where the images go/],
    [['train', '--dataset', 'folder', '--data-path', '/nonexistent/images', '--out', tmp()], /^dcgan: .*\/nonexistent\/images: is not a folder/],
    // Empty or odd numbers are refused, not read as 0 (Number('') is 0) or as another number.
    [['arithmetic', '--checkpoint', 'x', '--a', '1,2,', '--b', '3', '--c', '4', '--out', 'x.png'], /argument '1,2,' is invalid\. '1,2,' has an empty seed: give seeds separated by commas, e\.g\. 1,2,3\./],
    [['arithmetic', '--checkpoint', 'x', '--a', '', '--b', '3', '--c', '4', '--out', 'x.png'], /argument '' is invalid\. '' has an empty seed/],
    [['arithmetic', '--checkpoint', 'x', '--a', '1', '--b', '3', '--c', '4', '--variations', '', '--out', 'x.png'], /argument '' is invalid\. '' is not an integer\./],
    [['interpolate', '--checkpoint', 'x', '--from', '', '--to', '2', '--out', 'x.png'], /argument '' is invalid\. '' is not an integer\./],
    [['generate', '--checkpoint', 'x', '--grid', 'x.png', '--seed', ' '], /argument ' ' is invalid\. ' ' is not an integer\./],
    [['generate', '--checkpoint', 'x', '--grid', 'x.png', '--seed', '1e3'], /argument '1e3' is invalid\. '1e3' is not an integer\./],
    [['generate', '--checkpoint', 'x', '--grid', 'x.png', '--seed', '0x10'], /argument '0x10' is invalid\. '0x10' is not an integer\./],
    [['generate', '--checkpoint', 'x', '--grid', 'x.png', '--seed', '18446744073709551615'], /argument '18446744073709551615' is invalid\. '18446744073709551615' is beyond 9007199254740991, the largest integer taken\./],
    [['generate', '--checkpoint', 'x', '--grid', 'x.png', '--seed', '-1'], /argument '-1' is invalid\. '-1' is not a seed: an integer from 0 to 9007199254740991\./],
  ]
  for (const [args, message] of cases) {
    const r = dcgan(...args)
    t.not(r.code, 0, args.join(' '))
    // The reason is one line, beside at most one more: what train was about to do, or a hint.
    const lines = r.stderr.trim().split('\n')
    t.true(lines.length <= 2, r.stderr)
    t.true(lines.some((l) => message.test(l)), `${args.join(' ')}: ${r.stderr}`)
  }
  // Argument errors (commander's) are exactly one line, the usage hint on it.
  for (const args of [['train', '--bogus'], ['train', '--image-size', 'abc'], ['generate'], ['nosuchcommand']]) {
    const r = dcgan(...args)
    t.is(r.code, 1, args.join(' '))
    t.regex(r.stderr, /^dcgan: [^\n]+ \(see --help\)\n$/, args.join(' '))
  }
  const bad = join(tmp(), 'bad.json')
  writeFileSync(bad, '{ "imageSize": ')
  t.regex(dcgan('train', '--config', bad).stderr, /bad\.json: not valid JSON/)
})

test('train, resume, generate, interpolate, arithmetic, inspect', (t) => {
  const run = join(tmp(), 'run')
  const cfg = join(tmp(), 'config.json')
  writeFileSync(cfg, JSON.stringify({ steps: 100, sampleEvery: 2, lr: 0.0002 }))
  const first = dcgan('train', '--config', cfg, ...TINY, '--steps', '3', '--out', run) // the flag beats the file
  t.is(first.code, 0, first.stderr)
  t.deepEqual(listCheckpoints(run).map((c) => c.step), [3])
  t.true(existsSync(join(run, 'samples', 'step-000002.png')))
  // stderr is a pipe here, not a terminal: plain progress lines, the first and the last step at least.
  t.regex(first.stderr, /^step 1\/3 \(33%\) \| D \d\.\d{3} G \d+\.\d{3} D\(x\) \d\.\d\d D\(G\(z\)\) \d\.\d\d \| \d+ img\/s \| ETA \S+$/m)
  t.regex(first.stderr, /^step 3\/3 \(100%\) .* \| ETA 0s$/m)
  // Flags reach a resumed run's config: --cuda-graph is refused here (no GPU), --no-cuda-graph taken.
  t.regex(dcgan('train', '--resume', run, '--steps', '5', '--cuda-graph').stderr, /^dcgan: invalid cudaGraph: got true, but device is 'cpu'/)
  const resumed = dcgan('train', '--resume', run, '--steps', '5', '--no-cuda-graph')
  t.is(resumed.code, 0, resumed.stderr)
  t.regex(resumed.stderr, /resuming .* at step 3/)
  t.regex(resumed.stderr, /^step 4\/5 /m)
  t.deepEqual(listCheckpoints(run).map((c) => c.step), [3, 5])

  const dir = tmp()
  t.is(dcgan('generate', '--checkpoint', run, '--count', '4', '--grid', join(dir, 'a.png'), '--seed', '7', '--dir', join(dir, 'each')).code, 0)
  t.is(dcgan('generate', '--checkpoint', listCheckpoints(run)[1].path, '--count', '4', '--grid', join(dir, 'b.png'), '--seed', '7').code, 0)
  t.deepEqual(readFileSync(join(dir, 'a.png')), readFileSync(join(dir, 'b.png'))) // same seed, same images
  t.true(existsSync(join(dir, 'each', 'image-003.png')))

  t.is(dcgan('interpolate', '--checkpoint', run, '--from', '1', '--to', '2', '--frames', '5', '--out', join(dir, 'strip.png'), '--dir', join(dir, 'frames')).code, 0)
  t.is(readFileSync(join(dir, 'strip.png')).readUInt32BE(16), 5 * 18 + 2) // 5 frames of 16 px, 2 px apart
  t.true(existsSync(join(dir, 'frames', 'frame-004.png')))

  const ar = dcgan('arithmetic', '--checkpoint', run, '--a', '1,2,3', '--b', '4,5,6', '--c', '7,8,9', '--variations', '4', '--out', join(dir, 'ar.png'))
  t.is(ar.code, 0, ar.stderr)
  t.is(readFileSync(join(dir, 'ar.png')).readUInt32BE(20), 2 * 18 + 2) // two rows of four

  const info = JSON.parse(dcgan('inspect', '--checkpoint', run).stdout)
  t.is(info.steps, 5)
  t.deepEqual(info.model, { zDim: 16, channels: 1, featuresG: 4, featuresD: 4, imageSize: 16, init: 'seed', spectralNorm: false })
  t.is(info.config.batchSize, 8)
  t.deepEqual(info.data, { epoch: 0, position: 40 })
})

function waitFor(cond: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now()
    const tick = () => (cond() ? resolve() : Date.now() - start > ms ? reject(new Error('timed out')) : setTimeout(tick, 20))
    tick()
  })
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)))
}

function metricLines(run: string): number {
  const f = join(run, 'metrics.jsonl')
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0
}

test('Ctrl-C during train finishes the step, writes a checkpoint and exits 0', async (t) => {
  const run = join(tmp(), 'run')
  const child = spawn(process.execPath, [CLI, 'train', ...TINY, '--steps', '100000', '--checkpoint-every', '100000', '--out', run])
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  await waitFor(() => metricLines(run) >= 2, 30_000)
  child.kill('SIGINT')
  t.is(await exited(child), 0, stderr)
  t.regex(stderr, /interrupted: finishing the current step/)
  t.regex(stderr, /continue with: dcgan train --resume/)
  const [last] = listCheckpoints(run)
  t.is(last.step, metricLines(run)) // the checkpoint holds every step that was logged
})

test('SIGKILL at any moment while checkpoints are written leaves a loadable latest checkpoint', async (t) => {
  const run = join(tmp(), 'run')
  // A model large enough that writing a checkpoint takes a while, written after every step.
  const args = ['--image-size', '32', '--features-g', '24', '--features-d', '24', '--batch-size', '8', '--limit', '64', '--device', 'cpu', '--checkpoint-every', '1', '--keep-checkpoints', '2', '--steps', '100000', '--sample-every', '0']
  for (let round = 0; round < 5; round++) {
    const resume = listCheckpoints(run).length > 0 ? ['--resume', run] : ['--out', run]
    const child = spawn(process.execPath, [CLI, 'train', ...(round === 0 ? args : []), ...resume, ...(round > 0 ? ['--steps', '100000'] : [])])
    const before = listCheckpoints(run).at(-1)?.step ?? 0
    await waitFor(() => (listCheckpoints(run).at(-1)?.step ?? 0) > before, 60_000)
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 400))
    child.kill('SIGKILL')
    await exited(child)
    const all = listCheckpoints(run)
    t.true(all.length >= 1, `round ${round}`)
    const latest = await DCGAN.load(all.at(-1)!.path)
    t.true(await latest.allFinite())
    t.is(latest.config.stepsDone, all.at(-1)!.step)
  }
})

/** How a child process ended: its exit code, or the signal that killed it. */
function ended(child: ChildProcess): Promise<{ code: number | null; killedBy: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on('exit', (code, killedBy) => resolve({ code, killedBy })))
}

for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  // After SIGHUP the process ends by SIGHUP, once the work is saved: with its terminal gone, a normal
  // exit would abort (Node restores the terminal's mode).
  test(`${signal} during train finishes the step and writes a checkpoint, as Ctrl-C does; a second one quits at once`, async (t) => {
    const run = join(tmp(), 'run')
    const child = spawn(process.execPath, [CLI, 'train', ...TINY, '--steps', '100000', '--checkpoint-every', '100000', '--out', run])
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    await waitFor(() => metricLines(run) >= 2, 60_000)
    const status = ended(child)
    child.kill(signal)
    t.deepEqual(await status, signal === 'SIGTERM' ? { code: 0, killedBy: null } : { code: null, killedBy: 'SIGHUP' }, stderr)
    t.regex(stderr, new RegExp(`interrupted by ${signal}: finishing the current step and writing a checkpoint`))
    t.regex(stderr, /continue with: dcgan train --resume/)
    t.is(listCheckpoints(run)[0].step, metricLines(run)) // no step lost
    // A second signal while the step runs (about a second here) quits at once.
    const slow = join(tmp(), 'run')
    const again = spawn(process.execPath, [CLI, 'train', '--image-size', '64', '--features-g', '32', '--features-d', '32', '--batch-size', '64', '--limit', '128', '--device', 'cpu', '--sample-every', '0', '--steps', '1000', '--out', slow])
    let out = ''
    again.stderr.on('data', (d) => (out += d))
    await waitFor(() => metricLines(slow) >= 1, 60_000)
    again.kill(signal)
    await waitFor(() => out.includes('interrupted'), 30_000)
    const killed = ended(again)
    again.kill(signal)
    // Killed by the signal itself (a shell reports 128 + its number), not by a crash on the way out.
    t.deepEqual(await killed, { code: null, killedBy: signal }, out)
  })
}

test('--resume refuses, naming them, the flags it cannot apply; applies --data-path and --skip-corrupt', (t) => {
  const run = join(tmp(), 'run')
  t.is(dcgan('train', ...TINY, '--steps', '2', '--sample-every', '0', '--out', run).code, 0)
  const cfg = join(tmp(), 'c.json')
  writeFileSync(cfg, '{}')
  const cases: Array<[string[], RegExp]> = [
    [['--config', cfg, '--preset', 'quick'], /^dcgan: --config, --preset: apply to a new run; a resumed run keeps its checkpoint's config/],
    [['--overwrite'], /^dcgan: --overwrite: applies to a new run/],
    [['--limit', '32'], /^dcgan: --limit 32: a resumed run cannot change its dataset \(it trained with --limit 64\)/],
    [['--dataset', 'cifar10', '--limit', '64'], /^dcgan: --dataset cifar10: a resumed run cannot change its dataset \(it trained with --dataset mnist\)/],
    [['--out', tmp()], /^dcgan: cannot move a resumed run to .*: it continues in .*run, the run folder its checkpoint lies in/],
  ]
  for (const [args, message] of cases) {
    const r = dcgan('train', '--resume', run, '--steps', '3', ...args)
    t.is(r.code, 1, args.join(' '))
    t.regex(r.stderr, message, args.join(' '))
  }
  t.deepEqual(listCheckpoints(run).map((c) => c.step), [2], 'a refused resume trains nothing')
  const ok = dcgan('train', '--resume', run, '--steps', '3', '--limit', '64', '--skip-corrupt', '--out', run)
  t.is(ok.code, 0, ok.stderr)
  t.deepEqual(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).dataset, { kind: 'mnist', limit: 64, skipCorrupt: true })
})

test('a resume refused by the run folder\'s lock writes nothing into the folder', (t) => {
  const run = join(tmp(), 'run')
  t.is(dcgan('train', ...TINY, '--steps', '1', '--sample-every', '0', '--out', run).code, 0)
  rmSync(join(run, 'report.html'))
  writeFileSync(join(run, '.lock'), String(process.pid)) // a live trainer holds it
  const r = dcgan('train', '--resume', run, '--steps', '2')
  t.is(r.code, 1)
  t.regex(r.stderr, /another trainer \(process \d+\) is writing to this run folder/)
  t.false(existsSync(join(run, 'report.html')))
  t.deepEqual(readdirSync(run).sort(), ['.lock', 'charts', 'checkpoints', 'config.json', 'metrics.jsonl', 'real.png'])
})

test('--count out of range names the flag', (t) => {
  for (const n of ['0', '65537']) {
    const r = dcgan('generate', '--checkpoint', tmp(), '--count', n, '--grid', join(tmp(), 'g.png'))
    t.is(r.code, 1)
    t.regex(r.stderr, new RegExp(`^dcgan: option '--count <n>' argument '${n}' is invalid. '${n}' is not an integer from 1 to 65536. \\(see --help\\)$`, 'm'))
  }
})

test("the README's synopsis lists every flag of every command", (t) => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
  const synopsis = readme.slice(readme.indexOf('## CLI'), readme.indexOf('## API'))
  for (const cmd of ['train', 'generate', 'interpolate', 'arithmetic', 'inspect', 'eval', 'report', 'export']) {
    // A command's lines run from `dcgan <cmd>` to the next `dcgan ` line.
    const lines = synopsis.split(/\n(?=dcgan )/).find((l) => l.startsWith(`dcgan ${cmd} `)) ?? ''
    const flags = [...dcgan(cmd, '--help').stdout.matchAll(/^ +(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]).filter((f) => f !== '--help')
    t.true(cmd === 'report' || flags.length > 0, cmd)
    for (const flag of new Set(flags)) t.true(new RegExp(`${flag}(?![a-z-])`).test(lines), `dcgan ${cmd}: ${flag} missing from the README's synopsis`)
  }
})

test('a folder of colour images at the default 1 channel trains in gray and says so once, as a warning line', async (t) => {
  const data = tmp()
  for (let i = 0; i < 8; i++) {
    const px = new Float32Array(3 * 16 * 16).fill(-1)
    px.fill(i / 8, 0, 256) // a red plane
    await saveImageGrid({ data: px, shape: [1, 3, 16, 16] }, join(data, `${i}.png`), { nrow: 1, padding: 0 })
  }
  const r = dcgan('train', '--dataset', 'folder', '--data-path', data, ...TINY.filter((a) => a !== '--limit' && a !== '64'), '--steps', '2', '--out', join(tmp(), 'run'))
  t.is(r.code, 0, r.stderr)
  const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'))
  t.is(warnings.length, 1, r.stderr)
  t.regex(warnings[0], /^warning: .*\/\d\.png is in colour, but the model has 1 channel: colour images are converted to gray \(channels: 3, dcgan train --channels 3, trains on colour\)$/)
})

// Every training flag reaches the run: config.json, the checkpoint's stored config (`dcgan inspect`)
// and the model the checkpoint loads as. Each value differs from its default, so an ignored flag fails.
test('train: every model, optimiser, stabiliser and schedule flag reaches config.json, the checkpoint and the loaded model', async (t) => {
  const dir = tmp()
  try {
    const run = join(dir, 'run')
    // --epochs without --steps: 16 images in batches of 8, 2 epochs → 4 steps (the default 5 epochs would be 10).
    const r = dcgan('train', '--image-size', '16', '--features-g', '4', '--features-d', '4', '--z-dim', '16', '--batch-size', '8', '--limit', '16', '--device', 'cpu', '--seed', '3', '--out', run,
      '--channels', '3', '--init', 'pytorch-example', '--spectral-norm',
      '--lr', '3e-4', '--beta1', '0.4', '--beta2', '0.99', '--eps', '1e-7', '--d-steps', '2', '--generator-loss', 'minimax',
      '--lr-d', '5e-4', '--lr-g', '1e-4', '--real-label', '0.9', '--r1-gamma', '0.5', '--r1-every', '3',
      '--augment', 'translation,cutout', '--ema-decay', '0.9',
      '--epochs', '2', '--sample-every', '3', '--sample-count', '4', '--checkpoint-every', '3', '--keep-checkpoints', '1', '--defer-stats')
    t.is(r.code, 0, r.stderr)
    const model = { zDim: 16, channels: 3, featuresG: 4, featuresD: 4, imageSize: 16, init: 'pytorch-example', spectralNorm: true }
    const optimizer = {
      lr: 3e-4, beta1: 0.4, beta2: 0.99, eps: 1e-7, dSteps: 2, generatorLoss: 'minimax', precision: 'fp32',
      lrD: 5e-4, lrG: 1e-4, realLabel: 0.9, loss: 'bce', r1Gamma: 0.5, r1Every: 3, augment: 'translation,cutout', emaDecay: 0.9,
    }
    const config = {
      ...model, ...optimizer, device: 'cpu', seed: 3, batchSize: 8, epochs: 2, outDir: run, checkpointEvery: 3, keepCheckpoints: 1,
      sampleEvery: 3, sampleCount: 4, dataset: { kind: 'mnist', limit: 16 }, deferStats: true, cudaGraph: false,
    }
    t.deepEqual(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')), config)
    const info = JSON.parse(dcgan('inspect', '--checkpoint', run).stdout)
    t.deepEqual({ model: info.model, optimizer: info.optimizer, steps: info.steps, config: info.config }, { model, optimizer, steps: 4, config })
    t.deepEqual(listCheckpoints(run).map((c) => c.step), [4]) // --keep-checkpoints 1 pruned step 3's
    const gan = await DCGAN.load(listCheckpoints(run)[0].path)
    t.deepEqual(gan.config, { model, train: optimizer, device: 'cpu', stepsDone: 4 })
    t.true((await gan.state()).has('ema.gen.2.weight')) // the moving average is kept
    // --sample-every 3 and the end; --sample-count 4 makes 2×2 grids of 3-channel 16 px images: 2·18 + 2 px.
    t.deepEqual(readdirSync(join(run, 'samples')).sort(), ['step-000003.png', 'step-000004.png'])
    const sample = readFileSync(join(run, 'samples', 'step-000003.png'))
    t.deepEqual([sample.readUInt32BE(16), sample.readUInt32BE(20), sample[25]], [38, 38, 2]) // width, height, colour type RGB
    t.is(readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 4)
    // --loss hinge, which takes no realLabel other than 1 and no minimax: its own run.
    const hinge = join(dir, 'hinge')
    const h = dcgan('train', ...TINY, '--steps', '1', '--sample-every', '0', '--loss', 'hinge', '--out', hinge)
    t.is(h.code, 0, h.stderr)
    t.is(JSON.parse(readFileSync(join(hinge, 'config.json'), 'utf8')).loss, 'hinge')
    t.is((await DCGAN.load(listCheckpoints(hinge)[0].path)).config.train.loss, 'hinge')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

// generate, interpolate and arithmetic write the PNG the API writes for the same arguments, byte for
// byte; each flag changes the bytes when its value does.
test('generate, interpolate and arithmetic: each flag gives the PNG the API writes for the same arguments', async (t) => {
  const dir = tmp()
  try {
    const run = join(dir, 'run')
    // pytorch-example init: the seed's N(0, 0.02) BatchNorm weights would make the images nearly
    // independent of z, so that a wrong seed or path could give the same bytes.
    const r = dcgan('train', ...TINY, '--init', 'pytorch-example', '--steps', '2', '--sample-every', '0', '--out', run)
    t.is(r.code, 0, r.stderr)
    const gan = await DCGAN.load(listCheckpoints(run)[0].path)
    const api = async (name: string, images: Promise<{ data: Float32Array; shape: number[] }>, nrow: number) => {
      const path = join(dir, `api-${name}.png`)
      await saveImageGrid(await images, path, { nrow })
      return readFileSync(path)
    }
    const cli = (name: string, ...args: string[]) => {
      const path = join(dir, `cli-${name}.png`)
      const c = dcgan(...args, '--checkpoint', run, ...(args[0] === 'generate' ? ['--grid'] : ['--out']), path)
      t.is(c.code, 0, c.stderr)
      return readFileSync(path)
    }
    const seed7 = cli('seed7', 'generate', '--seed', '7', '--count', '4', '--nrow', '2')
    t.deepEqual(seed7, await api('seed7', gan.generate(4, { seed: 7 }), 2))
    t.notDeepEqual(cli('seed8', 'generate', '--seed', '8', '--count', '4', '--nrow', '2'), seed7)
    // --nrow 4 (the default for 4 images is 2 a row) and --count 5.
    t.deepEqual(cli('row', 'generate', '--seed', '7', '--count', '4', '--nrow', '4'), await api('row', gan.generate(4, { seed: 7 }), 4))
    t.deepEqual(cli('five', 'generate', '--seed', '7', '--count', '5', '--nrow', '2'), await api('five', gan.generate(5, { seed: 7 }), 2))

    // interpolate: slerp by default, --method linear, --from/--to, --frames; the strip is one row.
    const slerpStrip = cli('slerp', 'interpolate', '--from', '1', '--to', '2', '--frames', '5')
    t.deepEqual(slerpStrip, await api('slerp', interpolate(gan, { from: { seed: 1 }, to: { seed: 2 }, frames: 5, method: 'slerp' }), 5))
    const linearStrip = cli('linear', 'interpolate', '--from', '1', '--to', '2', '--frames', '5', '--method', 'linear')
    t.deepEqual(linearStrip, await api('linear', interpolate(gan, { from: { seed: 1 }, to: { seed: 2 }, frames: 5, method: 'linear' }), 5))
    t.notDeepEqual(linearStrip, slerpStrip)
    t.deepEqual(cli('other', 'interpolate', '--from', '3', '--to', '2', '--frames', '4'), await api('other', interpolate(gan, { from: { seed: 3 }, to: { seed: 2 }, frames: 4 }), 4))

    // arithmetic: --a/--b/--c seed lists, --variations, --noise; four images a row.
    const points = (...seeds: number[]) => seeds.map((seed) => ({ seed }))
    const concepts = { a: points(1, 2), b: points(3), c: points(4, 5) }
    const ar = cli('ar', 'arithmetic', '--a', '1,2', '--b', '3', '--c', '4,5', '--variations', '3', '--noise', '0.5')
    t.deepEqual(ar, await api('ar', vectorArithmetic(gan, { ...concepts, variations: 3, noise: 0.5 }).then((x) => x.images), 4))
    t.notDeepEqual(ar, await api('ar-default-noise', vectorArithmetic(gan, { ...concepts, variations: 3 }).then((x) => x.images), 4))
    const swapped = cli('ar-swapped', 'arithmetic', '--a', '4,5', '--b', '3', '--c', '1,2', '--variations', '0')
    t.deepEqual(swapped, await api('ar-swapped', vectorArithmetic(gan, { a: concepts.c, b: concepts.b, c: concepts.a }).then((x) => x.images), 4))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
