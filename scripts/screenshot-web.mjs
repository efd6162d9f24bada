#!/usr/bin/env node
// A screenshot of a page written by `dcgan export --format web`, as a person sees it after
// clicking three grid cells for the latent arithmetic: node scripts/screenshot-web.mjs SITE OUT.png
import { chromium } from 'playwright-core'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const [site, out] = process.argv.slice(2)
if (!site || !out) {
  console.error('usage: node scripts/screenshot-web.mjs SITE_DIR OUT.png')
  process.exit(1)
}
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] })
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
  await page.goto(pathToFileURL(resolve(site, 'index.html')).href)
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', undefined, { timeout: 300_000 })
  for (const k of [0, 5, 10]) await page.click(`#grid canvas[data-index="${k}"]`)
  await page.waitForTimeout(1500)
  await page.screenshot({ path: out, fullPage: true })
  console.error(`wrote ${out} (page state: ${await page.evaluate(() => document.body.dataset.state)})`)
} finally {
  await browser.close()
}
