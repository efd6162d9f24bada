// The exported page: a grid from a seed, a slerp walk between two seeds, latent arithmetic on
// clicked cells, all with the generator running in onnxruntime-web (WebAssembly, one thread).
// A classic deferred script; `ort` comes from the inline module in index.html.
'use strict'
;(function () {
  const MODEL = globalThis.DCGAN_MODEL
  const { zDim, channels, imageSize } = MODEL.info.model
  const $ = (id) => document.getElementById(id)
  let session = null

  function setStatus(state, text) {
    document.body.dataset.state = state
    $('status').textContent = text
  }

  function bytesOfBase64(b64) {
    const text = atob(b64)
    const bytes = new Uint8Array(text.length)
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i)
    return bytes
  }

  async function start() {
    const ort = globalThis.ort
    ort.env.wasm.numThreads = 1 // threads need cross-origin isolation, which file:// cannot have
    ort.env.wasm.proxy = false
    ort.env.wasm.wasmBinary = bytesOfBase64(globalThis.DCGAN_ORT_WASM)
    session = await ort.InferenceSession.create(bytesOfBase64(MODEL.onnx), { executionProviders: ['wasm'] })
  }

  /** Images (n×C×S×S values in [−1, 1]) for n latent vectors. */
  async function generate(z, n) {
    const input = new globalThis.ort.Tensor('float32', z, [n, zDim, 1, 1])
    const out = await session.run({ z: input })
    return out.images.data
  }

  /** Image k of a batch into a canvas, [−1, 1] → [0, 255] rounded as torchvision's save_image. */
  function drawImage(canvas, images, k) {
    canvas.width = imageSize
    canvas.height = imageSize
    const ctx = canvas.getContext('2d')
    const img = ctx.createImageData(imageSize, imageSize)
    const plane = imageSize * imageSize
    const base = k * channels * plane
    const byte = (v) => Math.min(255, Math.max(0, Math.floor((v + 1) * 127.5 + 0.5)))
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) img.data[4 * p + c] = byte(images[base + (channels === 1 ? 0 : c) * plane + p])
      img.data[4 * p + 3] = 255
    }
    ctx.putImageData(img, 0, 0)
  }

  // --- grid and arithmetic -------------------------------------------------------------------
  let gridZ = null
  let picks = []

  async function drawGrid(seed, count) {
    const z = globalThis.dcganLatent.latent(count, zDim, seed)
    const images = await generate(z, count)
    const grid = $('grid')
    grid.replaceChildren()
    grid.style.gridTemplateColumns = `repeat(${Math.round(Math.sqrt(count))}, auto)`
    for (let k = 0; k < count; k++) {
      const canvas = document.createElement('canvas')
      canvas.dataset.index = String(k)
      canvas.title = `seed ${seed}, image ${k}`
      canvas.addEventListener('click', () => void pick(k))
      drawImage(canvas, images, k)
      grid.append(canvas)
    }
    gridZ = z
    clearPicks()
    document.body.dataset.gridSeed = String(seed)
  }

  function clearPicks() {
    picks = []
    for (const c of document.querySelectorAll('#grid canvas')) c.className = ''
    for (const id of ['pick-1', 'pick-2', 'pick-3', 'arith-result']) {
      const c = $(id)
      c.width = imageSize
      c.height = imageSize
      c.getContext('2d').clearRect(0, 0, imageSize, imageSize)
    }
  }

  async function pick(k) {
    if (picks.length === 3) clearPicks()
    picks.push(gridZ.slice(k * zDim, (k + 1) * zDim))
    document.querySelector(`#grid canvas[data-index="${k}"]`).classList.add(`picked-${picks.length}`)
    drawImage($(`pick-${picks.length}`), await generate(picks[picks.length - 1], 1), 0)
    if (picks.length === 3) {
      const [a, b, c] = picks
      const z = a.map((x, i) => x - b[i] + c[i])
      drawImage($('arith-result'), await generate(z, 1), 0)
    }
  }

  // --- slerp walk ----------------------------------------------------------------------------
  let walk = { frames: null, timer: null }

  async function prepareWalk(from, to, frames) {
    const { latent, slerp } = globalThis.dcganLatent
    const [a, b] = [latent(1, zDim, from), latent(1, zDim, to)]
    const z = new Float32Array(frames * zDim)
    for (let k = 0; k < frames; k++) z.set(slerp(a, b, k / (frames - 1)), k * zDim)
    return { images: await generate(z, frames), count: frames }
  }

  async function playWalk() {
    clearInterval(walk.timer)
    const frames = Math.min(120, Math.max(2, Number($('walk-frames').value) | 0))
    walk.frames = await prepareWalk(Number($('walk-from').value), Number($('walk-to').value), frames)
    let step = 0
    const show = () => {
      const n = walk.frames.count
      const k = step % (2 * n - 2) // forth and back
      drawImage($('walk'), walk.frames.images, k < n ? k : 2 * n - 2 - k)
      step++
    }
    show()
    walk.timer = setInterval(show, 80)
  }

  // --- wiring ----------------------------------------------------------------------------------
  function seedInput(id) {
    const text = $(id).value.trim()
    const v = Number(text)
    // An empty field is no seed (Number('') is 0); seeds stop at 2^53 − 1, as the library's do.
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(v)) throw new RangeError(`${id}: a seed is an integer from 0 to ${Number.MAX_SAFE_INTEGER}`)
    return v
  }

  function guard(f) {
    return () => f().catch((e) => setStatus('error', `error: ${e.message}`))
  }

  async function main() {
    $('about').textContent = `${imageSize}×${imageSize}, ${channels === 1 ? 'grayscale' : 'RGB'}, zDim ${zDim}; ${MODEL.info.steps} training steps; weights: ${MODEL.info.weights}`
    $('seed').value = String(MODEL.seed)
    await start()
    await drawGrid(MODEL.seed, 16)
    await playWalk()
    $('draw').addEventListener('click', guard(() => drawGrid(seedInput('seed'), Number($('count').value))))
    $('next').addEventListener('click', guard(() => {
      $('seed').value = String(seedInput('seed') + 1)
      return drawGrid(seedInput('seed'), Number($('count').value))
    }))
    $('walk-play').addEventListener('click', guard(playWalk))
    $('arith-clear').addEventListener('click', clearPicks)
    setStatus('ready', 'ready: everything runs in this page, offline')
  }

  // For tests and the curious: the page's own generator and latent draws.
  globalThis.dcganPage = { generate, drawGrid, latent: (n, seed) => globalThis.dcganLatent.latent(n, zDim, seed) }
  const run = () => guard(main)()
  if (globalThis.ort) run()
  else globalThis.addEventListener('ort-ready', run, { once: true })
})()
