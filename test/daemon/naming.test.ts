import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_NAME_PATTERNS } from '../../src/config/schema.ts';
import { safeName, seriesAndEpisode } from '../../src/daemon/naming.ts';

const name = (file: string, patterns = DEFAULT_NAME_PATTERNS) => seriesAndEpisode(file, ['/inbox'], patterns);

test('series from the folder, episode from the last number of the file name', () => {
  assert.deepEqual(name('/inbox/Fate UBW/Fate UBW - 03 [BD 1080p].m2ts'), { series: 'Fate-UBW', episode: '03' });
  assert.deepEqual(name('/inbox/Show/ep 7.m2ts'), { series: 'Show', episode: '07' });
});

test('files at the inbox root name their own series', () => {
  assert.deepEqual(name('/inbox/Fate UBW - 12.m2ts'), { series: 'Fate-UBW', episode: '12' });
  assert.deepEqual(name('/inbox/show_E05.m2ts'), { series: 'show', episode: '05' });
  assert.deepEqual(name('/inbox/film.m2ts'), { series: 'film', episode: '01' });
  assert.deepEqual(name('/inbox/Reference 01.m2ts'), { series: 'Reference', episode: '01' });
  assert.deepEqual(name('/inbox/Grace - Episode 9.m2ts'), { series: 'Grace', episode: '09' });
});

test('a Blu-ray folder tree is named by its disc folder', () => {
  assert.deepEqual(name('/inbox/Mononoke/BDMV/STREAM/00002.m2ts'), { series: 'Mononoke', episode: '02' });
});

test('a configured pattern wins', () => {
  const patterns = [String.raw`^(?<series>[^/]+)/S\d+E(?<episode>\d+)`];
  assert.deepEqual(name('/inbox/Frieren/S01E14.m2ts', patterns), { series: 'Frieren', episode: '14' });
});

test('names are safe for files and keep any script', () => {
  assert.equal(safeName('進撃の巨人 "Final"; rm -rf /'), '進撃の巨人-Final-rm-rf');
  assert.equal(safeName('../../etc'), 'etc');
  assert.equal(safeName('$()'), 'untitled');
});

test('a video outside the inbox is named by its file name first, then by its folder', () => {
  assert.deepEqual(name('/home/me/Downloads/Show 05.m2ts'), { series: 'Show', episode: '05' });
  assert.deepEqual(name('/mnt/rips/Show/00003.m2ts'), { series: 'Show', episode: '03' });
  assert.deepEqual(name('/mnt/rips/My Show/ep 7.m2ts'), { series: 'My-Show', episode: '07' });
});
