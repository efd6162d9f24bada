// One rank of the data-parallel parity check (distributed.spec.ts starts two): the ddp32 fixture's
// initial weights, three steps on this rank's half of each global batch, the state written to
// OUT/rank<r>.safetensors. The group comes from torchrun's variables in the environment; SYNC_BN=1
// asks for synchronised BatchNorm.
// (Not through helpers.ts, which needs ava's runner.)
import { join } from 'node:path'
import { DCGAN, readSafetensors } from '../src/index'
import { distributedFromEnv, DistributedRun } from '../src/distributed'

const FIXTURE = join(__dirname, 'fixtures', 'ddp32')

async function main(out: string): Promise<void> {
  const fromEnv = distributedFromEnv()
  if (!fromEnv) throw new Error('set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT')
  const options = { ...fromEnv, syncBatchNorm: process.env.SYNC_BN === '1' }
  const io = await readSafetensors(join(FIXTURE, 'io.safetensors'))
  const { zDim, channels, featuresG, featuresD, imageSize, batch } = JSON.parse(io.metadata.config)
  const gan = new DCGAN({ zDim, channels, featuresG, featuresD, imageSize, device: 'cpu', seed: 0, threads: 1 })
  await gan.loadWeights(join(FIXTURE, 'init.safetensors'))
  const dist = await DistributedRun.join(options, gan, batch)
  const stats: number[] = []
  for (const step of [1, 2, 3]) {
    const real = dist.shard(io.tensors.get(`real.${step}`)!)
    const noise = dist.shard(io.tensors.get(`noise.${step}`)!)
    const s = await gan.trainStep(real, { noise: noise.data as Float32Array })
    stats.push(s.lossD, s.lossG, s.dReal, s.dFake, s.dFakeAfter)
  }
  await gan.save(`${out}/rank${options.rank}.safetensors`, { stats: JSON.stringify(stats) })
  await dist.finish()
}

main(process.argv[2]).catch((e) => {
  console.error(`rank ${process.env.RANK}: ${(e as Error).message}`)
  process.exit(1)
})
