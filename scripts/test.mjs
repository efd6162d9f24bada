#!/usr/bin/env node
// `npm test`: the core's Rust tests, then the ava suite against the built addon.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from './torch-env.mjs'

function step(cmd, args) {
  console.log(`\n> ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

step(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json']) // the CLI tests run dist/
step('node', ['scripts/esm-entry.mjs']) // dist/index.mjs, for the test importing dcgan from ESM
step(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', '__test__/types/tsconfig.json']) // option types against their key lists
// One test at a time: tests running side by side in one process share libtorch's thread pool, and
// bit-exact comparisons (a resumed bf16 run equals a straight one) then vary in their last bits.
step('node', ['scripts/with-torch.mjs', 'cargo', 'test', '--release', '-p', 'dcgan-core', '--', '--test-threads=1'])
step(join(ROOT, 'node_modules', '.bin', 'ava'), [])
