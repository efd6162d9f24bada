// Data-parallel training (DistributedDataParallel's semantics on libtorch's c10d, Gloo backend):
// joining a group, the shard of each batch a rank trains on, and `dcgan train --nproc N`'s
// supervisor of local worker processes.
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { DeviceSpec } from './config'
import type { Batch, Shard } from './datasets'
import type { DCGAN, StepResult } from './dcgan'
import { DcganError, ErrorCode } from './errors'
import * as native from './native'
import { toOptionsJson } from './options'
import { asFloat32 } from './values'

/**
 * This process's place in a data-parallel run: torchrun's variables. Rank 0 hosts the rendezvous
 * store at `masterAddr:masterPort`; every rank must be able to reach it.
 */
export interface DistributedOptions {
  /** This process's rank, 0 ≤ rank < worldSize (`RANK`). */
  rank: number
  /** Number of processes (`WORLD_SIZE`). */
  worldSize: number
  /** Host or IP address of rank 0 (`MASTER_ADDR`). */
  masterAddr: string
  /** A free port on rank 0's host (`MASTER_PORT`). */
  masterPort: number
  /** Seconds to wait for the other ranks to join, and for each exchange with them: a rank that died or hangs
   * stops the others with `ERR_DCGAN_DISTRIBUTED` after this long at most. Default 300. */
  timeout?: number
  /** BatchNorm normalises with the statistics of the whole global batch, all ranks' shards
   * together (torch.nn.SyncBatchNorm), instead of each rank's own shard (DDP's default): training
   * then computes what one process computes on the global batch, at the cost of two small
   * exchanges per BatchNorm layer and step. Not with `r1Gamma` or `precision: 'bf16'`. Default false. */
  syncBatchNorm?: boolean
}

/**
 * The group torchrun (or Slurm, Kubernetes…) describes in the environment: `RANK`, `WORLD_SIZE`,
 * `MASTER_ADDR`, `MASTER_PORT` (and `DCGAN_DIST_TIMEOUT` seconds); null when `WORLD_SIZE` is unset.
 */
export function distributedFromEnv(env: NodeJS.ProcessEnv = process.env): DistributedOptions | null {
  if (env.WORLD_SIZE === undefined) return null
  const need = (name: string): string => {
    const v = env[name]
    if (v === undefined || v === '') throw new DcganError(ErrorCode.INVALID_OPTION, `WORLD_SIZE is set but ${name} is not: a distributed run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT`)
    return v
  }
  const int = (name: string): number => {
    const v = need(name)
    const n = Number(v)
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new DcganError(ErrorCode.INVALID_OPTION, `invalid ${name}: got '${v}'; allowed: a non-negative integer`)
    return n
  }
  const timeout = env.DCGAN_DIST_TIMEOUT === undefined ? undefined : Number(env.DCGAN_DIST_TIMEOUT)
  return { rank: int('RANK'), worldSize: int('WORLD_SIZE'), masterAddr: need('MASTER_ADDR'), masterPort: int('MASTER_PORT'), ...(timeout === undefined ? {} : { timeout }) }
}

/**
 * The device of one local rank, as torchrun's convention has it: with CUDA, rank `localRank` of a
 * machine uses GPU `localRank` (`'cuda'` → `'cuda:1'` for local rank 1; `'auto'` likewise when
 * `hasCuda`, the CPU otherwise); a device with an index, or the CPU, is kept as given.
 */
export function rankDevice(device: DeviceSpec, localRank: number | string, hasCuda: boolean): DeviceSpec {
  const n = typeof localRank === 'number' ? localRank : /^\s*\d+\s*$/.test(localRank) ? Number(localRank) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new DcganError(ErrorCode.INVALID_OPTION, `invalid LOCAL_RANK: got '${localRank}'; allowed: a non-negative integer`)
  }
  if (device === 'cuda' || (device === 'auto' && hasCuda)) return `cuda:${n}`
  return device === 'auto' ? 'cpu' : device
}

/** A joined group, as `Trainer.fit` uses it. */
export class DistributedRun {
  private constructor(
    /** The group this process joined, and its place in it. */
    readonly options: DistributedOptions,
    private readonly gan: DCGAN,
  ) {}

  /** Joins the group (waits for every rank) and copies rank 0's model state to every rank. */
  static async join(options: DistributedOptions, gan: DCGAN, batchSize: number): Promise<DistributedRun> {
    const { worldSize } = options
    if (Number.isInteger(worldSize) && worldSize > 0 && batchSize % worldSize !== 0) {
      throw new DcganError(ErrorCode.INVALID_OPTION, `invalid batchSize: got ${batchSize}, which ${worldSize} processes cannot share evenly; batchSize is the global batch, split across ranks: give a multiple of ${worldSize}`)
    }
    await native.initDistributed(toOptionsJson(options, 'the distributed options'))
    await native.distributedSync(gan.native)
    return new DistributedRun(options, gan)
  }

  /** Rank 0 alone writes the run folder: config, metrics, samples, checkpoints, report. */
  get writes(): boolean {
    return this.options.rank === 0
  }

  /** This rank's part of a global batch: rows [rank·n/world, (rank+1)·n/world). Every rank reads the same
   * seeded order, so the parts are disjoint and together cover each epoch once. A batch that already is
   * this rank's part (from a dataset opened with its `shard`) is returned as it is. */
  shard(batch: Batch): Batch {
    const { rank, worldSize } = this.options
    if (batch.shard) {
      if (batch.shard.rank !== rank || batch.shard.worldSize !== worldSize) {
        throw new DcganError(ErrorCode.INVALID_INPUT, `the batch is rank ${batch.shard.rank} of ${batch.shard.worldSize}'s part (its dataset was opened with that shard), but this is rank ${rank} of ${worldSize}`)
      }
      return batch // already this rank's rows: its loader decoded only them
    }
    const [n, ...rest] = batch.shape
    if (n % worldSize !== 0) {
      throw new DcganError(ErrorCode.INVALID_INPUT, `a batch of ${n} images cannot be split evenly across ${worldSize} processes (the last batch of an iterable dataset?)`)
    }
    const rows = n / worldSize
    const size = rest.reduce((a, b) => a * b, 1)
    const data = batch.data.subarray(rank * rows * size, (rank + 1) * rows * size)
    return { ...batch, data, shape: [rows, ...rest] }
  }

  /** This rank in a dataset's batch options: its loader then decodes only its own rows. */
  get shardOptions(): Shard {
    return { rank: this.options.rank, worldSize: this.options.worldSize }
  }

  /**
   * One training step on this rank's part of `batch`, after the vote every rank casts at the
   * start of each step (one exchange, which also brings rank 0's BatchNorm running statistics):
   * null, with no step taken on any rank, when some rank asks to stop (`stop`: its signal
   * aborted), so that all stop after the same step. Throws {@link PeerFailedError} when another
   * rank failed outside a step (it called {@link abandon}), so that this one stops now instead of
   * at the timeout.
   */
  async step(batch: Batch, stop: boolean): Promise<StepResult | null> {
    let call: Promise<native.GroupStepResult>
    try {
      const { data, shape } = this.shard(batch)
      call = this.gan.native.trainStepInGroup(asFloat32(data, 'real'), shape, stop)
    } catch (e) {
      await this.abandon() // this rank cannot take part in the step: the others learn it at its vote
      throw e
    }
    const result = await call
    this.#throwFor(result)
    return result.stats ?? null
  }

  #throwFor(verdict: { failed: number[]; refused: number[] }): void {
    if (verdict.failed.length > 0) throw new PeerFailedError(this.options, verdict.failed)
    if (verdict.refused.length > 0) throw new PeerFailedError(this.options, verdict.refused, 'refused')
  }

  /** The vote of a rank without a batch to train on (its dataset ran out: `stop`), paired with the
   * others' {@link step}; true when any rank stops. Throws {@link PeerFailedError} like `step`. */
  async vote(stop: boolean): Promise<boolean> {
    const verdict = await native.distributedVote(this.gan.native, stop, false)
    this.#throwFor(verdict)
    return verdict.stop
  }

  /** This rank failed outside a step: the others learn it at their next vote. Its own failure to
   * reach them (they are gone too) is not reported: the caller throws the error that matters. */
  async abandon(): Promise<void> {
    await native.distributedVote(this.gan.native, false, true).catch(() => undefined)
  }

  /** Waits for every rank, then leaves the group. */
  async finish(): Promise<void> {
    await native.shutdownDistributed()
  }
}

/** Another rank of the group failed (`code` `ERR_DCGAN_DISTRIBUTED`): its own output says why. */
export class PeerFailedError extends DcganError {
  /** The ranks that failed. */
  readonly ranks: number[]
  /** 'failed': they failed outside a step; 'refused': their shard of the batch failed the step's checks. */
  readonly how: 'failed' | 'refused'

  constructor(options: DistributedOptions, ranks: number[], how: 'failed' | 'refused' = 'failed') {
    const names = ranks.length === 1 ? `rank ${ranks[0]}` : `ranks ${ranks.slice(0, -1).join(', ')} and ${ranks[ranks.length - 1]}`
    const its = ranks.length === 1 ? 'its' : 'their'
    const what = how === 'failed' ? `stopped with an error (${its} output says which)` : `refused ${its} part of the batch (${its} output says why)`
    super(ErrorCode.DISTRIBUTED, `rank ${options.rank} of ${options.worldSize}: ${names} ${what}; every rank stops after the last completed step`)
    this.name = 'PeerFailedError'
    this.ranks = ranks
    this.how = how
  }
}

/**
 * A TCP port that was free a moment ago on this machine, for a local group's store. Rank 0 listens
 * on it about a second later, after loading libtorch; a port from the system's ephemeral range
 * (what listening on port 0 gives) can be taken in that second by any outgoing connection, such as
 * another group's Gloo sockets, and rank 0 then fails with EADDRINUSE. So it is a random port
 * between 10000 and the start of that range (Linux's ip_local_port_range), which outgoing
 * connections never take; the system's choice only where no such port is free.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralRangeStart()
  for (let attempt = 0; attempt < 32 && below > FIXED_PORTS_FROM + 1; attempt++) {
    const port = FIXED_PORTS_FROM + Math.floor(Math.random() * (below - FIXED_PORTS_FROM))
    if ((await listenOnce(port)) !== undefined) return port
  }
  const port = await listenOnce(0)
  if (port === undefined) throw new Error('no free TCP port on 127.0.0.1')
  return port
}

/** Where freePort's own choices start: above the ports that services commonly take. */
const FIXED_PORTS_FROM = 10000

/** The first port the system hands to outgoing connections (32768 where it cannot be read). */
export function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 0 && low <= 65535 ? low : 32768
  } catch {
    return 32768
  }
}

/** Listens on `port` of 127.0.0.1 and closes again: the port it got, or undefined when it was taken. */
function listenOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.on('error', () => resolve(undefined))
    server.listen(port, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined))
    })
  })
}

/** How a local launch ended. */
export interface LaunchResult {
  /** 0 when every rank succeeded. */
  code: number
  /** One line per rank that failed, first failure first. */
  failures: string[]
}

/** Options of {@link launchLocal}. */
export interface LaunchOptions {
  /** Seconds a rank waits for the others (`DCGAN_DIST_TIMEOUT` in their environment). */
  timeout?: number
  /** Seconds the other ranks get to stop on their own after one failed. Default timeout + 10. */
  graceSeconds?: number
  /** Added to the ranks' environment. */
  env?: NodeJS.ProcessEnv
  /**
   * Signals the launcher passes on to every rank, so that one sent to the launcher alone
   * (`docker stop`, `kill PID`) reaches the ranks as one sent to the whole process group (a
   * terminal's Ctrl-C, systemd, Slurm) does. The latter then reaches a rank twice within
   * milliseconds: the ranks must take a repeat that close as the same signal (the CLI's ranks do).
   * A rank that ends by a forwarded SIGHUP (the CLI's way out once its checkpoint is written when
   * the terminal is gone) has not failed. The ranks also get an IPC channel to the launcher,
   * whose 'disconnect' tells them the launcher is gone (killed with SIGKILL, say: nothing was
   * forwarded). Default none.
   */
  forwardSignals?: readonly NodeJS.Signals[]
}

/**
 * Starts `nproc` copies of `node script ...args` as ranks 0…nproc−1 of a group on this machine
 * (torchrun's variables in their environment; output passed through) and supervises them: when
 * one fails, the others get `graceSeconds` to stop on their own (they see the failure as an
 * `ERR_DCGAN_DISTRIBUTED` error) and are then killed, so a launch never hangs on a dead rank.
 */
export async function launchLocal(nproc: number, script: string, args: string[], options: LaunchOptions = {}): Promise<LaunchResult> {
  if (!Number.isInteger(nproc) || nproc < 1 || nproc > 1024) throw new DcganError(ErrorCode.INVALID_OPTION, `invalid nproc: got ${nproc}; allowed: an integer from 1 to 1024`)
  const port = await freePort()
  const grace = (options.graceSeconds ?? (options.timeout ?? 300) + 10) * 1000
  const children: ChildProcess[] = []
  const failures: string[] = []
  let killTimer: NodeJS.Timeout | undefined
  const forward = options.forwardSignals ?? []
  const forwarded = new Set<NodeJS.Signals>()
  const pass = (signal: NodeJS.Signals) => {
    forwarded.add(signal)
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal)
  }
  for (const signal of forward) process.on(signal, pass)
  try {
    const exits = Array.from({ length: nproc }, (_, rank) => {
      const env = {
        ...process.env, ...options.env,
        RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(nproc), LOCAL_WORLD_SIZE: String(nproc),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
        ...(options.timeout === undefined ? {} : { DCGAN_DIST_TIMEOUT: String(options.timeout) }),
      }
      const stdio: StdioOptions = forward.length > 0 ? ['inherit', 'inherit', 'inherit', 'ipc'] : 'inherit'
      const child: ChildProcess = spawn(process.execPath, [...process.execArgv, script, ...args], { env, stdio })
      children.push(child)
      return new Promise<void>((resolve) => {
        child.on('error', (e) => {
          failures.push(`rank ${rank} could not start: ${e.message}`)
          resolve()
        })
        child.on('exit', (code, signal) => {
          if (code !== 0 && !(signal === 'SIGHUP' && forwarded.has('SIGHUP'))) {
            failures.push(`rank ${rank} (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`)
            // The others notice through c10d within their timeout; past the grace period they are killed.
            killTimer ??= setTimeout(() => {
              for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
            }, grace)
          }
          resolve()
        })
      })
    })
    await Promise.all(exits)
  } finally {
    for (const signal of forward) process.off(signal, pass)
  }
  if (killTimer) clearTimeout(killTimer)
  return { code: failures.length === 0 ? 0 : 1, failures }
}
