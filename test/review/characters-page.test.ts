/**
 * The review page's Characters view in headless Chromium (Debian's
 * /usr/bin/chromium, driven by playwright-core), on a library with seven
 * clusters of solid-colour crops in two series: one row per cluster showing its own crops
 * (by hash and by the colour drawn), samples or all of them, per series; naming, merging, moving a crop out and
 * marking noise each reach the catalog's `character:` tags before the next
 * look; hostile names shown as text; long names kept within the window.
 * Then end to end: the faces clip processed (real cascade, crops, generated
 * CCIP models through the characters stage), its clusters shown in the view,
 * one named there, and `celforge search` finding its crops and their frames.
 * Without a browser the tests are skipped and say why, except in CI.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { Catalog } from '../../src/adapters/catalog-store.ts';
import { CharacterClusters } from '../../src/catalog/character-clusters.ts';
import { parseTag } from '../../src/catalog/tags.ts';
import { writeCcipModels } from '../fixtures/ccip-models.ts';
import { makeFacesClip } from '../fixtures/faces-clip.ts';
import { writeModelFolder } from '../fixtures/model-folder.ts';
import { IDENTITIES, SECOND_SERIES, SERIES, characterLibrary, type CharacterLibrary, type Identity } from '../fixtures/character-library.ts';
import { requireChromium } from '../fixtures/required-program.ts';
import { openPage } from '../fixtures/browser-page.ts';
import { runCli, startDaemon, stopDaemon, tempDir, waitFor, writeConfig } from '../helpers.ts';

const sorted = (values: Iterable<string>) => [...values].sort();

/** The crops a row shows: hash, the src of its picture, and the colour at its centre as the browser drew it. */
async function rowCrops(page: Page, cluster: number) {
  const row = page.locator(`.cluster[data-cluster="${cluster}"]`);
  await row.scrollIntoViewIfNeeded();
  await page.waitForFunction((id) => [...document.querySelectorAll(`.cluster[data-cluster="${id}"] img`)].every((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0), cluster);
  return row.locator('figure.crop').evaluateAll((figures) => figures.map((figure) => {
    const img = figure.querySelector('img')!;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d')!;
    context.drawImage(img, 0, 0);
    const [r, g, b] = context.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data;
    return { hash: (figure as HTMLElement).dataset.hash!, src: img.getAttribute('src')!, rgb: [r!, g!, b!] };
  }));
}

/** The row shows these identities' crops (`samples` of them when given), each in its own colour. */
function assertShows(crops: Awaited<ReturnType<typeof rowCrops>>, library: CharacterLibrary, identities: Identity[], samples?: number) {
  const all = identities.flatMap((identity) => library.crops[identity]);
  if (samples === undefined) assert.deepEqual(sorted(crops.map((crop) => crop.hash)), sorted(all));
  else assert.ok(crops.length === samples && crops.every((crop) => all.includes(crop.hash)), `${samples} of ${identities}'s crops: ${crops.map((crop) => crop.hash)}`);
  for (const crop of crops) {
    assert.equal(crop.src, `/api/images/${crop.hash}`, 'served by hash, never by path');
    const identity = identities.find((candidate) => library.crops[candidate].includes(crop.hash))!;
    const expected = IDENTITIES[identity].rgb;
    assert.ok(crop.rgb.every((value, channel) => Math.abs(value - expected[channel]!) <= 12), `${identity}'s colour ${expected} drawn, got ${crop.rgb}`);
  }
}

/** The crops and the frames they were cut from. */
function withFrames(library: CharacterLibrary, crops: string[]): string[] {
  return sorted(crops.flatMap((crop) => [crop, library.frameOf.get(crop)!]));
}

const found = (library: CharacterLibrary, tag: string) => sorted(library.catalog.search(tag, { limit: 1000 }).map((image) => image.hash));

async function name(page: Page, cluster: number, text: string) {
  const row = page.locator(`.cluster[data-cluster="${cluster}"]`);
  await row.locator('.cluster-name-input').fill(text);
  await row.locator('.name-form button[type="submit"]').click();
  const shown = parseTag(`character:${text}`)!.name;
  await page.waitForFunction(([id, want]) => document.querySelector(`.cluster[data-cluster="${id}"] .cluster-name`)?.textContent === want, [cluster, shown] as const);
  return shown;
}

async function layout(page: Page) {
  return page.evaluate(() => ({
    rows: Math.max(...[...document.querySelectorAll('.cluster')].map((row) => row.getBoundingClientRect().right)),
    names: Math.max(...[...document.querySelectorAll('.cluster-name')].map((node) => node.getBoundingClientRect().right)),
    page: document.documentElement.scrollWidth,
    window: document.documentElement.clientWidth,
  }));
}

test('characters view: rows of crops; name, merge, move out and noise reach the catalog at once; names shown as text', async (t) => {
  if (!requireChromium(t)) return;
  const library = await characterLibrary(t);
  const { clusterOf, crops } = library;
  const { page, errors } = await openPage(t, { width: 1280, height: 800 });

  await page.goto(library.url);
  await page.click('nav a[data-tab="characters"]');
  await page.locator('.cluster').first().waitFor();
  assert.deepEqual(await page.locator('#character-series option').allTextContents(), [SECOND_SERIES, SERIES]);
  await page.locator('#character-series').selectOption(SERIES);
  await page.locator(`.cluster[data-cluster="${clusterOf.red}"]`).waitFor();
  const rowIds = () => page.locator('.cluster').evaluateAll((rows) => rows.map((row) => Number((row as HTMLElement).dataset.cluster)));
  assert.deepEqual(await rowIds(), [clusterOf.cyan, clusterOf.red, clusterOf.green, clusterOf.blue, clusterOf.yellow, clusterOf.magenta], 'one row per cluster, largest first');
  for (const identity of ['red', 'green', 'blue', 'yellow', 'magenta'] as const) {
    assertShows(await rowCrops(page, clusterOf[identity]), library, [identity]);
    assert.match(await page.locator(`.cluster[data-cluster="${clusterOf[identity]}"] .cluster-size`).innerText(), new RegExp(`^${crops[identity].length} crops$`));
  }
  // A large cluster shows samples, and every crop on asking.
  const cyan = page.locator(`.cluster[data-cluster="${clusterOf.cyan}"]`);
  assertShows(await rowCrops(page, clusterOf.cyan), library, ['cyan'], 8);
  await cyan.locator('button.show-all', { hasText: 'Show all 10' }).click();
  await cyan.locator('figure.crop').nth(9).waitFor();
  assertShows(await rowCrops(page, clusterOf.cyan), library, ['cyan']);
  // Two crops picked among all of them move out together.
  const [first, second] = [crops.cyan[9]!, crops.cyan[3]!];
  await cyan.locator(`figure.crop[data-hash="${first}"] img`).click(); // the picture selects it
  await cyan.locator(`figure.crop[data-hash="${second}"] input.pick`).check();
  await cyan.locator('button.move-out', { hasText: 'Move 2 selected out' }).click();
  await page.locator('#message', { hasText: '2 crop(s) moved out of Cluster' }).waitFor();
  await cyan.locator('.cluster-size', { hasText: /^8 crops$/ }).waitFor();
  assert.deepEqual(sorted((await rowCrops(page, clusterOf.cyan)).map((crop) => crop.hash)), sorted(crops.cyan.filter((crop) => crop !== first && crop !== second)));
  assert.equal(await cyan.locator('button.show-all').count(), 0, '8 crops: the samples are all of them');
  // The other series has its own rows.
  await page.locator('#character-series').selectOption(SECOND_SERIES);
  await page.locator(`.cluster[data-cluster="${clusterOf.orange}"]`).waitFor();
  assert.deepEqual(await rowIds(), [clusterOf.orange]);
  assertShows(await rowCrops(page, clusterOf.orange), library, ['orange']);
  await page.locator('#character-series').selectOption(SERIES);
  await page.locator(`.cluster[data-cluster="${clusterOf.red}"]`).waitFor();

  // Name: the crops and their frames carry the tag right after.
  assert.equal(await name(page, clusterOf.red, 'Saber'), 'saber');
  await page.locator('#message', { hasText: `Cluster ${clusterOf.red} named: search character:saber` }).waitFor();
  assert.deepEqual(found(library, 'character:saber'), withFrames(library, crops.red));
  // The tagger named the first red crop otherwise: the view links to it, flagged, in Tag review.
  await page.locator('#character-conflicts', { hasText: /^1 image\(s\) where a tagger's character tag and the clusters disagree$/ }).click();
  await page.locator('#result-count', { hasText: /^1 images$/ }).waitFor();
  assert.equal(await page.locator('#query').inputValue(), 'review:character_conflict');
  assert.deepEqual(await page.locator('#grid .cell').evaluateAll((cells) => cells.map((cell) => (cell as HTMLElement).dataset.hash)), [crops.red[0]]);
  // Back on the tab, the rows are loaded again (the answer held back here): the ones left from before take no input
  // until they are replaced, since a name typed into them would be lost.
  const stale = await page.locator('#clusters > .cluster').first().elementHandle();
  let answer!: () => void;
  const heldBack = new Promise<void>((resolve) => (answer = resolve));
  const clusterRows = (url: URL) => url.pathname.endsWith('/api/characters/clusters');
  await page.route(clusterRows, async (route) => {
    await heldBack;
    await route.continue();
  });
  await page.click('nav a[data-tab="characters"]');
  await page.waitForFunction(() => (document.querySelector('#clusters') as HTMLElement & { inert: boolean }).inert);
  assert.equal(await page.locator('#clusters').getAttribute('aria-busy'), 'true');
  assert.equal(await page.evaluate((row) => row!.isConnected, stale), true, 'the rows from before are still shown');
  answer();
  await page.waitForFunction((row) => !row!.isConnected, stale);
  await page.unroute(clusterRows);
  assert.equal(await page.locator('#clusters').evaluate((rows) => (rows as HTMLElement & { inert: boolean }).inert), false, 'the new rows take input');
  assert.equal(await page.locator('#clusters').getAttribute('aria-busy'), 'false');
  await page.locator(`.cluster[data-cluster="${clusterOf.red}"] .cluster-name`, { hasText: /^saber$/ }).waitFor();

  // Merge: magenta joins blue; one row less, and magenta's crop carries blue's name.
  await name(page, clusterOf.blue, 'Rin');
  const blue = page.locator(`.cluster[data-cluster="${clusterOf.blue}"]`);
  await blue.locator('select.merge-with').selectOption(String(clusterOf.magenta));
  await blue.locator('button.merge-into').click();
  await page.locator(`.cluster[data-cluster="${clusterOf.magenta}"]`).waitFor({ state: 'detached' });
  assert.equal(await page.locator('.cluster').count(), 5);
  assertShows(await rowCrops(page, clusterOf.blue), library, ['blue', 'magenta']);
  assert.equal(await blue.locator('.cluster-size').innerText(), '3 crops');
  assert.deepEqual(found(library, 'character:rin'), withFrames(library, [...crops.blue, ...crops.magenta]));

  // Move a crop out: it leaves the row, and it and its frame lose the tag.
  const red = page.locator(`.cluster[data-cluster="${clusterOf.red}"]`);
  const [out, ...kept] = crops.red;
  assert.equal(await red.locator('button.move-out').isDisabled(), true, 'nothing selected, nothing to move');
  await red.locator(`figure.crop[data-hash="${out}"] input.pick`).check();
  await red.locator('button.move-out', { hasText: 'Move 1 selected out' }).click();
  await red.locator(`figure.crop[data-hash="${out}"]`).waitFor({ state: 'detached' });
  assert.deepEqual(sorted((await rowCrops(page, clusterOf.red)).map((crop) => crop.hash)), sorted(kept));
  assert.equal(await red.locator('.cluster-size').innerText(), '3 crops');
  assert.deepEqual(found(library, 'character:saber'), withFrames(library, kept));
  assert.ok(!library.catalog.tagsOf(out!).includes('character:saber'));
  assert.ok(!library.catalog.tagsOf(library.frameOf.get(out!)!).includes('character:saber'));
  await page.locator('#character-conflicts').waitFor({ state: 'hidden' });
  assert.equal(library.catalog.count('review:character_conflict'), 0, 'out of the cluster, the crop disagrees with nothing');

  // Noise: the row says so and the tags are gone; taken back, they return.
  await name(page, clusterOf.yellow, 'Archer');
  assert.deepEqual(found(library, 'character:archer'), withFrames(library, crops.yellow));
  const yellow = page.locator(`.cluster[data-cluster="${clusterOf.yellow}"]`);
  await yellow.locator('button.toggle-noise').click();
  await page.locator(`.cluster.noise[data-cluster="${clusterOf.yellow}"] .noise-badge`).waitFor();
  assert.equal(await yellow.locator('button.toggle-noise').innerText(), 'Not noise');
  assert.deepEqual(found(library, 'character:archer'), []);
  for (const crop of crops.yellow) assert.ok(!library.catalog.tagsOf(crop).some((tag) => tag.startsWith('character:')), 'a noise crop has no character');
  await yellow.locator('button.toggle-noise').click();
  await page.locator(`.cluster[data-cluster="${clusterOf.yellow}"]:not(.noise)`).waitFor();
  assert.deepEqual(found(library, 'character:archer'), withFrames(library, crops.yellow));

  // A hostile name is text: no element made from it, no script run; it is still searchable.
  const hostile = `<script>window.pwned=1</script> <img src=x onerror=window.pwned=2> O'Brien & 初音ミク 🎌`;
  const shown = await name(page, clusterOf.green, hostile);
  assert.equal(shown, `<script>window.pwned=1</script>_<img_src=x_onerror=window.pwned=2>_o'brien_&_初音ミク_🎌`);
  assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no script ran');
  assert.equal(await page.locator('#clusters script').count(), 0);
  assert.equal(await page.locator('#clusters img').count(), await page.locator('#clusters figure.crop').count(), 'the only pictures are crops');
  assert.ok((await page.locator('select.merge-with option').allTextContents()).some((text) => text.startsWith(shown)), 'the merge list shows it as text');
  assert.deepEqual(found(library, `character:${shown}`), withFrames(library, crops.green));

  // The longest name there may be, one unbreakable word, stays within the row and the window.
  const long = await name(page, clusterOf.green, 'x'.repeat(100));
  assert.deepEqual(found(library, `character:${long}`), withFrames(library, crops.green));
  for (const width of [1280, 640]) {
    await page.setViewportSize({ width, height: 800 });
    const widths = await layout(page);
    assert.ok(widths.names <= widths.rows && widths.rows <= widths.window, `at ${width} px the names fit their rows and the rows the window: ${JSON.stringify(widths)}`);
    assert.ok(widths.page <= widths.window, `at ${width} px the page is no wider than the window: ${JSON.stringify(widths)}`);
  }
  assert.deepEqual(errors, [], 'no script errors or dialogs on the page');
});

test('a processed episode: the characters stage\'s clusters in the view; named there, celforge search finds their crops and frames', async (t) => {
  if (!requireChromium(t)) return;
  const clip = await makeFacesClip();
  const dir = tempDir(t);
  const models = writeModelFolder(dir, { taggers: [{ id: 'tagger-a', blueSky: 1 }], cascade: true });
  writeCcipModels(path.join(models.dir, 'ccip-test'), { size: 64 });
  const manifest = JSON.parse(readFileSync(models.manifest, 'utf8')) as { models: unknown[] };
  manifest.models.push({
    id: 'ccip-test', kind: 'ccip', licence: 'test', homepage: 'http://127.0.0.1/',
    input: { size: 64, layout: 'NCHW', channels: 'RGB', range: 'CLIP-normalised', pad: 'none' },
    files: ['model_feat.onnx', 'model_metrics.onnx', 'metrics.json'].map((name) => ({ name, url: `http://127.0.0.1:9/ccip-test/${name}`, sha256: null, size: null })),
  });
  writeFileSync(models.manifest, JSON.stringify(manifest));
  const configFile = writeConfig(dir, {
    inbox: './inbox', library: './library', disk: { reserve: 0 }, notify: { desktop: false },
    models: { dir: models.dir, manifest: models.manifest, autoFetch: false }, faces: { detector: 'cascade' }, tags: { taggers: ['tagger-a'] },
    characters: { model: 'ccip-test', method: 'dbscan' },
  });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { cwd: dir });
  const processed = await cli('process', clip.file);
  assert.equal(processed.code, 0, processed.stderr + processed.stdout);
  const library = path.join(dir, 'library');
  const catalog = Catalog.open(path.join(library, 'catalog.sqlite'));
  t.after(() => catalog.close());
  const store = new CharacterClusters(catalog);
  const [series] = store.seriesList();
  assert.ok(series, `the characters stage made clusters: ${processed.stdout}`);
  const clusters = store.clusters(series);

  const daemon = startDaemon(configFile);
  t.after(() => stopDaemon(daemon));
  const url = await waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 30_000);
  const { page, errors } = await openPage(t, { width: 1280, height: 800 });
  await page.goto(`${url}#characters`);
  await page.locator('.cluster').first().waitFor();
  assert.equal(await page.locator('#character-series').inputValue(), series);
  assert.deepEqual(await page.locator('.cluster').evaluateAll((rows) => rows.map((row) => Number((row as HTMLElement).dataset.cluster))), clusters.map((cluster) => cluster.id));
  const [largest] = clusters;
  const members = store.members(largest!.id);
  const shown = await page.locator(`.cluster[data-cluster="${largest!.id}"] figure.crop`).evaluateAll((figures) => figures.map((figure) => (figure as HTMLElement).dataset.hash!));
  assert.ok(shown.length > 0 && shown.every((hash) => members.some((member) => member.hash === hash)), 'the row shows its own crops');

  assert.equal(await name(page, largest!.id, 'Shirou Emiya'), 'shirou_emiya');
  const searched = await cli('search', 'character:shirou_emiya');
  assert.equal(searched.code, 0, searched.stderr);
  const crops = members.map((member) => catalog.get(member.hash)!);
  const frames = [...new Set(crops.map((crop) => crop.origin!.hash))].map((hash) => catalog.get(hash)!);
  assert.ok(frames.length > 0);
  assert.deepEqual(searched.stdout.trim().split('\n').sort(), sorted([...crops, ...frames].map((image) => path.resolve(library, image.path))), 'the cluster\'s crops and the frames they were cut from');
  assert.deepEqual(errors, [], 'no script errors on the page');
});
