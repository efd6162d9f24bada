// This library against PyTorch 2.11 running the seed's code (fixtures from benchmark/reference).
import test from 'ava'
import { readSafetensors } from '../src/index'
import { loadFixture, maxAbsDiff, modelFromFixture, stateDifferences } from './helpers'

const TOL = 1e-5

for (const name of ['seed64', 'rgb32']) {
  test(`${name}: G and D forward equal PyTorch's`, async (t) => {
    const f = await loadFixture(name)
    const gan = await modelFromFixture(f)
    const noise = f.io.get('noise.1')!
    const real = f.io.get('real.1')!
    const cases: Array<[string, Promise<ArrayLike<number>>]> = [
      ['forward.gen_train', gan.generateFrom(noise.data, { batchStats: true }).then((x) => x.data)],
      ['forward.gen_eval', gan.generateFrom(noise.data).then((x) => x.data)],
      ['forward.disc_train', gan.discriminate(real, { batchStats: true })],
      ['forward.disc_eval', gan.discriminate(real)],
    ]
    for (const [key, actual] of cases) {
      const d = maxAbsDiff(await actual, f.io.get(key)!.data)
      t.true(d <= TOL, `${key}: max |diff| ${d}`)
    }
  })

  test(`${name}: one training step leaves every parameter and buffer as PyTorch's`, async (t) => {
    const f = await loadFixture(name)
    const gan = await modelFromFixture(f)
    const stats = await gan.trainStep(f.io.get('real.1')!, { noise: f.io.get('noise.1')!.data })
    const expected = f.io.get('stats.1')!.data
    const actual = [stats.lossD, stats.lossG, stats.dReal, stats.dFake, stats.dFakeAfter]
    t.true(maxAbsDiff(actual, expected) <= TOL, `stats ${actual} vs PyTorch ${Array.from(expected)}`)
    const after = await readSafetensors(f.path('after1.safetensors'))
    t.deepEqual(stateDifferences(await gan.state(), after.tensors, TOL), [])
  })

  test(`${name}: three consecutive steps match PyTorch (Adam's bias correction per step)`, async (t) => {
    const f = await loadFixture(name)
    const gan = await modelFromFixture(f)
    for (const step of [1, 2, 3]) {
      const stats = await gan.trainStep(f.io.get(`real.${step}`)!, { noise: f.io.get(`noise.${step}`)!.data })
      const expected = f.io.get(`stats.${step}`)!.data
      const actual = [stats.lossD, stats.lossG, stats.dReal, stats.dFake, stats.dFakeAfter]
      t.true(maxAbsDiff(actual, expected) <= TOL, `step ${step}: ${actual} vs ${Array.from(expected)}`)
    }
    const after = await readSafetensors(f.path('after3.safetensors'))
    t.deepEqual(stateDifferences(await gan.state(), after.tensors, TOL), [])
    t.is(gan.config.stepsDone, 3)
  })
}

test('a generator trained in PyTorch loads here and samples what PyTorch samples', async (t) => {
  for (const name of ['seed64', 'rgb32']) {
    const f = await loadFixture(name)
    const gan = await modelFromFixture(f)
    t.deepEqual(await gan.loadWeights(f.path('after3.safetensors')), ['generator', 'discriminator'])
    const images = await gan.generateFrom(f.io.get('noise.1')!.data)
    const d = maxAbsDiff(images.data, f.io.get('trained.gen_eval')!.data)
    t.true(d <= TOL, `${name}: max |diff| ${d}`)
  }
})
