// The GPU check (benchmark/gpu/) runs rarely and on borrowed time: staged and run here on the CPU,
// every one of its correctness checks must pass, so that a change to the library cannot break it
// unseen before its next GPU run.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { IN_CI, testNeeding, torchPython } from './helpers'

const ROOT = join(__dirname, '..')
const run = promisify(execFile)

const python = torchPython()
const need = {
  met: python !== null,
  required: IN_CI,
  reason: 'no Python with torch is configured (.dcgan-env.json names none: a LIBTORCH install); the GPU check runs PyTorch beside ours',
}

interface Row { side: string; batch: number; medianStepMs?: number }

testNeeding('the GPU check, staged by prepare.sh and run on the CPU, passes every check it makes and times each side', need, async (t) => {
  const stage = join(mkdtempSync(join(tmpdir(), 'dcgan-gpu-check-')), 'gpu-check')
  const out = mkdtempSync(join(tmpdir(), 'dcgan-gpu-check-out-'))
  await run(join(ROOT, 'benchmark/gpu/prepare.sh'), [stage], { cwd: ROOT, maxBuffer: 64 << 20 })
  // The stage travels to the GPU machine as it is: files only (a link could point anywhere there).
  const { stdout: links } = await run('find', [stage, '-type', 'l'])
  t.is(links.trim(), '')

  const args = ['--python', python!, '--device', 'cpu', '--quick', '--ours', 'ours,ours+deferred', '--variants', 'tuned', '--batches', '32', '--out', out]
  const result = await run(join(stage, 'check.sh'), args, { cwd: ROOT, maxBuffer: 64 << 20 }).catch((e: { code: number; stdout: string; stderr: string }) => e)
  const files = readdirSync(out).filter((f) => f.startsWith('gpu-check-') && f.endsWith('.json'))
  t.is(files.length, 1, result.stderr.slice(-2000))
  const report = JSON.parse(readFileSync(join(out, files[0]), 'utf8'))
  t.is('code' in result ? result.code : 0, 0, result.stdout.slice(-3000))
  t.true(report.complete)

  const parity = report.parity as Record<string, { pass?: boolean }>
  t.deepEqual(Object.keys(parity).sort(), ['strict', 'strict, dSteps 2', 'strict, deferred numbers', 'strict, spectral norm'])
  for (const [name, r] of Object.entries(parity)) t.true(r.pass, `parity (${name}): ${JSON.stringify(r)}`)
  t.true(report.bf16Parity.pass, JSON.stringify(report.bf16Parity).slice(0, 2000))
  t.deepEqual(report.bf16Parity.ours.fixtures.map((f: { fixture: string }) => f.fixture), ['seed64', 'wide32'])
  t.true(report.roundtrip.pass, JSON.stringify(report.roundtrip))
  t.true(report.roundtrip.checks.savedLoadedSavedSame && report.roundtrip.checks.onnxSameAsHostCopy)
  for (const name of ['DDP', 'SyncBatchNorm']) t.true(report.distributed[name]?.pass, `${name}: ${JSON.stringify(report.distributed[name])}`)
  t.true(report.node.pass, JSON.stringify(report.node).slice(0, 2000))
  t.is(report.node.trainer.graphReplays, null) // no CUDA graph on the CPU

  // The targets' verdicts, from those rows: ours against PyTorch's fastest and eager loops.
  const fp32 = report.targets['32'].fp32
  t.like(fp32, { fastestPyTorch: 'tuned' })
  t.true(['ours', 'ours+deferred'].includes(fp32.ours))
  t.is(fp32.vsEagerTuned, fp32.vsFastest)
  t.is(fp32.vsFastestMet, fp32.vsFastest >= 1.2)

  const timed = (report.runs as Row[]).filter((r) => (r.medianStepMs ?? 0) > 0).map((r) => `${r.side}@${r.batch}`).sort()
  t.deepEqual(timed, ['node+host-batch+deferred@32', 'node+host-batch@32', 'ours+deferred@32', 'ours@32', 'tuned@32'])
})
