// One rank of the failure-vote check (distributed.spec.ts starts two): a Trainer in a process that
// stays alive after its error, as a Node service would, so that only the group itself can tell the
// other rank. FAIL=callback: rank 0's onStepEnd throws after step 2. FAIL=data: rank 1's dataset
// throws on its third batch. FAIL=range: the third global batch's last value is 3 (out of range),
// which only rank 1's shard holds. FAIL=exhaust: rank 1's dataset ends after two batches.
// FAIL=odd: rank 1's third batch has 7 images (no even split); FAIL=short: its third batch has
// fewer values than its shape says. FAIL=end: rank 0's last checkpoint (step 8) fails in a callback.
// FAIL=exists: only the run folder, which the test fills beforehand (rank 0 refuses it). Each rank prints one JSON line: its error's name, code, message and the
// seconds fit() ran; then it waits to be killed. The group comes from torchrun's variables.
import { type Batch, type Dataset, DatasetExhausted, openDataset, Trainer } from '../src/index'
import { distributedFromEnv } from '../src/distributed'

async function main(outDir: string, fail: string): Promise<void> {
  const distributed = distributedFromEnv()
  if (!distributed) throw new Error('set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT')
  const trainer = new Trainer({ outDir, imageSize: 16, featuresG: 4, featuresD: 4, zDim: 16, batchSize: 8, steps: 8, checkpointEvery: 100, sampleEvery: 0, device: 'cpu', threads: 1, seed: 3, dataset: { kind: 'mnist', limit: 64 } })
  const c = trainer.config
  const data = await openDataset(c.dataset, { imageSize: c.imageSize, channels: c.channels, batchSize: c.batchSize, seed: c.seed })
  let reads = 0
  const dataset: Dataset = {
    batchesPerEpoch: data.batchesPerEpoch,
    next: async (): Promise<Batch> => {
      if (fail === 'exhaust' && distributed.rank === 1 && reads === 2) throw new DatasetExhausted()
      const batch = await data.next()
      reads++
      if (fail === 'data' && distributed.rank === 1 && reads === 3) throw new Error('rank 1 could not read its third batch')
      if (fail === 'range' && reads === 3) batch.data[batch.data.length - 1] = 3
      if (fail === 'odd' && distributed.rank === 1 && reads === 3) return { ...batch, data: batch.data.subarray(0, 7 * 256), shape: [7, 1, 16, 16] }
      if (fail === 'short' && distributed.rank === 1 && reads === 3) return { ...batch, data: batch.data.subarray(0, 100) }
      return batch
    },
  }
  const callbacks = distributed.rank !== 0 ? [] : fail === 'callback'
    ? { onStepEnd: ({ step }: { step: number }) => { if (step === 2) throw new Error('a callback failed after step 2') } }
    : fail === 'end' ? { onCheckpoint: ({ step }: { step: number }) => { if (step === 8) throw new Error('the last checkpoint failed') } } : []
  const started = Date.now()
  let report: Record<string, unknown>
  try {
    const result = await trainer.fit({ distributed, dataset, callbacks, progress: false })
    report = { result }
  } catch (e) {
    const err = e as Error & { code?: string }
    report = { name: err.name, code: err.code, message: err.message }
  }
  console.log(JSON.stringify({ rank: distributed.rank, seconds: (Date.now() - started) / 1000, ...report }))
  setInterval(() => undefined, 1000) // alive until the test kills it
}

main(process.argv[2], process.argv[3]).catch((e) => {
  console.error(`rank ${process.env.RANK}: ${(e as Error).message}`)
  process.exit(1)
})
