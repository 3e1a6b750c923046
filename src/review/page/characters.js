// The review page's Characters view: one row per character cluster of a
// series, with sample crops; a person names a cluster, merges another into
// it, moves crops out of it or marks it noise. Loaded after app.js, whose
// api, act, element, $ and say it uses; names are only ever set as text.

let characterSeries = null;
/** Counts the loads of the rows, so that an answer to an older one (another series) is not drawn over a newer one. */
let clusterLoads = 0;
/** Clusters whose every member is shown instead of the samples. */
const expandedClusters = new Set();

const clusterLabel = (cluster) => cluster.name ?? `Cluster ${cluster.id}`;

/** While the rows load again, the ones shown take no input: they are about to be replaced, and a name typed into one would be lost. */
function rowsLoading(loading) {
  const rows = $('#clusters');
  rows.inert = loading;
  rows.setAttribute('aria-busy', String(loading));
}

async function loadCharacters() {
  rowsLoading(true);
  const data = await act(() => api('/api/characters'));
  if (!data) return rowsLoading(false);
  const select = $('#character-series');
  select.replaceChildren(...data.series.map((series) => element('option', { value: series }, series)));
  if (characterSeries && data.series.includes(characterSeries)) select.value = characterSeries;
  characterSeries = select.value || null;
  if (characterSeries) return loadClusters();
  $('#character-count').textContent = 'No character clusters yet: they appear once the characters stage has run.';
  $('#clusters').replaceChildren();
  rowsLoading(false);
}

async function loadClusters() {
  const load = ++clusterLoads;
  rowsLoading(true);
  try {
    const data = await act(() => api(`/api/characters/clusters?series=${encodeURIComponent(characterSeries)}`));
    if (!data) return;
    const rows = await Promise.all(data.clusters.map((cluster) => clusterRow(cluster, data.clusters)));
    if (load !== clusterLoads) return;
    $('#character-count').textContent = `${data.clusters.length} clusters`;
    showConflicts(data.conflicts);
    $('#clusters').replaceChildren(...rows);
  } finally {
    if (load === clusterLoads) rowsLoading(false);
  }
}

/** A link to the images flagged where a tagger's character tag and the clusters disagree, opened in Tag review. */
function showConflicts({ tag, count }) {
  const link = $('#character-conflicts');
  link.hidden = count === 0;
  link.textContent = `${count} image(s) where a tagger's character tag and the clusters disagree`;
  link.onclick = () => { $('#query').value = tag; };
}

/** A change to a cluster, then the series' rows again. */
async function changeCluster(id, change, body, done) {
  if (await act(() => api(`/api/characters/clusters/${id}/${change}`, body), done)) await loadClusters();
}

async function clusterRow(cluster, all) {
  const expanded = expandedClusters.has(cluster.id);
  const crops = expanded ? (await act(() => api(`/api/characters/clusters/${cluster.id}/members`)))?.members ?? [] : cluster.samples;
  const others = all.filter((other) => other.id !== cluster.id);
  const nameInput = element('input', { class: 'cluster-name-input', value: cluster.name ?? '', placeholder: 'character name', maxlength: 100 });
  const mergeSelect = element('select', { class: 'merge-with' }, ...others.map((other) => element('option', { value: other.id }, `${clusterLabel(other)} (${other.size})`)));
  const picked = new Set();
  const moveOut = element('button', { type: 'button', class: 'move-out', disabled: '', onclick: () =>
    changeCluster(cluster.id, 'move-out', { hashes: [...picked] }, `${picked.size} crop(s) moved out of ${clusterLabel(cluster)}`) }, 'Move selected out');
  const pick = (hash, on) => {
    if (on) picked.add(hash);
    else picked.delete(hash);
    moveOut.disabled = picked.size === 0;
    moveOut.textContent = picked.size ? `Move ${picked.size} selected out` : 'Move selected out';
  };
  return element('div', { class: `cluster${cluster.noise ? ' noise' : ''}`, 'data-cluster': cluster.id },
    element('div', { class: 'cluster-head' },
      element('h3', { class: 'cluster-name', title: clusterLabel(cluster) }, clusterLabel(cluster)),
      element('span', { class: 'cluster-size' }, `${cluster.size} crops`),
      cluster.noise ? element('span', { class: 'noise-badge' }, 'noise') : '',
      element('form', { class: 'name-form', onsubmit: (event) => {
        event.preventDefault();
        const name = nameInput.value.trim();
        if (name) changeCluster(cluster.id, 'name', { name }, (result) => `Cluster ${cluster.id} named: search ${result.tag}`);
      } }, nameInput, element('button', { type: 'submit' }, 'Name')),
      others.length ? element('span', { class: 'merge' }, mergeSelect, element('button', { type: 'button', class: 'merge-into', onclick: () => {
        const other = Number(mergeSelect.value);
        changeCluster(cluster.id, 'merge', { other }, `Cluster ${other} merged into ${clusterLabel(cluster)}`);
      } }, 'Merge into this')) : '',
      element('button', { type: 'button', class: 'toggle-noise', onclick: () => changeCluster(cluster.id, 'noise', { noise: !cluster.noise },
        cluster.noise ? `${clusterLabel(cluster)} is a character again` : `${clusterLabel(cluster)} marked noise`) }, cluster.noise ? 'Not noise' : 'Mark noise'),
      cluster.size > cluster.samples.length ? element('button', { type: 'button', class: 'show-all', onclick: () => {
        if (expanded) expandedClusters.delete(cluster.id);
        else expandedClusters.add(cluster.id);
        loadClusters();
      } }, expanded ? 'Show samples' : `Show all ${cluster.size}`) : '',
      moveOut,
    ),
    element('div', { class: 'crops' }, ...crops.map((crop) => element('figure', { class: 'crop', 'data-hash': crop.hash },
      element('label', { title: 'Select to move it out of the cluster' },
        element('img', { src: crop.picture, loading: 'lazy', alt: `crop ${crop.hash.slice(0, 12)}` }),
        element('input', { type: 'checkbox', class: 'pick', onchange: (event) => {
          pick(crop.hash, event.target.checked);
          event.target.closest('figure').classList.toggle('picked', event.target.checked);
        } }),
      ),
    ))),
  );
}

$('#character-series').addEventListener('change', (event) => {
  characterSeries = event.target.value;
  loadClusters();
});

function showCharactersIfOpen() {
  if (location.hash === '#characters') loadCharacters();
}
window.addEventListener('hashchange', showCharactersIfOpen);
showCharactersIfOpen();
