#!/usr/bin/env node
// Runs a command with libtorch's environment: `node scripts/with-torch.mjs cargo test ...`.
// `python` on the command line is the Python that has torch.
import { spawnSync } from 'node:child_process'
import { ROOT, SetupError, resolvePython, resolveTorch, torchEnv } from './torch-env.mjs'

try {
  const torch = resolveTorch({ install: false })
  let [cmd, ...args] = process.argv.slice(2)
  if (cmd === 'python') {
    cmd = torch.python ?? resolvePython({ install: false })
  }
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: process.cwd() || ROOT, env: torchEnv(torch) })
  process.exit(r.status ?? 1)
} catch (e) {
  if (e instanceof SetupError) {
    console.error(e.message)
    process.exit(1)
  }
  throw e
}
