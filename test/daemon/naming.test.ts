import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.ts';
import { safeName, seriesAndEpisode } from '../../src/daemon/naming.ts';

const DEFAULT_PATTERNS = validateConfig({}, 'test', '/project').naming.patterns;
const name = (file: string, patterns: readonly string[] = DEFAULT_PATTERNS) => seriesAndEpisode(file, ['/inbox'], patterns);

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

test('the names that used to go wrong', () => {
  assert.deepEqual(name('/inbox/Show - 03 1080p.m2ts'), { series: 'Show', episode: '03' }); // was series "Show-03", episode "1080"
  assert.deepEqual(name('/inbox/Show S01E03.m2ts'), { series: 'Show', episode: '03' }); // was series "Show-S01E"
  assert.deepEqual(name('/inbox/Show - 03v2.m2ts'), { series: 'Show', episode: '03' }); // was episode "02"
  assert.deepEqual(name('/inbox/Show/Disc1/00001.m2ts'), { series: 'Show', episode: 'disc1-00001' }); // was series "Disc1"
  assert.deepEqual(name('/inbox/big4k.m2ts'), { series: 'big4k', episode: '01' }); // was episode "04"
});

test('Blu-ray disc folders: the title folder is the series; two discs never share an episode', () => {
  const discs = [
    ['/inbox/Title/BDMV/STREAM/00001.m2ts', { series: 'Title', episode: '01' }],
    ['/inbox/Title/Disc1/00001.m2ts', { series: 'Title', episode: 'disc1-00001' }],
    ['/inbox/Title/Disc2/00001.m2ts', { series: 'Title', episode: 'disc2-00001' }],
    ['/inbox/Title/Disc 2/BDMV/STREAM/00003.m2ts', { series: 'Title', episode: 'disc2-00003' }],
    ['/inbox/Title/DISC_1/BDMV/STREAM/00003.m2ts', { series: 'Title', episode: 'disc1-00003' }],
    ['/inbox/Title/Vol.3/BDMV/STREAM/00003.m2ts', { series: 'Title', episode: 'disc3-00003' }],
    ['/inbox/[BDMV] Title Vol.1/BDMV/STREAM/00002.m2ts', { series: 'Title', episode: 'disc1-00002' }],
    ['/inbox/[BDMV][Group] Title [Disc 4]/BDMV/STREAM/00002.m2ts', { series: 'Title', episode: 'disc4-00002' }],
    ['/inbox/Title Season 2/Disc 1/BDMV/STREAM/00002.m2ts', { series: 'Title-S2', episode: 'disc1-00002' }],
    ['/mnt/rips/Title/Disc 2/BDMV/STREAM/00003.m2ts', { series: 'Title', episode: 'disc2-00003' }],
  ] as const;
  for (const [file, expected] of discs) assert.deepEqual(name(file), expected, file);
});

// Release names as they are found: fansub, scene, Sonarr/Plex, Chinese fansub, films, extras.
const RELEASES: [string, string, string][] = [
  ['[SubsPlease] Sousou no Frieren - 03 (1080p) [ABCD1234].mkv', 'Sousou-no-Frieren', '03'],
  ['[Group] Show Name - 03 [1080p][ABCD1234].mkv', 'Show-Name', '03'],
  ['[Erai-raws] Show Name - 03 [1080p][Multiple Subtitle][ABCD1234].mkv', 'Show-Name', '03'],
  ['[Group] Show Name - 03v2 [BD 1080p HEVC 10bit FLAC] [ABCD1234].mkv', 'Show-Name', '03'],
  ['[Group] Show Name - 03 [BD 1080p AVC AAC] [v2].mkv', 'Show-Name', '03'],
  ['[Group] Show Name 03 [Hi10P 1080p][ABCD1234].mkv', 'Show-Name', '03'],
  ['[Group]_Show_Name_-_03_[BD_1080p_FLAC][ABCD1234].mkv', 'Show-Name', '03'],
  ['[Group] Show Name - 03 (BD 1080p HEVC 10-bit FLAC) [Dual Audio].mkv', 'Show-Name', '03'],
  ['[Group] Show Name - 12 END [1080p].mkv', 'Show-Name', '12'],
  ['[Group] Show Name - 13.5 [1080p].mkv', 'Show-Name', '13.5'],
  ['[Group] Show Name S2 - 05 [1080p].mkv', 'Show-Name-S2', '05'],
  ['[Group] Show 4k - 03.mkv', 'Show', '03'],
  ['[Nekomoe kissaten][Show Name][03][1080p][CHS].mp4', 'Show-Name', '03'],
  ['[Group] Show Name [07][BD 1080p].mkv', 'Show-Name', '07'],
  ['Show Name 03v2 (BD 1920x1080 HEVC FLAC).mkv', 'Show-Name', '03'],
  ['Show Name - 03 [1920x1080 x264 10bit AAC].mkv', 'Show-Name', '03'],
  ['Show Name - 03 (4K HDR).mkv', 'Show-Name', '03'],
  ['Show Name - 03 - The Title [1080p].mkv', 'Show-Name', '03'],
  ['Show.Name.S01E03.1080p.BluRay.x264-GRP.mkv', 'Show-Name', '03'],
  ['Show.Name.S01E03.1080p.BluRay.x264-GRP[rarbg].mkv', 'Show-Name', '03'],
  ['Show.Name.S01E03.1080p.WEB-DL.DDP5.1.H.264-GRP.mkv', 'Show-Name', '03'],
  ['Show.Name.S02E05.Episode.Title.2160p.UHD.BluRay.REMUX.HDR.HEVC.DTS-HD.MA.5.1-GRP.mkv', 'Show-Name-S2', '05'],
  ['My Hero Academia S05E03 1080p WEB H264-GRP.mkv', 'My-Hero-Academia-S5', '03'],
  ['Show Name (2019) - S01E03 - Title (1080p BluRay x265 Silence).mkv', 'Show-Name', '03'],
  ['Show Name - S01E03 - Episode Title [Bluray-1080p][10bit][x265][FLAC 2.0][JA]-Group.mkv', 'Show-Name', '03'],
  ['Show Name S01 E03.mkv', 'Show-Name', '03'],
  ['Show Name - 1x03 [720p].mkv', 'Show-Name', '03'],
  ['Show Name Season 2 - 05.mkv', 'Show-Name-S2', '05'],
  ['Show Name 2nd Season - 05 [BD 1080p].mkv', 'Show-Name-S2', '05'],
  ['Show Name Ep03 [720p].mkv', 'Show-Name', '03'],
  ['Show Name Episode 12.mkv', 'Show-Name', '12'],
  ['Show Name #07.mkv', 'Show-Name', '07'],
  ['Show.Name.E03.1080p.mkv', 'Show-Name', '03'],
  ['Show-03.m2ts', 'Show', '03'],
  ['Re-Zero-03.mkv', 'Re-Zero', '03'],
  ['Mob Psycho 100 - 03 [1080p].mkv', 'Mob-Psycho-100', '03'],
  ['86 - 03 [1080p].mkv', '86', '03'],
  ['Steins;Gate 0 - 03 [BD 1080p HEVC].mkv', 'Steins-Gate-0', '03'],
  ['進撃の巨人 第03話.mkv', '進撃の巨人', '03'],
  // films: no episode number, and no number taken from a tag or a year
  ['Akira (1988) [BD 1080p x265 10bit FLAC].mkv', 'Akira', '01'],
  ['Your.Name.2016.1080p.BluRay.x264.DTS-HD.MA.5.1-GRP.mkv', 'Your-Name', '01'],
  ['Movie.Name.2016.PROPER.1080p.BluRay.x264-GRP.mkv', 'Movie-Name', '01'],
  ['[Group] Show Name OVA [BD 1080p].mkv', 'Show-Name-OVA', '01'],
  ['big4k.m2ts', 'big4k', '01'],
  // folders: the user's series folder, release folders, season and extras folders
  ['[Group] Show Name (BD 1080p)/[Group] Show Name - 03 [1080p].mkv', 'Show-Name', '03'],
  ['Show.Name.S01.1080p.BluRay.x264-GRP/Show.Name.S01E03.1080p.BluRay.x264-GRP.mkv', 'Show-Name', '03'],
  ['Frieren/[SubsPlease] Sousou no Frieren - 03 (1080p) [ABCD1234].mkv', 'Frieren', '03'],
  ['Show Name/Season 2/Show Name - S02E05.mkv', 'Show-Name-S2', '05'],
  ['Show Name/Specials/Show Name - NCOP1.mkv', 'Show-Name-Specials', 'NCOP1'],
  ['Movie Name (2019)/Movie.Name.2019.1080p.BluRay.x264-GRP.mkv', 'Movie-Name', '01'],
  ['Show/NCOP.m2ts', 'Show', 'NCOP'],
];

test(`${RELEASES.length} real-world release names`, () => {
  assert.ok(RELEASES.length >= 30);
  const wrong = RELEASES
    .map(([file, series, episode]) => ({ file, expected: { series, episode }, actual: name(`/inbox/${file}`) }))
    .filter(({ expected, actual }) => expected.series !== actual.series || expected.episode !== actual.episode);
  assert.deepEqual(wrong, []);
});

test('configured patterns still come first, including the patterns of earlier versions', () => {
  const earlierDefaults = [
    String.raw`^(?:.*/)?(?<series>[^/]+)/[^/]*?(?<episode>\d+)[^/\d]*$`,
    String.raw`^(?!(?:ep?|episode)[\s._-]*\d)(?<series>[^/]*?[^/\d\s._-][^/]*?)[\s._-]*(?:(?<=[\s._-])(?:ep?|episode)[\s._-]*)?(?<episode>\d+)[^/\d]*$`,
  ];
  assert.deepEqual(name('/inbox/Show - 03 1080p.m2ts', earlierDefaults), { series: 'Show-03', episode: '1080' }, 'as configured, even when worse');
  assert.deepEqual(name('/inbox/Mononoke/BDMV/STREAM/00002.m2ts', earlierDefaults), { series: 'Mononoke', episode: '02' });
  // A pattern that does not match leaves the name to the release-name reader.
  assert.deepEqual(name('/inbox/Show S01E03.m2ts', [String.raw`^never (?<series>x) (?<episode>\d+)$`]), { series: 'Show', episode: '03' });
});
