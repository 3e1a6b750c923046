/**
 * The review page end to end in headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core): the dashboard of a processed clip, restoring a
 * duplicate, a bulk tag removal on a selection, and the catalog and frame
 * map changed accordingly; the layout holding long text within the window;
 * the dashboard following a new job without a reload. Without a browser the
 * tests are skipped and say why, except in CI (see required-program.ts).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { readFrameMap } from '../../src/adapters/frame-map-file.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { requireChromium } from '../fixtures/required-program.ts';
import { openPage } from '../fixtures/browser-page.ts';
import { reviewedLibrary } from '../fixtures/reviewed-library.ts';
import { startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

test('dashboard, restore a duplicate, bulk-remove a tag, in a real browser', async (t) => {
  if (!requireChromium(t)) return;
  const { url, job, library } = await reviewedLibrary(t);
  const { page, errors } = await openPage(t);

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
  // The frames: the crops of their faces carry 1girl too.
  await page.fill('#query', '1girl -crop:*');
  await page.click('#search-form button[type="submit"]');
  await page.locator('#result-count', { hasText: '3 images' }).waitFor();
  await page.click('#select-all');
  await page.fill('#bulk-remove', '1girl');
  await page.click('#bulk-apply');
  await page.locator('#message', { hasText: 'Changed 3 images' }).waitFor();
  await page.locator('#result-count', { hasText: '0 images' }).waitFor();

  // A 200-character tag in the sidebar ends in an ellipsis inside it, its full text in the link's title.
  const longTag = 'very_long_tag_name_'.repeat(11).slice(0, 200);
  await page.fill('#query', '-crop:*');
  await page.click('#search-form button[type="submit"]');
  await page.locator('#result-count', { hasText: '4 images' }).waitFor(); // three kept and the restored one
  await page.click('#select-all');
  await page.fill('#bulk-add', longTag);
  await page.click('#bulk-apply');
  await page.locator('#message', { hasText: 'Changed 4 images' }).waitFor();
  const tagLink = page.locator('#tag-counts a', { hasText: longTag });
  await tagLink.waitFor();
  const sidebar = await page.evaluate(() => {
    const aside = document.querySelector('#tags aside')!;
    return { scroll: aside.scrollWidth, client: aside.clientWidth, page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth };
  });
  assert.ok(sidebar.scroll <= sidebar.client, `the sidebar does not overflow: ${JSON.stringify(sidebar)}`);
  assert.ok(sidebar.page <= sidebar.window, `the page is no wider than the window: ${JSON.stringify(sidebar)}`);
  assert.equal(await tagLink.getAttribute('title'), longTag, 'the full tag in the title');

  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  assert.equal(catalog.count('1girl -crop:*'), 0);
  assert.ok(catalog.deletedTagsOf(map[14]!.sha256!).includes('1girl'), "recorded as a person's removal");
  assert.equal(catalog.count(longTag), 4);
  assert.deepEqual(errors, [], 'no script errors on the page');
});

async function layoutWidths(page: Page, selector: string) {
  return page.evaluate((rowSelector) => ({
    row: document.querySelector(rowSelector)!.getBoundingClientRect().width,
    page: document.documentElement.scrollWidth,
    window: document.documentElement.clientWidth,
  }), selector);
}

test('dashboard: a new job appears and moves on without a reload, a long hold wraps, no training controls without a train section', async (t) => {
  if (!requireChromium(t)) return;
  const clip = await makeFacesClip();
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'inbox'));
  // A models folder deep in a share: the hold's reason names it, one long unbreakable path.
  const models = path.join(dir, ...['a', 'b', 'c', 'd'].map((letter) => `${letter}-network-share-folder-with-a-long-name-`.repeat(3)), 'models');
  mkdirSync(models, { recursive: true });
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false }, watch: { settleSeconds: 0.5 },
    models: { dir: models, autoFetch: false }, tags: { taggers: ['wd-swinv2-tagger-v3'] },
  });
  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const url = await waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 60_000);

  const { page, errors } = await openPage(t, { width: 1280, height: 800 });
  await page.goto(url);
  await page.locator('#training', { hasText: 'Training is not configured' }).waitFor();
  assert.equal(await page.locator('#jobs tbody tr').count(), 0);
  assert.equal(await page.locator('#train-now').isVisible(), false, 'no training controls');
  assert.equal(await page.locator('#train-queue').isVisible(), false, 'no training controls');
  assert.equal(await page.locator('#loss').isVisible(), false, 'no empty loss plot');
  await page.evaluate(() => Object.assign(window, { loadedOnce: true }));

  copyFileSync(clip.file, path.join(dir, 'inbox', 'Faces - 01.m2ts'));
  const row = page.locator('#jobs tbody tr[data-job]');
  await row.waitFor({ timeout: 120_000 });
  await row.locator('.state', { hasText: 'waiting-for-model' }).waitFor({ timeout: 120_000 });
  assert.equal(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce), true, 'the same page, not reloaded');
  const state = await row.locator('.state').innerText();
  assert.ok(state.replace(/\s/g, '').includes(models), `the hold names the folder in full: ${state}`);

  const widths = await layoutWidths(page, '#jobs tbody tr[data-job]');
  assert.ok(widths.row <= widths.window, `the row fits the window: ${JSON.stringify(widths)}`);
  assert.ok(widths.page <= widths.window, `the page is no wider than the window: ${JSON.stringify(widths)}`);
  assert.deepEqual(errors, [], 'no script errors on the page');
});
