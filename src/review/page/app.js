// The review page: plain browser JavaScript, no build. Every change is a
// POST to /api/ with the token the server put into the page.
const token = document.querySelector('meta[name="celforge-token"]').content;
const loginOn = document.querySelector('meta[name="celforge-login"]')?.content === 'on';
/** How often the dashboard asks for the jobs' state while it is shown. */
const DASHBOARD_REFRESH_MS = 3000;
const $ = (selector) => document.querySelector(selector);

async function api(path, body) {
  const response = await fetch(path, body === undefined
    ? { headers: { Accept: 'application/json' } }
    : { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Celforge-Token': token }, body: JSON.stringify(body) });
  if (response.status === 401 && loginOn) location.assign('/login');
  const value = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(value.error ?? `${response.status} ${response.statusText}`);
  return value;
}

function say(text) {
  $('#message').textContent = text;
}

async function act(work, done) {
  try {
    const result = await work();
    if (done) say(typeof done === 'function' ? done(result) : done);
    return result;
  } catch (error) {
    say(`Error: ${error.message}`);
    return undefined;
  }
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const splitTags = (text) => text.split(',').map((tag) => tag.trim()).filter(Boolean);

// Tabs

function showTab() {
  // `#compare/v2` is the Compare tab opened on a version.
  const name = (location.hash || '#dashboard').slice(1).split('/')[0];
  for (const section of document.querySelectorAll('.tab')) section.hidden = section.id !== name;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.tab === name);
  if (name === 'dashboard') refreshDashboard();
  if (name === 'dedup') loadDedupJobs();
  if (name === 'tags') runSearch();
}
window.addEventListener('hashchange', showTab);

// Dashboard

let dashboardTimer = null;
let dashboardLoading = false;

/** Loads the dashboard now and again every few seconds while its tab is shown and the window visible. */
async function refreshDashboard() {
  clearTimeout(dashboardTimer);
  if ((location.hash || '#dashboard') !== '#dashboard') return;
  if (!document.hidden && !dashboardLoading) {
    dashboardLoading = true;
    try {
      await loadDashboard();
    } finally {
      dashboardLoading = false;
    }
  }
  clearTimeout(dashboardTimer);
  dashboardTimer = setTimeout(refreshDashboard, DASHBOARD_REFRESH_MS);
}
document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshDashboard(); });

async function loadDashboard() {
  const status = await act(() => api('/api/status'));
  if (!status) return;
  const rows = status.jobs.map((job) => element('tr', { 'data-job': job.id },
    element('td', {}, job.source.split('/').at(-1)),
    element('td', {}, job.stage),
    element('td', { class: 'state' }, job.state + (job.waitingFor ? `: ${job.waitingFor.reason}` : '') + diskText(job) + (job.error ? `: ${job.error.message}` : '') + (job.notes ?? []).map((note) => ` (note: ${note.message})`).join('')),
    element('td', {}, job.progress ? element('progress', { max: job.progress.total || 1, value: job.progress.done }) : ''),
    element('td', {}, String(job.frames)),
    element('td', {}, String(job.kept)),
    element('td', {}, job.withFaces ?? ''),
    element('td', {}, job.tagged ?? ''),
    element('td', {}, element('a', { href: `#dedup`, onclick: () => { selectedJob = job.id; } }, 'review')),
  ));
  $('#jobs tbody').replaceChildren(...rows);
  const training = status.training;
  // Without a train section there is nothing to queue and no loss to draw.
  for (const node of document.querySelectorAll('.training-only')) node.hidden = !status.trainingConfigured;
  $('#training').textContent = !status.trainingConfigured
    ? 'Training is not configured (no train section in the configuration).'
    : training
      ? `${training.status}: step ${training.seenSteps} of ${training.targetSteps} (${training.savedSteps} saved)` +
        (training.progress?.rate ? `, ${training.progress.rate.toFixed(2)} steps/s` : '') +
        (training.progress?.loss != null ? `, loss ${training.progress.loss}` : '') + (training.reason ? ` - ${training.reason}` : '')
      : 'No training yet.';
  drawLoss(status.loss);
  drawQueue(status.queue);
  $('#models').replaceChildren(...status.models.map((model) => element('li', {}, `${model.id} (${model.kind}): ${model.state}`)));
}

/** The Workers panel (queue.redis only): the queue's depths, each worker and its current job, the failed jobs with their errors. */
function drawQueue(queue) {
  $('#workers-panel').hidden = !queue;
  if (!queue) return;
  const workers = queue.workers ?? [];
  const failed = queue.failed ?? [];
  const depths = queue.depths;
  $('#queue-summary').textContent = queue.error
    ? `Job queue ${queue.redis}: ${queue.error}`
    : `Job queue ${queue.redis}: ${depthText(depths)}; ${workers.length} worker${workers.length === 1 ? '' : 's'}`;
  $('#queue-kinds').replaceChildren(...Object.entries(queue.queues ?? {}).map(([kind, each]) => element('li', { 'data-queue': kind }, `${kind}: ${depthText(each)}`)));
  $('#workers tbody').replaceChildren(...workers.map((worker) => element('tr', { 'data-worker': worker.id, class: worker.stopped ? 'stopped' : undefined },
    element('td', {}, `${worker.host} (pid ${worker.pid})`),
    element('td', {}, worker.gpu === null ? '' : String(worker.gpu)),
    element('td', { class: 'job' }, worker.job ? `${worker.job}${worker.video ? ` ${worker.video.split(/[\\/]/).at(-1)}` : ''}` : 'idle'),
    element('td', {}, worker.progress ? element('progress', { max: worker.progress.total || 1, value: worker.progress.done, title: `${worker.progress.done} of ${worker.progress.total}` }) : ''),
    element('td', { class: 'seen' }, `${secondsAgo(worker.lastSeen)} s ago${worker.stopped ? ' (stopped?)' : ''}`),
  )));
  $('#workers').hidden = !workers.length;
  $('#failed-jobs tbody').replaceChildren(...failed.map((job) => element('tr', { 'data-queue-job': job.id },
    element('td', {}, job.id),
    element('td', {}, job.video),
    element('td', {}, String(job.attempts)),
    element('td', { class: 'error' }, job.error ?? 'no reason given'),
  )));
  $('#failed-jobs').hidden = !failed.length;
}

const depthText = (depths) => `${depths.waiting} waiting, ${depths.active} running, ${depths.delayed} waiting to retry, ${depths.failed} failed`;
const secondsAgo = (time) => Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));

const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

function diskText(job) {
  if (!job.disk || (job.state !== 'waiting-for-disk' && job.state !== 'paused-disk-low')) return '';
  return ` (needs ${gib(job.disk.neededBytes)} + ${gib(job.disk.reserveBytes)} reserve, ${gib(job.disk.freeBytes)} free)`;
}

function drawLoss(points) {
  const svg = $('#loss');
  svg.replaceChildren();
  $('#loss-box').hidden = !points.length;
  if (!points.length) return;
  const steps = points.map((p) => p.step);
  const losses = points.map((p) => p.loss);
  const [minStep, maxStep] = [Math.min(...steps), Math.max(...steps)];
  const [minLoss, maxLoss] = [Math.min(...losses), Math.max(...losses)];
  const x = (step) => (maxStep === minStep ? 300 : ((step - minStep) / (maxStep - minStep)) * 590 + 5);
  const y = (loss) => (maxLoss === minLoss ? 80 : 155 - ((loss - minLoss) / (maxLoss - minLoss)) * 150);
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', points.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' '));
  svg.append(line);
}

$('#train-queue').addEventListener('click', () => act(() => api('/api/train', { now: false }), 'Training queued for the next window'));
$('#train-now').addEventListener('click', () => act(() => api('/api/train', { now: true }), 'Training starts now when the machine is idle'));
$('#export-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  act(() => api('/api/export', { query: form.get('query'), name: form.get('name') }), (result) => `Exported ${result.images} images to ${result.out}`);
});

// Dedup review

let selectedJob = null;

async function loadDedupJobs() {
  const status = await act(() => api('/api/status'));
  if (!status) return;
  const select = $('#dedup-job');
  const jobs = status.jobs.filter((job) => job.frames > 0);
  select.replaceChildren(...jobs.map((job) => element('option', { value: job.id }, `${job.series} ${job.folder ?? job.episode}`)));
  if (selectedJob && jobs.some((job) => job.id === selectedJob)) select.value = selectedJob;
  selectedJob = select.value || null;
  if (selectedJob) loadScenes();
}

$('#dedup-job').addEventListener('change', (event) => {
  selectedJob = event.target.value;
  loadScenes();
});

async function loadScenes() {
  const data = await act(() => api(`/api/jobs/${selectedJob}/scenes`));
  if (!data) return;
  const sceneNodes = data.scenes.map(({ scene, frames }) => {
    const kept = frames.filter((frame) => frame.status === 'kept');
    const drawings = kept.map((frame) => {
      const duplicates = frames.filter((other) => other.status === 'duplicate' && other.duplicateOf === frame.frame);
      const others = kept.filter((other) => other.frame !== frame.frame);
      return element('div', { class: 'drawing', 'data-frame': frame.frame },
        element('figure', { class: 'kept' },
          element('img', { src: frame.picture, loading: 'lazy', alt: `frame ${frame.frame}` }),
          element('figcaption', {}, `frame ${frame.frame}${frame.faces ? `, ${frame.faces} face(s)` : ''}`),
          frame.hash ? element('button', { class: 'reject', onclick: () => act(() => api(`/api/images/${frame.hash}/reject`, {}), `Frame ${frame.frame} rejected`).then(loadScenes) }, 'Reject') : '',
          others.length ? element('button', {
            class: 'mark-duplicate',
            onclick: () => {
              const of = Number(prompt(`Frame ${frame.frame} repeats which kept frame?`, String(others.at(-1).frame)));
              if (Number.isInteger(of)) act(() => api(`/api/jobs/${selectedJob}/frames/${frame.frame}/duplicate`, { of }), `Frame ${frame.frame} marked a duplicate of ${of}`).then(loadScenes);
            },
          }, 'Mark duplicate') : '',
        ),
        ...duplicates.map((dup) => element('figure', { class: 'duplicate', 'data-frame': dup.frame },
          element('img', { src: dup.picture, loading: 'lazy', alt: `duplicate frame ${dup.frame}` }),
          element('figcaption', {}, `frame ${dup.frame}`),
          element('button', { class: 'restore', onclick: () => act(() => api(`/api/jobs/${selectedJob}/frames/${dup.frame}/restore`, {}), `Frame ${dup.frame} restored`).then(loadScenes) }, 'Restore'),
        )),
      );
    });
    const orphans = frames.filter((frame) => frame.status === 'duplicate' && !kept.some((k) => k.frame === frame.duplicateOf));
    return element('div', { class: 'scene', 'data-scene': scene },
      element('h3', {}, `Scene ${scene}: ${kept.length} kept, ${frames.length - kept.length} duplicates${orphans.length ? ` (${orphans.length} repeat earlier scenes)` : ''}`),
      ...drawings,
      ...orphans.map((dup) => element('figure', { class: 'duplicate', 'data-frame': dup.frame },
        element('img', { src: dup.picture, loading: 'lazy', alt: `duplicate frame ${dup.frame}` }),
        element('figcaption', {}, `frame ${dup.frame} = ${dup.duplicateOf}`),
        element('button', { class: 'restore', onclick: () => act(() => api(`/api/jobs/${selectedJob}/frames/${dup.frame}/restore`, {}), `Frame ${dup.frame} restored`).then(loadScenes) }, 'Restore'),
      )),
    );
  });
  $('#scenes').replaceChildren(...sceneNodes);
}

// Tag review

const selection = new Set();
let shown = [];

async function runSearch() {
  const query = $('#query').value;
  const result = await act(() => api(`/api/search?q=${encodeURIComponent(query)}&limit=200`));
  if (!result) return;
  shown = result.images;
  for (const hash of [...selection]) if (!shown.some((image) => image.hash === hash)) selection.delete(hash);
  $('#result-count').textContent = `${result.count} images${result.count > shown.length ? ` (first ${shown.length} shown)` : ''}`;
  $('#tag-counts').replaceChildren(...result.tagCounts.map(({ tag, count }) => element('li', {},
    element('a', { href: '#tags', title: tag, onclick: (event) => { event.preventDefault(); $('#query').value = `${query} ${tag}`.trim(); runSearch(); } }, tag),
    element('span', { class: 'count' }, String(count)))));
  renderGrid();
}

function renderGrid() {
  $('#grid').replaceChildren(...shown.map((image) => element('div', { class: `cell${selection.has(image.hash) ? ' selected' : ''}`, 'data-hash': image.hash },
    element('label', {}, element('input', {
      type: 'checkbox', class: 'select', ...(selection.has(image.hash) ? { checked: '' } : {}),
      onchange: (event) => { if (event.target.checked) selection.add(image.hash); else selection.delete(image.hash); renderGrid(); },
    }), ` ${image.series ?? ''} ${image.episode ?? ''} ${image.frame ?? ''}`),
    element('img', { src: image.picture, loading: 'lazy', alt: image.hash.slice(0, 12), onclick: () => openEditor(image.hash) }),
    element('div', { class: 'tags' }, image.tags.filter((tag) => !tag.includes(':')).join(', ')),
  )));
  $('#selection-count').textContent = `${selection.size} selected`;
}

$('#search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  runSearch();
});
$('#select-all').addEventListener('click', () => { for (const image of shown) selection.add(image.hash); renderGrid(); });
$('#select-none').addEventListener('click', () => { selection.clear(); renderGrid(); });
$('#bulk-apply').addEventListener('click', async () => {
  const add = splitTags($('#bulk-add').value);
  const remove = splitTags($('#bulk-remove').value);
  if (!selection.size || (!add.length && !remove.length)) return say('Select images and name tags to add or remove');
  const done = await act(() => api('/api/tags', { hashes: [...selection], add, remove }), (result) => `Changed ${result.images} images`);
  if (done) {
    $('#bulk-add').value = '';
    $('#bulk-remove').value = '';
    runSearch();
  }
});

let editing = null;

async function openEditor(hash) {
  editing = hash;
  $('#editor-picture').src = `/api/images/${hash}`;
  await renderEditorTags();
  $('#editor').showModal();
}

async function renderEditorTags() {
  const data = await act(() => api(`/api/images/${editing}/tags`));
  if (!data) return;
  $('#editor-tags').replaceChildren(...data.tags.map((tag) => element('li', {}, tag, ' ',
    element('button', { type: 'button', class: 'remove-tag', onclick: () => act(() => api(`/api/images/${editing}/tags`, { remove: [tag] })).then(renderEditorTags) }, 'x'))));
}

$('#editor-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const add = splitTags($('#editor-add').value);
  if (!add.length) return;
  await act(() => api(`/api/images/${editing}/tags`, { add }));
  $('#editor-add').value = '';
  renderEditorTags();
});
$('#editor-reject').addEventListener('click', async () => {
  await act(() => api(`/api/images/${editing}/reject`, {}), 'Image rejected');
  $('#editor').close();
  runSearch();
});
$('#editor-close').addEventListener('click', () => { $('#editor').close(); runSearch(); });

if (loginOn) $('#logout').hidden = false;
showTab();
