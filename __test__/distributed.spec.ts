// Data-parallel training on c10d (Gloo, CPU): two processes on this machine, against PyTorch's
// DistributedDataParallel (fixture from benchmark/reference/make_ddp_fixtures.py) and through
// `dcgan train --nproc 2` as a user runs it.
import test, { type ExecutionContext } from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { DCGAN, listCheckpoints, readCheckpointInfo, readSafetensors } from '../src/index'
import { ephemeralRangeStart, freePort, rankDevice } from '../src/distributed'
import { loadFixture, maxAbsDiff, stateDifferences } from './helpers'

const CLI = join(__dirname, '..', 'dist', 'cli.js')
const WORKER = join(__dirname, 'distributed-worker.ts')
const FAIL_WORKER = join(__dirname, 'distributed-fail-worker.ts')
const tmp = () => mkdtempSync(join(tmpdir(), 'dcgan-dist-'))
const TINY = ['--image-size', '16', '--features-g', '4', '--features-d', '4', '--z-dim', '16', '--batch-size', '8', '--limit', '40', '--device', 'cpu', '--seed', '3', '--threads', '1', '--sample-every', '0']
const TOL = 1e-5

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string
}

function run(args: string[], env: NodeJS.ProcessEnv = {}, onStart?: (pid: number) => void): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    // 'close', not 'exit': 'exit' can come before the last of stderr (the launcher's own error line) is read.
    child.on('close', (code, signal) => resolve({ code, signal, stderr }))
    onStart?.(child.pid!)
  })
}

const dcgan = (...args: string[]) => run([CLI, ...args])

/** Only the networks' tensors of a saved model (not the optimiser's). */
async function networkState(file: string) {
  const { tensors } = await readSafetensors(file)
  return new Map([...tensors].filter(([k]) => k.startsWith('gen.') || k.startsWith('disc.')))
}

/** Runs distributed-worker.ts as two ranks; returns the folder of their rank<r>.safetensors. */
async function parityRanks(t: ExecutionContext, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const out = tmp()
  const port = await freePort()
  const ranks = await Promise.all([0, 1].map((rank) =>
    run(['--import', 'tsx', WORKER, out], { ...env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), DCGAN_DIST_TIMEOUT: '120' })))
  for (const r of ranks) t.is(r.code, 0, r.stderr)
  return out
}

// Rank 0 listens on the group's port a second after it was chosen; a port from the ephemeral range
// can be taken by any outgoing connection in between (other groups' Gloo sockets: EADDRINUSE).
test('a local group\'s port is free and below the ports outgoing connections take', async (t) => {
  const start = ephemeralRangeStart()
  t.is(start, Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]))
  for (const port of await Promise.all(Array.from({ length: 8 }, () => freePort()))) {
    t.true(port >= 10000 && port < start, `port ${port}, ephemeral ports from ${start}`)
    await t.notThrowsAsync(new Promise<void>((resolve, reject) => {
      const server = createServer().on('error', reject)
      server.listen(port, '127.0.0.1', () => server.close(() => resolve()))
    }))
  }
})

test("two Gloo ranks after 3 steps equal PyTorch DDP's two ranks (weights, buffers, losses)", async (t) => {
  const out = await parityRanks(t)
  const f = await loadFixture('ddp32')
  // Rank 0: everything, BatchNorm running statistics included (DDP's broadcast source).
  t.deepEqual(stateDifferences(await networkState(join(out, 'rank0.safetensors')), await networkState(f.path('after3.safetensors')), TOL), [])
  // The logged numbers are the two ranks' means (each DDP rank's are its own shard's).
  const rank1Stats = (await readSafetensors(f.path('after3.rank1.safetensors'))).tensors
  const expected = [1, 2, 3].flatMap((s) => Array.from(f.io.get(`stats.${s}`)!.data, (v, i) => (v + rank1Stats.get(`stats.${s}`)!.data[i]) / 2))
  for (const rank of [0, 1]) {
    const stats = JSON.parse((await readSafetensors(join(out, `rank${rank}.safetensors`))).metadata.stats) as number[]
    t.true(maxAbsDiff(stats, expected) <= TOL, `rank ${rank}'s numbers ${stats} vs the mean of DDP's ranks ${expected}`)
  }
  // Rank 1: the same weights (averaged gradients) and G's buffers; D's running statistics are each
  // rank's own under DDP (broadcast_buffers=False for D, see the fixture script) and rank 0's here.
  const rank1 = await networkState(join(out, 'rank1.safetensors'))
  const ddp1 = await networkState(f.path('after3.rank1.safetensors'))
  const comparable = (m: Map<string, unknown>) => new Map([...m].filter(([k]) => !(k.startsWith('disc.') && k.includes('running_'))))
  t.deepEqual(stateDifferences(comparable(rank1) as typeof rank1, comparable(ddp1) as typeof ddp1, TOL), [])
})

test('with synchronised BatchNorm, two ranks after 3 steps equal one PyTorch process on the global batches', async (t) => {
  const out = await parityRanks(t, { SYNC_BN: '1' })
  const f = await loadFixture('ddp32')
  const global = await networkState(f.path('after3.global.safetensors'))
  // Both ranks hold the one-process state, BatchNorm running statistics included (the global batch's).
  for (const rank of [0, 1]) t.deepEqual(stateDifferences(await networkState(join(out, `rank${rank}.safetensors`)), global, TOL), [], `rank ${rank}`)
  // Both ranks report the global batch's numbers: the one process's.
  const { tensors } = await readSafetensors(f.path('after3.global.safetensors'))
  const expected = [1, 2, 3].flatMap((s) => Array.from(tensors.get(`global.stats.${s}`)!.data as Float32Array))
  for (const rank of [0, 1]) {
    const stats = JSON.parse((await readSafetensors(join(out, `rank${rank}.safetensors`))).metadata.stats) as number[]
    t.true(maxAbsDiff(stats, expected) <= TOL, `rank ${rank}'s numbers ${stats} vs one process ${expected}`)
  }
  // Without it (DDP's default) the same run ends elsewhere: the check above tells the two apart.
  const ddp = await networkState(f.path('after3.safetensors'))
  t.true(stateDifferences(ddp, global, 1e-3).length > 0, 'DDP and one process agree: the fixture cannot tell synchronised BatchNorm from per-rank BatchNorm')
})

test('synchronised BatchNorm is refused outside a data-parallel run, with the R1 penalty and in bf16, each by name', async (t) => {
  const alone = await dcgan('train', ...TINY, '--steps', '1', '--sync-batch-norm', '--out', join(tmp(), 'run'))
  t.is(alone.code, 1)
  t.regex(alone.stderr, /^dcgan: --sync-batch-norm applies to a data-parallel run: add --nproc N/m)
  for (const [flags, message] of [[['--r1-gamma', '1'], /invalid distributed\.syncBatchNorm: cannot be combined with the R1 penalty/], [['--precision', 'bf16'], /invalid distributed\.syncBatchNorm: runs in fp32 only/]] as const) {
    const r = await dcgan('train', '--nproc', '2', ...TINY, ...flags, '--steps', '1', '--sync-batch-norm', '--dist-timeout', '30', '--out', join(tmp(), 'run'))
    t.is(r.code, 1)
    t.regex(r.stderr, message)
  }
})

test('a run on 2 processes resumes on 1 and on 2, rank 0 alone writes, and the data position is the one-process run\'s', async (t) => {
  const dir = join(tmp(), 'run')
  const two = await dcgan('train', '--nproc', '2', ...TINY, '--steps', '4', '--out', dir)
  t.is(two.code, 0, two.stderr)
  t.deepEqual(listCheckpoints(dir).map((c) => c.step), [4])
  const one = await dcgan('train', '--resume', dir, '--steps', '6')
  t.is(one.code, 0, one.stderr)
  const again = await dcgan('train', '--nproc', '2', '--resume', dir, '--steps', '8')
  t.is(again.code, 0, again.stderr)
  t.deepEqual(listCheckpoints(dir).map((c) => c.step), [4, 6, 8])
  // One metrics row per step: no rank but 0 wrote.
  const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)
  t.deepEqual(rows, [1, 2, 3, 4, 5, 6, 7, 8])
  // The global batch is the config's: 2 ranks read the data order exactly as 1 process does.
  const straight = join(tmp(), 'run')
  t.is((await dcgan('train', ...TINY, '--steps', '8', '--out', straight)).code, 0)
  const data = (d: string) => (readCheckpointInfo(listCheckpoints(d).at(-1)!.path).trainer as { data: unknown }).data
  t.deepEqual(data(dir), data(straight))
  t.deepEqual(data(dir), { epoch: 1, position: 24 }) // 40 images, batches of 8: 5 per epoch
  t.is((await DCGAN.load(listCheckpoints(dir).at(-1)!.path)).config.stepsDone, 8)
})

test('dcgan train --nproc 2 --sync-batch-norm ends where one process ends: each rank reads its own rows and the noise of its share', async (t) => {
  const two = join(tmp(), 'run')
  const one = join(tmp(), 'run')
  const r2 = await dcgan('train', '--nproc', '2', ...TINY, '--steps', '4', '--sync-batch-norm', '--out', two)
  t.is(r2.code, 0, r2.stderr)
  t.is((await dcgan('train', ...TINY, '--steps', '4', '--out', one)).code, 0)
  const last = async (d: string) => networkState(listCheckpoints(d).at(-1)!.path)
  t.deepEqual(stateDifferences(await last(two), await last(one), TOL), [])
  // Rank 0 logs the global batch's numbers, here the one process's.
  const numbers = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).flatMap((r) => [r.lossD, r.lossG, r.dReal, r.dFake, r.dFakeAfter])
  t.true(maxAbsDiff(numbers(two), numbers(one)) <= TOL, `2 ranks ${numbers(two)} vs 1 process ${numbers(one)}`)
})

test('killing one rank ends the run with a clear error, and the last checkpoint loads', async (t) => {
  const dir = join(tmp(), 'run')
  let launcher = 0
  const ended = run([CLI, 'train', '--nproc', '2', ...TINY, '--steps', '1000000', '--checkpoint-every', '2', '--dist-timeout', '30', '--out', dir], {}, (pid) => (launcher = pid))
  t.teardown(() => {
    for (const p of ranks()) process.kill(p, 'SIGKILL') // only if the test failed before the end
  })
  const started = Date.now()
  // Wait for a checkpoint, then kill rank 1 (found by its RANK among the launcher's children).
  const ranks = () => {
    const ps = spawnSync('ps', ['-o', 'pid=', '--ppid', String(launcher)], { encoding: 'utf8' }).stdout
    return ps.split('\n').map((l) => Number(l.trim())).filter((p) => p > 0)
  }
  while (listCheckpoints(dir).length === 0 && Date.now() - started < 180_000) await new Promise((r) => setTimeout(r, 200))
  t.true(listCheckpoints(dir).length > 0, 'no checkpoint within 180 s')
  const rank1 = ranks().find((p) => readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes('RANK=1'))
  t.truthy(rank1, 'rank 1 not found')
  process.kill(rank1!, 'SIGKILL')
  const killedAt = Date.now()
  const r = await ended
  t.true(Date.now() - killedAt < 60_000, 'the run did not stop within 60 s of the kill')
  t.is(r.code, 1)
  t.regex(r.stderr, new RegExp(`dcgan: distributed training failed: rank 1 \\(pid ${rank1}\\) was killed by SIGKILL`))
  t.regex(r.stderr, /rank 0 of 2: the .* failed: .*Another rank has stopped/)
  const last = listCheckpoints(dir).at(-1)!
  const gan = await DCGAN.load(last.path)
  t.is(gan.config.stepsDone, last.step)
  t.true(existsSync(join(dir, 'metrics.jsonl')))
})

/** Starts the two ranks of distributed-fail-worker.ts and collects each one's JSON report (its
 * process stays alive after its error, as a Node service would); kills both once both reported. */
async function failureReports(fail: 'callback' | 'data' | 'range' | 'exhaust' | 'odd' | 'short' | 'end' | 'exists', dir: string): Promise<Array<Record<string, any>>> {
  const port = await freePort()
  const env = { WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), DCGAN_DIST_TIMEOUT: '120' }
  const children = [0, 1].map((rank) => spawn(process.execPath, ['--import', 'tsx', FAIL_WORKER, dir, fail], { env: { ...process.env, ...env, RANK: String(rank) }, stdio: ['ignore', 'pipe', 'pipe'] }))
  try {
    return await Promise.all(children.map((child) => new Promise<Record<string, any>>((resolve, reject) => {
      let out = ''
      let err = ''
      child.stderr!.on('data', (d) => (err += d))
      child.stdout!.on('data', (d) => {
        out += d
        const line = out.split('\n').find((l) => l.startsWith('{'))
        if (line) resolve(JSON.parse(line))
      })
      child.on('exit', (code) => reject(new Error(`a rank exited (${code}) without a report: ${err}`)))
    })))
  } finally {
    for (const c of children) c.kill('SIGKILL')
  }
}

test('a rank that fails outside a step, refuses its shard of a batch or runs out of data stops the other at once, not at the timeout; rank 0 keeps the completed steps', async (t) => {
  // Rank 0's callback throws after step 2: rank 1, alive, stops at its next vote.
  const first = join(tmp(), 'run')
  const [r0, r1] = await failureReports('callback', first)
  t.is(r0.message, 'a callback failed after step 2')
  t.is(r1.name, 'PeerFailedError')
  t.is(r1.code, 'ERR_DCGAN_DISTRIBUTED')
  t.regex(r1.message, /^rank 1 of 2: rank 0 stopped with an error \(its output says which\)/)
  t.true(r1.seconds < 60, `rank 1 waited ${r1.seconds} s: the timeout (120 s), not the vote, stopped it`)
  // Rank 1's dataset throws on its third batch: rank 0 stops too, after checkpointing step 2.
  const second = join(tmp(), 'run')
  const [s0, s1] = await failureReports('data', second)
  t.is(s1.message, 'rank 1 could not read its third batch')
  t.is(s0.name, 'PeerFailedError')
  t.regex(s0.message, /^rank 0 of 2: rank 1 stopped with an error/)
  t.true(s0.seconds < 60, `rank 0 waited ${s0.seconds} s`)
  t.deepEqual(listCheckpoints(second).map((c) => c.step), [2])
  t.is((await DCGAN.load(listCheckpoints(second)[0].path)).config.stepsDone, 2)
  // A batch that only rank 1's shard makes invalid: both ranks refuse the step, before any exchange.
  const [q0, q1] = await failureReports('range', join(tmp(), 'run'))
  t.regex(q1.message, /^the real batch: value \d+ is 3; images must be scaled to \[−1, 1\]/)
  t.is(q0.code, 'ERR_DCGAN_DISTRIBUTED')
  t.regex(q0.message, /^rank 0 of 2: rank 1 refused its part of the batch/)
  t.true(q0.seconds < 60)
  // Rank 1's (iterable) dataset ends after two batches: both ranks stop after step 2, not in error.
  const ended = join(tmp(), 'run')
  const [e0, e1] = await failureReports('exhaust', ended)
  t.deepEqual([e0.result?.reason, e0.result?.steps, e1.result?.reason, e1.result?.steps], ['aborted', 2, 'exhausted', 2])
  t.deepEqual(listCheckpoints(ended).map((c) => c.step), [2])
  // A batch that cannot be split, or whose data does not fill its shape, on rank 1 only.
  for (const fail of ['odd', 'short'] as const) {
    const [b0, b1] = await failureReports(fail, join(tmp(), 'run'))
    t.is(b1.code, 'ERR_DCGAN_INVALID_INPUT', `${fail}: ${b1.message}`)
    t.is(b0.name, 'PeerFailedError', `${fail}: ${b0.message}`)
    t.true(b0.seconds < 60, `${fail}: rank 0 waited ${b0.seconds} s`)
  }
  // After the last step: rank 0's final checkpoint fails; rank 1 does not wait in the final barrier.
  const [z0, z1] = await failureReports('end', join(tmp(), 'run'))
  t.is(z0.message, 'the last checkpoint failed')
  t.regex(z1.message, /^rank 1 of 2: rank 0 stopped with an error/)
  t.true(z1.seconds < 60, `rank 1 waited ${z1.seconds} s`)
  // Before the first step: rank 0 refuses a folder that holds a run; rank 1 learns it at once.
  const taken = join(tmp(), 'run')
  mkdirSync(taken, { recursive: true })
  writeFileSync(join(taken, 'metrics.jsonl'), '{"step":1}\n')
  const [x0, x1] = await failureReports('exists', taken)
  t.is(x0.code, 'ERR_DCGAN_RUN_EXISTS')
  t.is(x1.name, 'PeerFailedError')
  t.true(x1.seconds < 60, `rank 1 waited ${x1.seconds} s`)
})

/**
 * `dcgan train --nproc 2` until stopped (in a process group of its own when `detached`), once it
 * has logged 3 steps: its two ranks' pids and what it printed so far. The teardown kills whatever
 * is left, should the test fail first.
 */
async function launchedRun(t: ExecutionContext, detached: boolean) {
  const dir = join(tmp(), 'run')
  const child = spawn(process.execPath, [CLI, 'train', '--nproc', '2', ...TINY, '--steps', '1000000', '--checkpoint-every', '1000000', '--dist-timeout', '60', '--out', dir],
    { detached, stdio: ['ignore', 'ignore', 'pipe'] })
  const out = { stderr: '' }
  child.stderr.on('data', (d) => (out.stderr += d))
  const ended = new Promise<Exit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr: out.stderr })))
  let ranks: number[] = []
  t.teardown(() => {
    for (const pid of [...(detached ? [-child.pid!] : []), ...ranks]) {
      try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
    }
  })
  const metrics = join(dir, 'metrics.jsonl')
  const rows = () => (existsSync(metrics) ? readFileSync(metrics, 'utf8').trim().split('\n').filter(Boolean).length : 0)
  const since = Date.now()
  while (rows() < 3 && Date.now() - since < 180_000) await new Promise((r) => setTimeout(r, 100))
  t.true(rows() >= 3, `fewer than 3 steps within 180 s: ${out.stderr}`)
  ranks = spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' }).stdout.split('\n').map((l) => Number(l.trim())).filter((p) => p > 0)
  t.is(ranks.length, 2)
  return { dir, child, out, ended, ranks, metrics, rows }
}

/** The processes of `pids` still running (not zombies). */
const running = (pids: number[]) => pids.filter((pid) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')))

for (const [how, signal, toGroup] of [['Ctrl-C at a terminal', 'SIGINT', true], ['SIGTERM to the launcher alone (docker stop, kill PID)', 'SIGTERM', false]] as const) {
  test(`${how} stops every rank after the same step: rank 0 checkpoints it, the launcher exits 0`, async (t) => {
    // A terminal's Ctrl-C signals the whole foreground process group; `kill PID` the launcher only.
    const { dir, child, ended, ranks, metrics } = await launchedRun(t, true)
    process.kill(toGroup ? -child.pid! : child.pid!, signal)
    const r = await ended
    t.is(r.code, 0, r.stderr)
    t.regex(r.stderr, /interrupted.*: finishing the current step/)
    const done = /aborted after (\d+) steps/.exec(r.stderr)
    t.truthy(done, r.stderr)
    const steps = Number(done![1])
    t.regex(r.stderr, new RegExp(`continue with: dcgan train --resume ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    // One checkpoint, at the step where both ranks stopped, and one metrics row per step up to it.
    t.deepEqual(listCheckpoints(dir).map((c) => c.step), [steps])
    t.deepEqual(readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step), Array.from({ length: steps }, (_, i) => i + 1))
    t.is((await DCGAN.load(listCheckpoints(dir)[0].path)).config.stepsDone, steps)
    // No rank outlives the launcher.
    t.deepEqual(running(ranks), [], 'ranks left running')
  })
}

test('ranks whose launcher is killed outright (SIGKILL: nothing forwarded) stop after a step, rank 0 checkpointing it', async (t) => {
  const { dir, child, out, ranks, rows } = await launchedRun(t, false)
  child.kill('SIGKILL')
  const killedAt = Date.now()
  while (running(ranks).length > 0 && Date.now() - killedAt < 60_000) await new Promise((r) => setTimeout(r, 100))
  t.deepEqual(running(ranks), [], 'ranks still running 60 s after their launcher was killed')
  t.regex(out.stderr, /the launcher is gone: finishing the current step and writing a checkpoint/)
  const steps = rows()
  t.deepEqual(listCheckpoints(dir).map((c) => c.step), [steps])
  t.is((await DCGAN.load(listCheckpoints(dir)[0].path)).config.stepsDone, steps)
})

test('local rank N trains on GPU N with CUDA and on the CPU without; a bad LOCAL_RANK is refused by name', async (t) => {
  t.is(rankDevice('cuda', 1, true), 'cuda:1')
  t.is(rankDevice('cuda', '2', false), 'cuda:2') // asked for CUDA: a machine without it says so when the model is built
  t.is(rankDevice('auto', 3, true), 'cuda:3')
  t.is(rankDevice('auto', 3, false), 'cpu')
  t.is(rankDevice('cpu', 1, true), 'cpu')
  t.is(rankDevice('cuda:0', 1, true), 'cuda:0')
  const port = await freePort()
  const r = await run([CLI, 'train', ...TINY, '--steps', '1', '--out', join(tmp(), 'run')], { WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), LOCAL_RANK: 'first' })
  t.is(r.code, 1)
  t.regex(r.stderr, /^dcgan: invalid LOCAL_RANK: got 'first'; allowed: a non-negative integer/m)
})

test('a wrong MASTER_ADDR or MASTER_PORT fails within the timeout with a message that names them', async (t) => {
  const port = await freePort() // nobody listens there
  for (const addr of ['127.0.0.1', 'no-such-host.invalid']) {
    const env = { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: addr, MASTER_PORT: String(port), DCGAN_DIST_TIMEOUT: '3' }
    const started = Date.now()
    const r = await run([CLI, 'train', ...TINY, '--steps', '2', '--out', join(tmp(), 'run')], env)
    t.is(r.code, 1, r.stderr)
    t.regex(r.stderr, new RegExp(`^dcgan: rank 1 of 2 could not join the group at ${addr.replace(/\./g, '\\.')}:${port} within 3 s: .*Check MASTER_ADDR and MASTER_PORT`, 'm'))
    t.true(Date.now() - started < 60_000)
  }
  const bad = await run([CLI, 'train', ...TINY, '--steps', '2', '--out', join(tmp(), 'run')], { RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) })
  t.regex(bad.stderr, /^dcgan: invalid distributed\.rank: got 2; allowed: .*1/m)
})
