import test, { type ExecutionContext } from 'ava'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DCGAN, readSafetensors, type Tensor } from '../src/index'

export const FIXTURES = join(__dirname, 'fixtures')

/** The Python with torch that the install recorded (`.dcgan-env.json`), or null (a LIBTORCH install). */
export function torchPython(): string | null {
  const envFile = join(__dirname, '..', '.dcgan-env.json')
  if (!existsSync(envFile)) return null
  return JSON.parse(readFileSync(envFile, 'utf8')).python ?? null
}

/** Largest |a − b| over two equally long arrays; Infinity when the lengths differ. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

export interface Fixture {
  config: { zDim: number; channels: 1 | 3; featuresG: number; featuresD: number; imageSize: number; batch: number }
  io: Map<string, Tensor>
  path: (file: string) => string
}

/** Inputs and PyTorch's outputs written by benchmark/reference/make_fixtures.py. */
export async function loadFixture(name: string): Promise<Fixture> {
  const path = (file: string) => join(FIXTURES, name, file)
  const io = await readSafetensors(path('io.safetensors'))
  return { config: JSON.parse(io.metadata.config), io: io.tensors, path }
}

/** A CPU model with the fixture's shape and its initial PyTorch weights. */
export async function modelFromFixture(f: Fixture): Promise<DCGAN> {
  const { zDim, channels, featuresG, featuresD, imageSize } = f.config
  const gan = new DCGAN({ zDim, channels, featuresG, featuresD, imageSize, device: 'cpu', seed: 0 })
  await gan.loadWeights(f.path('init.safetensors'))
  return gan
}

/** Names whose values differ by more than `tol` between two state maps (and names only one has). */
export function stateDifferences(actual: Map<string, Tensor>, expected: Map<string, Tensor>, tol: number): string[] {
  const out: string[] = []
  for (const [name, e] of expected) {
    const a = actual.get(name)
    if (!a) {
      out.push(`${name}: missing`)
      continue
    }
    const d = maxAbsDiff(a.data, e.data)
    if (!(d <= tol) || a.shape.join() !== e.shape.join()) out.push(`${name}: max |diff| ${d}, shapes ${a.shape} vs ${e.shape}`)
  }
  for (const name of actual.keys()) if (!expected.has(name)) out.push(`${name}: not in PyTorch's state_dict`)
  return out
}

/** Whether this is a CI run (`.ci/run` exports CI=true), where no test may be skipped. */
export const IN_CI = !!process.env.CI && process.env.CI !== 'false'

/** What a test needs from the machine. */
export interface Need {
  /** Whether this machine has it. */
  met: boolean
  /** What is missing, and how to get it: shown in the skipped test's title or in the failure. */
  reason: string
  /** Whether it must be here: in CI, or on a machine that claims the capability. */
  required: boolean
}

/**
 * Registers a test that needs something a machine may lack. Where the need is met it is a plain
 * test; where it is required but unmet the test fails with the reason; elsewhere it is registered
 * as ava's `test.skip`, which the summary counts and lists, with the reason in its title.
 */
export function testNeeding(title: string, need: Need, fn: (t: ExecutionContext) => void | Promise<void>): void {
  if (need.met) test(title, fn)
  else if (need.required) test(title, (t) => t.fail(`cannot run here, where it must: ${need.reason}`))
  else test.skip(`${title} [skipped: ${need.reason}]`, fn)
}

/**
 * Copies the tensors of safetensors file `from` whose names `keep` accepts into a new safetensors
 * file `to`, byte for byte and without `__metadata__` (as `safetensors.torch.save_file` writes a
 * bare `state_dict`): an 8-byte little-endian header length, the JSON header, the data.
 */
export function filterSafetensors(from: string, to: string, keep: (name: string) => boolean, rename: (name: string) => string = (n) => n): string[] {
  const kept = readTensors(from).filter(([name]) => keep(name))
  writeTensors(kept.map(([name, v]) => [rename(name), v]), to)
  return kept.map(([name]) => name)
}

/** Writes the tensors of several safetensors files into one (no metadata); returns their names. */
export function mergeSafetensors(from: string[], to: string): string[] {
  return writeTensors(from.flatMap(readTensors), to)
}

type RawTensor = { dtype: string; shape: number[]; bytes: Buffer }

function readTensors(from: string): Array<[string, RawTensor]> {
  const file = readFileSync(from)
  const headerLength = Number(file.readBigUInt64LE(0))
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>
  const data = file.subarray(8 + headerLength)
  return Object.keys(header)
    .filter((name) => name !== '__metadata__')
    .map((name) => {
      const { dtype, shape, data_offsets: [begin, end] } = header[name]
      return [name, { dtype, shape, bytes: data.subarray(begin, end) }]
    })
}

function writeTensors(tensors: Array<[string, RawTensor]>, to: string): string[] {
  const out: Record<string, unknown> = {}
  const chunks: Buffer[] = []
  let offset = 0
  for (const [name, { dtype, shape, bytes }] of tensors) {
    out[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] }
    chunks.push(bytes)
    offset += bytes.length
  }
  const names = tensors.map(([name]) => name)
  let json = JSON.stringify(out)
  json += ' '.repeat((8 - (json.length % 8)) % 8)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  writeFileSync(to, Buffer.concat([length, Buffer.from(json), ...chunks]))
  return names
}
