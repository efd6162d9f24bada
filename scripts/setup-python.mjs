#!/usr/bin/env node
// `npm run setup:python`: the Python environment (torch 2.11.0 with CUDA wheels, torchvision,
// pillow, safetensors, numpy; about 4.7 GB in the cache, once per machine) that the tests'
// PyTorch references, `npm run bench` and `npm run quality` run. The library never needs it;
// `.ci/run` makes it before `npm test`, the benchmarks make it when missing.
import { SetupError, recordPython, resolvePython, say } from './torch-env.mjs'

try {
  const python = resolvePython()
  recordPython(python)
  say(`dcgan: Python with torch for tests and benchmarks: ${python}`)
} catch (e) {
  if (e instanceof SetupError) {
    console.error(`dcgan setup:python failed: ${e.message}`)
    process.exit(1)
  }
  throw e
}
