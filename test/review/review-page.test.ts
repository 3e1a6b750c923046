/**
 * The review page end to end in headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core): the dashboard of a processed clip, restoring a
 * duplicate, a bulk tag removal on a selection, and the catalog and frame
 * map changed accordingly.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readFrameMap } from '../../src/adapters/frame-map-file.ts';
import { reviewedLibrary } from '../fixtures/reviewed-library.ts';

const CHROMIUM = process.env.CELFORGE_CHROMIUM ?? '/usr/bin/chromium';

test('dashboard, restore a duplicate, bulk-remove a tag, in a real browser', async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium), as .ci/run does, or set CELFORGE_CHROMIUM`);
  const { url, job, library } = await reviewedLibrary(t);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));

  await page.goto(url);
  const row = page.locator(`#jobs tr[data-job="${job.id}"]`);
  await row.waitFor();
  assert.match(await row.locator('.state').innerText(), /ready-for-review/);
  assert.match(await row.innerText(), /36\s+3\s+2\s+3/, 'frames, kept, with faces, tagged');
  assert.match(await page.locator('#models').innerText(), /lbpcascade-animeface \(face-cascade\): present/);

  await page.click('nav a[data-tab="dedup"]');
  await page.locator('.scene').first().waitFor();
  assert.equal(await page.locator('.scene').count(), 3);
  const duplicate = page.locator('.scene[data-scene="2"] figure.duplicate[data-frame="14"]');
  await duplicate.locator('button.restore').click();
  await page.locator('#message', { hasText: 'Frame 14 restored' }).waitFor();
  await page.locator('.scene[data-scene="2"] .drawing[data-frame="14"]').waitFor();
  const map = await readFrameMap(path.join(job.extract!.dir, 'frame-map.jsonl'));
  assert.equal(map[14]!.status, 'kept');
  assert.ok(existsSync(path.join(library, map[14]!.file!)));

  await page.click('nav a[data-tab="tags"]');
  await page.fill('#query', '1girl');
  await page.click('#search-form button[type="submit"]');
  await page.locator('#result-count', { hasText: '3 images' }).waitFor();
  await page.click('#select-all');
  await page.fill('#bulk-remove', '1girl');
  await page.click('#bulk-apply');
  await page.locator('#message', { hasText: 'Changed 3 images' }).waitFor();
  await page.locator('#result-count', { hasText: '0 images' }).waitFor();

  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  assert.equal(catalog.count('1girl'), 0);
  assert.ok(catalog.deletedTagsOf(map[14]!.sha256!).includes('1girl'), "recorded as a person's removal");
  assert.deepEqual(errors, [], 'no script errors on the page');
});
