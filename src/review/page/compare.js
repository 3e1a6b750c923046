// The review page's Compare view: the checkpoint reviews, newest first; for
// one version, its flagged regressions at the top (each a link to its
// template), then per template both versions' scores and a row per seed with
// the previous and the new render side by side and a frame that flips
// between the two. `#compare/<version>` opens that version (the notification
// links there). While the tab is shown and the window visible, the versions
// list is asked for again every 30 s (and when the window shows again), so a
// review that finishes meanwhile appears without a reload; the version shown
// stays as it is. Loaded after app.js, whose api, act, element, $ and say it
// uses; template names and prompts are only ever set as text.

/** How often the versions list is asked for while the Compare tab is shown: a review takes minutes. */
const COMPARE_REFRESH_MS = 30_000;

/** Counts the loads, so that an answer to an older one (another version) is not drawn over a newer one. */
let compareLoads = 0;
let compareTimer = null;

const percent = (share) => (share === null || share === undefined ? '–' : `${Math.round(share * 100)}%`);
const tagList = (tags) => (tags?.length ? tags.join(', ') : 'none');
const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`;

/** The version `#compare/<version>` names; null for `#compare`. */
function comparedVersion() {
  const match = /^#compare\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function loadCompare() {
  const load = ++compareLoads;
  const data = await act(() => api('/api/reviews'));
  if (!data || load !== compareLoads) return;
  const select = $('#compare-version');
  fillVersions(data.versions);
  if (!data.versions.length) {
    $('#compare-summary').textContent = 'No checkpoint reviews yet: they appear once a checkpoint has been reviewed after training.';
    $('#compare-sheet').hidden = true;
    $('#compare-regressions').replaceChildren();
    $('#compare-templates').replaceChildren();
    return;
  }
  const wanted = comparedVersion();
  const version = data.versions.some((entry) => entry.version === wanted) ? wanted : data.versions[0].version;
  if (wanted !== null && wanted !== version) say(`No checkpoint review ${wanted}: showing ${version}`);
  select.value = version;
  const review = await act(() => api(`/api/reviews/${encodeURIComponent(version)}`));
  if (!review || load !== compareLoads) return;
  showReview(review);
}

function fillVersions(versions) {
  $('#compare-version').replaceChildren(...versions.map((entry) => element('option', { value: entry.version },
    `${entry.version}: ${entry.checkpoint}, ${plural(entry.regressions, 'regression')} (${new Date(entry.reviewedAt).toLocaleString()})`)));
}

/** The versions list again, now and every COMPARE_REFRESH_MS while the tab is shown and the window visible. */
async function refreshVersions() {
  clearTimeout(compareTimer);
  if (!compareOpen()) return;
  if (!document.hidden) {
    const load = compareLoads;
    const data = await act(() => api('/api/reviews'));
    // A load started meanwhile (another version picked) fills the list itself.
    if (data && load === compareLoads && compareOpen()) {
      const select = $('#compare-version');
      const known = new Set([...select.options].map((option) => option.value));
      const added = data.versions.filter((entry) => !known.has(entry.version)).map((entry) => entry.version);
      if (known.size === 0) {
        if (added.length) loadCompare();
      } else if (added.length) {
        const shown = select.value;
        fillVersions(data.versions);
        select.value = shown;
        say(`Checkpoint ${added.join(', ')} reviewed: pick it in the list to compare`);
      }
    }
  }
  clearTimeout(compareTimer);
  compareTimer = setTimeout(refreshVersions, COMPARE_REFRESH_MS);
}

function showReview(review) {
  const { checkpoint } = review;
  $('#compare-summary').textContent = `${review.version} (${checkpoint.name}${checkpoint.weight === undefined ? '' : ` at ${checkpoint.weight}`})` +
    `${review.previous ? ` against ${review.previous}` : ', the first version'}: ${plural(review.templates.length, 'template')}, ${plural(review.regressions.length, 'regression')}` +
    `, reviewed ${new Date(review.reviewedAt).toLocaleString()}`;
  const sheet = $('#compare-sheet');
  sheet.hidden = !review.sheet;
  if (review.sheet) sheet.href = review.sheet;
  const sections = new Map(review.templates.map((template) =>
    [template.template, templateSection(review, template, review.regressions.find((regression) => regression.template === template.template))]));
  $('#compare-regressions').replaceChildren(regressionList(review, sections));
  $('#compare-templates').replaceChildren(...sections.values());
}

function regressionList(review, sections) {
  if (!review.previous) return element('p', {}, 'The first version: nothing to compare with.');
  if (!review.regressions.length) return element('p', { class: 'no-regressions' }, `No regressions against ${review.previous}.`);
  return element('div', { class: 'regressions' },
    element('h3', {}, `${plural(review.regressions.length, 'regression')} against ${review.previous}`),
    element('ul', {}, ...review.regressions.map((regression) => element('li', { class: 'regression' },
      element('a', { href: `#compare/${review.version}`, class: 'regression-link', onclick: (event) => {
        event.preventDefault();
        const section = sections.get(regression.template);
        for (const other of sections.values()) other.classList.toggle('highlight', other === section);
        section?.scrollIntoView({ block: 'start' });
      } }, regression.template),
      `: ${regression.reasons.map(reasonText).join('; ')}`,
    ))),
  );
}

function reasonText(reason) {
  switch (reason.kind) {
    case 'found': return `prompt tags found fell from ${percent(reason.previous)} to ${percent(reason.current)}`;
    case 'vanished': return `subjects vanished (no_humans found): ${tagList(reason.tags)}`;
    case 'drift': return `composition drifted to ${tagList(reason.tags)}`;
    case 'character': return `renders showing the character fell from ${percent(reason.previous)} to ${percent(reason.current)}`;
    default: {
      const { kind, ...rest } = reason;
      return `${kind} ${JSON.stringify(rest)}`;
    }
  }
}

/** The character a template names, as CCIP saw it in the renders (TemplateScore.character). */
const characterText = (score) => (score?.character
  ? `${score.character.name}: ${percent(score.character.sameShare)} of the renders, CCIP difference ${score.character.meanDifference.toFixed(3)}`
  : '–');

function templateSection(review, template, regression) {
  const { previous, current } = template;
  // [label, shown, the regression reason that marks the new version's cell]
  const rows = [
    ['prompt tags found', (score) => percent(score?.found), 'found'],
    ['vanished subjects', (score) => (score ? tagList(score.vanishedSubjects) : '–'), 'vanished'],
    ['composition drift', (score) => (score ? tagList(score.compositionDrift) : '–'), 'drift'],
  ];
  if (previous?.character || current?.character) rows.push(['character', characterText, 'character']);
  const worse = new Set(regression?.reasons.map((reason) => reason.kind) ?? []);
  return element('div', { class: `compare-template${regression ? ' flagged' : ''}`, 'data-template': template.template },
    element('h3', { class: 'template-name', title: template.template }, template.template),
    element('p', { class: 'template-prompt' }, template.prompt),
    element('table', { class: 'template-scores' },
      element('thead', {}, element('tr', {}, element('th', {}, ''), element('th', {}, review.previous ?? '(none)'), element('th', {}, review.version))),
      element('tbody', {}, ...rows.map(([label, show, reason]) => element('tr', { 'data-score': label },
        element('th', {}, label), element('td', { class: 'previous' }, show(previous)), element('td', { class: `current${worse.has(reason) ? ' worse' : ''}` }, show(current))))),
    ),
    element('div', { class: 'compare-seeds' }, ...template.renders.map((render) => seedRow(review, render))),
  );
}

function renderFigure(kind, address, label) {
  return element('figure', { class: kind },
    address ? element('img', { src: address, loading: 'lazy', alt: label }) : element('div', { class: 'missing' }, 'not rendered'),
    element('figcaption', {}, label));
}

/** The seed's two renders side by side, and one frame that flips between them. */
function seedRow(review, render) {
  const label = (version) => `${version ?? '(none)'}, seed ${render.seed}`;
  const picture = element('img', { class: 'flip-picture', src: render.current, alt: label(review.version) });
  const caption = element('figcaption', {}, label(review.version));
  const frame = element('figure', { class: 'flip', 'data-showing': 'current' }, picture, caption);
  const flip = element('button', { type: 'button', class: 'flip-button', onclick: () => {
    const showing = frame.dataset.showing === 'current' ? 'previous' : 'current';
    const version = showing === 'current' ? review.version : review.previous;
    frame.dataset.showing = showing;
    picture.src = render[showing];
    picture.alt = label(version);
    caption.textContent = label(version);
    flip.textContent = `Show ${showing === 'current' ? review.previous : review.version}`;
  } }, `Show ${review.previous ?? 'previous'}`);
  if (!render.previous || !render.current) flip.disabled = true;
  return element('div', { class: 'compare-seed', 'data-seed': render.seed },
    renderFigure('previous', render.previous, label(review.previous)),
    renderFigure('current', render.current, label(review.version)),
    element('div', { class: 'flip-box' }, frame, flip),
  );
}

$('#compare-version').addEventListener('change', (event) => {
  location.hash = `#compare/${encodeURIComponent(event.target.value)}`;
});

const compareOpen = () => /^#compare(\/|$)/.test(location.hash);

function showCompareIfOpen() {
  if (!compareOpen()) return;
  loadCompare();
  clearTimeout(compareTimer);
  compareTimer = setTimeout(refreshVersions, COMPARE_REFRESH_MS);
}
window.addEventListener('hashchange', showCompareIfOpen);
document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshVersions(); });
showCompareIfOpen();
