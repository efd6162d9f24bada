#!/usr/bin/env node
// `npm pack` / `npm publish` run this: dist/ built afresh from src/ (never whatever was built
// last), the ESM entry, and the option schema the addon was built with.
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, run } from './torch-env.mjs'

rmSync(join(ROOT, 'dist'), { recursive: true, force: true })
run(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
run(process.execPath, [join(ROOT, 'scripts', 'esm-entry.mjs')], { cwd: ROOT, stdio: 'inherit' })
if (!existsSync(join(ROOT, 'option-schema.json'))) {
  console.error('prepack: option-schema.json is missing: build the addon first (npm run build:native).')
  process.exit(1)
}
