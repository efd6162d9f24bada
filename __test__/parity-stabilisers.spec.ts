// The stabilisers through the addon against PyTorch 2.11 (fixtures from make_fixtures.py running
// benchmark/reference/stabilisers.py): each fixture's options go to `new DCGAN()` as they are
// written in its config, so the option names, the schema and the binding are on the path. Three
// steps: the stats of each and every tensor after steps 1 and 3, the moving average's too
// (`ema.gen.*` in `state()`). DiffAugment replays PyTorch's random draws, which only the core's
// test can feed (crates/dcgan-core/tests/parity_stabilisers.rs).
import test from 'ava'
import { DCGAN, readSafetensors, type DCGANOptions } from '../src/index'
import { loadFixture, maxAbsDiff, stateDifferences, type Fixture } from './helpers'

const TOL = 1e-5

const CASES: Array<[string, string]> = [
  ['ttur32', 'lrD 4e-4, lrG 1e-4 (TTUR)'],
  ['smooth32', 'realLabel 0.9 (one-sided label smoothing)'],
  ['hinge32', "loss 'hinge'"],
  ['sn32', 'spectralNorm (u and v compared too)'],
  ['r1-32', 'r1Gamma 10'],
  ['r1lazy32', 'r1Gamma 10, r1Every 2 (lazy R1)'],
  ['ema32', 'emaDecay 0.999 (warm-up decay (1 + t)/(10 + t))'],
]

for (const [name, what] of CASES) {
  test(`${what}: three steps match PyTorch to ${TOL}`, async (t) => {
    const f: Fixture = await loadFixture(name)
    const { batch: _batch, ...options } = f.config as Fixture['config'] & DCGANOptions
    const gan = new DCGAN({ ...options, device: 'cpu', seed: 0 })
    await gan.loadWeights(f.path('init.safetensors'))
    const failures: string[] = []
    let largest = 0
    for (const step of [1, 2, 3]) {
      const s = await gan.trainStep(f.io.get(`real.${step}`)!, { noise: f.io.get(`noise.${step}`)!.data })
      const expected = f.io.get(`stats.${step}`)!.data
      const d = maxAbsDiff([s.lossD, s.lossG, s.dReal, s.dFake, s.dFakeAfter], expected)
      largest = Math.max(largest, d)
      if (!(d <= TOL)) failures.push(`step ${step} stats: max |diff| ${d}`)
      if (step === 1 || step === 3) {
        const after = (await readSafetensors(f.path(`after${step}.safetensors`))).tensors
        const state = await gan.state()
        for (const [k, e] of after) if (state.has(k)) largest = Math.max(largest, maxAbsDiff(state.get(k)!.data, e.data))
        failures.push(...stateDifferences(state, after, TOL).map((x) => `after step ${step}: ${x}`))
      }
    }
    t.deepEqual(failures, [])
    t.log(`largest |ours − PyTorch| over the stats and the states: ${largest}`)
  })
}

test('with emaDecay, generate() samples the moving average, not the trained generator', async (t) => {
  const f = await loadFixture('ema32')
  const { batch: _batch, ...options } = f.config as Fixture['config'] & DCGANOptions
  const gan = new DCGAN({ ...options, device: 'cpu', seed: 0 })
  await gan.loadWeights(f.path('after3.safetensors'))
  // loadWeights restarts the average from the loaded generator: equal images.
  const z = f.io.get('noise.1')!.data
  const plain = new DCGAN({ ...options, emaDecay: 0, device: 'cpu', seed: 0 })
  await plain.loadWeights(f.path('after3.safetensors'))
  t.deepEqual((await gan.generateFrom(z)).data, (await plain.generateFrom(z)).data)
  // One step later the average (decay 5/14) trails the generator: other images.
  await gan.trainStep(f.io.get('real.1')!, { noise: f.io.get('noise.1')!.data })
  await plain.trainStep(f.io.get('real.1')!, { noise: f.io.get('noise.1')!.data })
  t.notDeepEqual((await gan.generateFrom(z)).data, (await plain.generateFrom(z)).data)
})
