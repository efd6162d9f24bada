#!/usr/bin/env node
// `npm run bench:scaling -- --nproc 1,2`: data-parallel scaling on this machine's CPU. For each
// process count N, N ranks (1 libtorch thread each, Gloo on 127.0.0.1) train on shares of one
// global batch: this library (benchmark/dist-worker-ours.mjs) and PyTorch's
// DistributedDataParallel (benchmark/reference/ddp_bench_worker.py), one after the other. Reports
// images/s (global batch / median step time) and scaling efficiency (images/s at N / (N × images/s
// at 1)); writes benchmark/results/NAME.{md,json} (default scaling-nproc-DATE). --sync-bn adds our
// step with synchronised BatchNorm (PyTorch's SyncBatchNorm runs on GPUs only: no CPU counterpart).
//   npm run bench:scaling -- --nproc 1,2 [--batch 64] [--image-size 32] [--features 16] [--steps 10] [--sync-bn] [--name NAME]
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, hostname, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT, resolveTorch, torchEnv } from '../scripts/torch-env.mjs'

const { values: args } = parseArgs({
  options: {
    nproc: { type: 'string', default: '1,2' },
    batch: { type: 'string', default: '64' },
    'image-size': { type: 'string', default: '32' },
    features: { type: 'string', default: '16' },
    steps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
    'sync-bn': { type: 'boolean', default: false },
    name: { type: 'string' },
  },
})
const counts = args.nproc.split(',').map(Number)
if (!counts.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`--nproc: a list of process counts, got '${args.nproc}'`)
const torch = resolveTorch({ install: false })
const env = torchEnv(torch)

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** Runs `cmd argv` as ranks 0…n−1; resolves with rank 0's JSON line. */
async function group(n, cmd, argv) {
  const port = await freePort()
  const ranks = Array.from({ length: n }, (_, rank) => new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const child = spawn(cmd, argv, { cwd: ROOT, env: { ...env, RANK: String(rank), WORLD_SIZE: String(n), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: args.threads } })
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => (code === 0 ? resolve(rank === 0 ? JSON.parse(out.trim().split('\n').pop()) : null) : reject(new Error(`rank ${rank}: ${err}`))))
  }))
  return (await Promise.all(ranks))[0]
}

const common = ['--image-size', args['image-size'], '--features', args.features, '--batch', args.batch, '--steps', args.steps, '--warmup', args.warmup, '--threads', args.threads]
const rows = []
for (const n of counts) {
  const ours = median((await group(n, process.execPath, [join('benchmark', 'dist-worker-ours.mjs'), ...common])).stepMs)
  const ddp = median((await group(n, torch.python, [join('benchmark', 'reference', 'ddp_bench_worker.py'), ...common])).stepMs)
  const sync = args['sync-bn'] ? median((await group(n, process.execPath, [join('benchmark', 'dist-worker-ours.mjs'), ...common, '--sync-bn'])).stepMs) : null
  const batch = Number(args.batch)
  const imgS = (ms) => +(batch * 1000 / ms).toFixed(1)
  rows.push({ nproc: n, oursMs: +ours.toFixed(2), ddpMs: +ddp.toFixed(2), oursImgS: imgS(ours), ddpImgS: imgS(ddp), ...(sync === null ? {} : { syncMs: +sync.toFixed(2), syncImgS: imgS(sync) }) })
  process.stderr.write(`nproc ${n}: ours ${ours.toFixed(1)} ms/step, PyTorch DDP ${ddp.toFixed(1)} ms/step${sync === null ? '' : `, ours with SyncBN ${sync.toFixed(1)} ms/step`}\n`)
}
const one = rows.find((r) => r.nproc === 1)
for (const r of rows) {
  r.oursEfficiency = one ? +(r.oursImgS / (r.nproc * one.oursImgS)).toFixed(3) : null
  r.ddpEfficiency = one ? +(r.ddpImgS / (r.nproc * one.ddpImgS)).toFixed(3) : null
}
const pct = (x) => (x === null ? '—' : `${(x * 100).toFixed(0)}%`)
const md = [
  `Global batch ${args.batch}, ${args['image-size']}×${args['image-size']}, ${args.features} features, ${args.threads} thread(s) per process, Gloo on 127.0.0.1.`,
  '',
  `| processes | ours img/s | ours efficiency | PyTorch DDP img/s | DDP efficiency | ours / DDP |${args['sync-bn'] ? ' ours + SyncBN img/s | SyncBN cost |' : ''}`,
  `|---|---|---|---|---|---|${args['sync-bn'] ? '---|---|' : ''}`,
  ...rows.map((r) => `| ${r.nproc} | ${r.oursImgS} | ${pct(r.oursEfficiency)} | ${r.ddpImgS} | ${pct(r.ddpEfficiency)} | ${(r.oursImgS / r.ddpImgS).toFixed(2)}× |` +
    (r.syncImgS === undefined ? '' : ` ${r.syncImgS} | ${((r.syncMs / r.oursMs - 1) * 100).toFixed(0)}% |`)),
].join('\n')
const machine = `${hostname()}, ${cpus().length} × ${cpus()[0]?.model}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end; torch ${torch.version}`
console.log(`\nMachine: ${machine}\n\n${md}`)
const dir = join(ROOT, 'benchmark', 'results')
mkdirSync(dir, { recursive: true })
const date = new Date().toISOString().slice(0, 10)
const name = args.name ?? `scaling-nproc-${date}`
writeFileSync(join(dir, `${name}.md`), `Machine: ${machine}\n\n${md}\n`)
writeFileSync(join(dir, `${name}.json`), JSON.stringify({ date, machine, args, rows }, null, 2) + '\n')
