/**
 * The review page's Compare view in headless Chromium (Debian's
 * /usr/bin/chromium, driven by playwright-core), served by the daemon on
 * review folders made as the checkpoint review makes them (two versions; v2's
 * portrait regressed): the tab lists the versions newest first; the picker
 * and `#compare/v2` (the notification's link) open a version; each seed's
 * cells show that version's stored render (the bytes the browser got, and the
 * colour of the checkpoint that rendered it); the flip frame flips; the
 * regression is at the top and links to its template; both versions' scores,
 * a character score only when the summary has one; a hostile template name
 * and prompt shown as text; a link to a version not reviewed shows the
 * newest; a review that finishes while the tab is open joins the list (every
 * 30 s on the page's fake clock, and when the window shows again). Without a
 * browser the test is skipped and says why, except in CI.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import type { ReviewSummary } from '../../src/stages/checkpoint-review/review-summary.ts';
import { CHECKPOINTS, HOSTILE_NAME, HOSTILE_PROMPT, checkpointReviews } from '../fixtures/checkpoint-reviews.ts';
import { modelColour, seedSpot } from '../fixtures/generator-picture.ts';
import { requireChromium } from '../fixtures/required-program.ts';
import { openPage } from '../fixtures/browser-page.ts';
import { startDaemon, stopDaemon, waitFor } from '../helpers.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const percent = (share: number | null) => (share === null ? '–' : `${Math.round(share * 100)}%`);

/** The sha256 of the bytes the browser gets from `src`. */
async function fetched(page: Page, src: string | null): Promise<string | null> {
  if (src === null) return null;
  return page.evaluate(async (address) => {
    const bytes = await (await fetch(address)).arrayBuffer();
    return [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  }, src);
}

/** Every seed cell of the view: template, seed, and for each picture its src and the sha256 of the bytes the browser fetched from it. */
async function cells(page: Page) {
  const rows = await page.locator('.compare-seed').evaluateAll((nodes) => nodes.map((row) => ({
    template: (row.closest('.compare-template') as HTMLElement).dataset.template!,
    seed: Number((row as HTMLElement).dataset.seed),
    previous: row.querySelector('figure.previous img')?.getAttribute('src') ?? null,
    current: row.querySelector('figure.current img')?.getAttribute('src') ?? null,
    flip: row.querySelector('img.flip-picture')?.getAttribute('src') ?? null,
  })));
  return Promise.all(rows.map(async (row) => ({
    ...row,
    previous: { src: row.previous, sha256: await fetched(page, row.previous) },
    current: { src: row.current, sha256: await fetched(page, row.current) },
  })));
}

/** The colour the browser drew at (x, y) of the flip frame's picture in a template's seed row, once it has loaded. */
async function flipColour(page: Page, template: string, seed: number, [x, y]: [number, number]) {
  const row = page.locator('.compare-template', { has: page.locator('.template-name', { hasText: template }) }).locator(`.compare-seed[data-seed="${seed}"]`);
  await row.scrollIntoViewIfNeeded();
  const picture = await row.locator('img.flip-picture').elementHandle();
  await page.waitForFunction((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0, picture);
  return picture!.evaluate((img, [px, py]) => {
    const image = img as HTMLImageElement;
    const canvas = document.createElement('canvas');
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext('2d')!;
    context.drawImage(image, 0, 0);
    return [...context.getImageData(px!, py!, 1, 1).data.slice(0, 3)];
  }, [x, y]);
}

const near = (rgb: number[], expected: number[]) => rgb.every((value, channel) => Math.abs(value - expected[channel]!) <= 3);

test('compare view: versions, #compare/v2, both versions\' renders per seed, the flip, the regression, the scores; names shown as text', async (t) => {
  if (!requireChromium(t)) return;
  const reviews = await checkpointReviews(t);
  const [v1, v2] = reviews.summaries as [ReviewSummary, ReviewSummary];
  const daemon = startDaemon(reviews.configFile);
  t.after(() => stopDaemon(daemon));
  const url = await waitFor('the review page', () => /review page: (http:\/\/\S+\/)/.exec(daemon.output())?.[1], 30_000);
  const { browser, page, errors } = await openPage(t, { width: 1280, height: 800 });

  // The tab lists the versions, newest first, and opens the newest; the picker opens another.
  await page.goto(url);
  await page.click('nav a[data-tab="compare"]');
  await page.locator('#compare-version option').nth(1).waitFor({ state: 'attached' });
  assert.deepEqual(await page.locator('#compare-version option').evaluateAll((options) => options.map((option) => (option as HTMLOptionElement).value)), ['v2', 'v1']);
  const labels = await page.locator('#compare-version option').allTextContents();
  assert.ok(labels[0]!.startsWith(`v2: ${CHECKPOINTS[1]!.name}, 1 regression (`) && labels[1]!.startsWith(`v1: ${CHECKPOINTS[0]!.name}, 0 regressions (`), labels.join(' | '));
  await page.locator('#compare-summary', { hasText: /^v2 / }).waitFor();
  await page.locator('#compare-version').selectOption('v1');
  await page.locator('#compare-summary', { hasText: `v1 (${CHECKPOINTS[0]!.name}), the first version: 3 templates, 0 regressions` }).waitFor();
  assert.equal(new URL(page.url()).hash, '#compare/v1');
  assert.equal(await page.locator('#compare-regressions').innerText(), 'The first version: nothing to compare with.');
  const first = await cells(page);
  assert.equal(first.length, 4);
  for (const cell of first) {
    assert.equal(cell.previous.src, null, 'v1 has no previous render');
    assert.equal(cell.current.sha256, sha256(readFileSync(reviews.renderFile('v1', cell.template, cell.seed))), `v1 ${cell.template} seed ${cell.seed}`);
  }
  assert.equal(await page.locator('.flip-button').first().isDisabled(), true, 'nothing to flip to');

  // The notification's link, on a fresh page: v2 against v1.
  await page.goto(`${url}#compare/v2`);
  await page.locator('#compare-summary', { hasText: `v2 (${CHECKPOINTS[1]!.name}) against v1: 3 templates, 1 regression` }).waitFor();
  assert.equal(await page.locator('#compare-version').inputValue(), 'v2');
  assert.equal(await page.locator('#compare').isVisible(), true, 'the Compare tab is shown');
  assert.equal(await page.locator('nav a.active').innerText(), 'Compare');
  assert.equal(await page.locator('#compare-sheet').getAttribute('href'), '/api/reviews/v2/sheet');
  assert.deepEqual(await page.locator('.compare-template').evaluateAll((sections) => sections.map((section) => (section as HTMLElement).dataset.template)), ['portrait', HOSTILE_NAME, 'scenery']);
  const shown = await cells(page);
  assert.deepEqual(shown.map((cell) => `${cell.template}#${cell.seed}`), ['portrait#11', 'portrait#22', `${HOSTILE_NAME}#5`, 'scenery#7']);
  for (const cell of shown) {
    const folder = v2.templates.find((template) => template.template === cell.template)!.folder;
    assert.equal(cell.previous.src, `/api/reviews/v1/renders/${folder}/${cell.seed}`);
    assert.equal(cell.current.src, `/api/reviews/v2/renders/${folder}/${cell.seed}`);
    assert.equal(cell.previous.sha256, sha256(readFileSync(reviews.renderFile('v1', cell.template, cell.seed))), `${cell.template} seed ${cell.seed}: v1's render`);
    assert.equal(cell.current.sha256, sha256(readFileSync(reviews.renderFile('v2', cell.template, cell.seed))), `${cell.template} seed ${cell.seed}: v2's render`);
    assert.notEqual(cell.previous.sha256, cell.current.sha256);
    assert.equal(cell.flip, cell.current.src, 'the flip frame starts on the new version');
  }

  // The flip frame shows the other version's picture, drawn in the other checkpoint's colour, and back.
  const [sx, sy] = seedSpot(11, 64, 64);
  const away: [number, number] = [sx < 32 ? 56 : 4, sy < 32 ? 56 : 4];
  const [colourV1, colourV2] = CHECKPOINTS.map((checkpoint) => modelColour(checkpoint.name));
  const portrait = page.locator('.compare-template[data-template="portrait"]');
  const seed11 = portrait.locator('.compare-seed[data-seed="11"]');
  assert.ok(near(await flipColour(page, 'portrait', 11, away), colourV2!), 'v2 drawn first');
  await seed11.locator('.flip-button', { hasText: 'Show v1' }).click();
  await seed11.locator('figure.flip[data-showing="previous"] figcaption', { hasText: /^v1, seed 11$/ }).waitFor();
  assert.equal(await seed11.locator('img.flip-picture').getAttribute('src'), shown[0]!.previous.src);
  assert.ok(near(await flipColour(page, 'portrait', 11, away), colourV1!), 'v1 drawn after the flip');
  await seed11.locator('.flip-button', { hasText: 'Show v2' }).click();
  await seed11.locator('figure.flip[data-showing="current"] figcaption', { hasText: /^v2, seed 11$/ }).waitFor();
  assert.equal(await seed11.locator('img.flip-picture').getAttribute('src'), shown[0]!.current.src);
  assert.ok(near(await flipColour(page, 'portrait', 11, away), colourV2!), 'v2 again');
  assert.equal(await portrait.locator('figure.flip[data-showing="previous"]').count(), 0, 'the other seed did not flip');

  // The regression at the top, with its reasons, links to its template; only that template is flagged.
  const regression = v2.regressions[0]!;
  const found = regression.reasons.find((reason) => reason.kind === 'found')!;
  const vanished = regression.reasons.find((reason) => reason.kind === 'vanished')!;
  const drift = regression.reasons.find((reason) => reason.kind === 'drift')!;
  assert.ok(found && vanished && drift, JSON.stringify(regression));
  assert.equal(await page.locator('.regressions h3').innerText(), '1 regression against v1');
  assert.equal(await page.locator('li.regression').innerText(),
    `portrait: prompt tags found fell from ${percent(found.previous)} to ${percent(found.current)}; subjects vanished (no_humans found): ${vanished.tags.join(', ')}; composition drifted to ${drift.tags.join(', ')}`);
  assert.deepEqual(await page.locator('.compare-template.flagged').evaluateAll((sections) => sections.map((section) => (section as HTMLElement).dataset.template)), ['portrait']);
  await page.locator('#compare-templates').evaluate((node) => node.scrollIntoView({ block: 'end' }));
  await page.locator('a.regression-link', { hasText: /^portrait$/ }).click();
  await page.locator('.compare-template.highlight[data-template="portrait"]').waitFor();
  assert.equal(new URL(page.url()).hash, '#compare/v2', 'the link stays on the view');
  assert.ok(await portrait.locator('.template-name').evaluate((node) => node.getBoundingClientRect().top >= 0 && node.getBoundingClientRect().top < innerHeight), 'scrolled to the template');

  // Both versions' scores; no character row while the summary has no character score.
  const scoreRow = async (section: ReturnType<Page['locator']>, label: string) => section.locator(`tr[data-score="${label}"] td`).allInnerTexts();
  const [before, after] = [v1.templates[0]!.current, v2.templates[0]!.current];
  assert.deepEqual(await scoreRow(portrait, 'prompt tags found'), [percent(before.found), percent(after.found)]);
  assert.deepEqual(await scoreRow(portrait, 'vanished subjects'), ['none', after.vanishedSubjects.join(', ')]);
  assert.deepEqual(await scoreRow(portrait, 'composition drift'), ['none', after.compositionDrift.join(', ')]);
  assert.deepEqual(await portrait.locator('td.worse').evaluateAll((nodes) => nodes.map((node) => node.closest('tr')!.dataset.score)), ['prompt tags found', 'vanished subjects', 'composition drift'], 'the new version\'s worse scores marked');
  assert.equal(await page.locator('.compare-template:not([data-template="portrait"]) td.worse').count(), 0);
  assert.deepEqual(await portrait.locator('.template-scores th').allInnerTexts(), ['', 'v1', 'v2', 'prompt tags found', 'vanished subjects', 'composition drift']);

  // A hostile template name and prompt are text: no element made from them, no script run.
  const hostile = page.locator('.compare-template', { has: page.locator('.template-name', { hasText: 'onerror' }) });
  assert.equal(await hostile.locator('.template-name').innerText(), HOSTILE_NAME);
  assert.equal(await hostile.locator('.template-prompt').innerText(), HOSTILE_PROMPT);
  assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no script ran');
  assert.equal(await page.locator('#compare script').count(), 0);
  assert.equal(await page.locator('#compare img').count(), 12, 'the only pictures are the renders: three per seed');

  // A character score, where the summary has one, gets its row; a character regression is told as the others.
  const file = path.join(reviews.trainDir, 'reviews', 'v2', 'review.json');
  const withCharacter = JSON.parse(readFileSync(file, 'utf8')) as ReviewSummary;
  withCharacter.templates[0]!.previous!.character = { name: 'saber', sameShare: 1, meanDifference: 0.08125 };
  withCharacter.templates[0]!.current.character = { name: 'saber', sameShare: 0.5, meanDifference: 0.23456 };
  withCharacter.regressions[0]!.reasons.push({ kind: 'character', previous: 1, current: 0.5 });
  writeFileSync(file, JSON.stringify(withCharacter));
  await page.reload();
  await page.locator('.compare-template[data-template="portrait"] tr[data-score="character"]').waitFor();
  assert.deepEqual(await scoreRow(page.locator('.compare-template[data-template="portrait"]'), 'character'),
    ['saber: 100% of the renders, CCIP difference 0.081', 'saber: 50% of the renders, CCIP difference 0.235']);
  assert.match(await page.locator('li.regression').innerText(), /; renders showing the character fell from 100% to 50%$/);
  assert.equal(await page.locator('.compare-template[data-template="portrait"] tr[data-score="character"] td.worse').count(), 1);
  assert.equal(await page.locator('.compare-template[data-template="scenery"] tr[data-score="character"]').count(), 0, 'only where a template has one');

  // A link to a version not reviewed (or not finished) says so and shows the newest.
  await page.goto(`${url}#compare/v9`);
  await page.locator('#message', { hasText: 'No checkpoint review v9: showing v2' }).waitFor();
  await page.locator('#compare-summary', { hasText: /^v2 / }).waitFor();

  // Long names stay within the window.
  await page.setViewportSize({ width: 640, height: 800 });
  const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth }));
  assert.ok(widths.page <= widths.window, `the page is no wider than the window: ${JSON.stringify(widths)}`);

  // A review that finishes while the tab is open joins the list within 30 s, the version shown staying as it is,
  // and at once when the window shows again. The page runs on Playwright's clock: nothing waits 30 s.
  const watching = await browser.newPage();
  watching.on('pageerror', (error) => errors.push(error.message));
  await watching.clock.install();
  await watching.goto(`${url}#compare/v1`);
  await watching.locator('#compare-summary', { hasText: /^v1 / }).waitFor();
  const listed = () => watching.locator('#compare-version option').evaluateAll((options) => options.map((option) => (option as HTMLOptionElement).value));
  assert.deepEqual(await listed(), ['v2', 'v1']);
  const finish = (version: string, previous: string) => {
    mkdirSync(path.join(reviews.trainDir, 'reviews', version));
    writeFileSync(path.join(reviews.trainDir, 'reviews', version, 'review.json'), JSON.stringify({ ...withCharacter, version, previous }));
  };
  finish('v3', 'v2');
  await watching.clock.runFor(30_000);
  await watching.locator('#compare-version option[value="v3"]').waitFor({ state: 'attached' });
  assert.deepEqual(await listed(), ['v3', 'v2', 'v1']);
  assert.equal(await watching.locator('#compare-version').inputValue(), 'v1', 'the version shown stays picked');
  assert.match(await watching.locator('#compare-summary').innerText(), /^v1 /);
  assert.equal(new URL(watching.url()).hash, '#compare/v1');
  assert.equal(await watching.locator('#message').innerText(), 'Checkpoint v3 reviewed: pick it in the list to compare');
  const setHidden = (hidden: boolean) => watching.evaluate((value) => {
    Object.defineProperty(document, 'hidden', { configurable: true, value });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await setHidden(true);
  finish('v4', 'v3');
  await setHidden(false);
  await watching.locator('#compare-version option[value="v4"]').waitFor({ state: 'attached' });
  assert.deepEqual(await listed(), ['v4', 'v3', 'v2', 'v1'], 'asked again as the window shows, without waiting for the 30 s');
  assert.equal(await watching.locator('#compare-version').inputValue(), 'v1');
  assert.deepEqual(errors, [], 'no script errors or dialogs on the page');
});
