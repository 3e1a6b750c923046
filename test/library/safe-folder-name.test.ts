/**
 * Safe folder names for both users of safeFolderName: the checkpoint review's
 * template folders (templateFolder) and the export's subset folders
 * (subsetFolders), on adversarial names: Windows' reserved names in any case
 * and with an extension, dots, trailing spaces, unicode, 200 characters, and
 * names differing only in case. Each folder is made on disk, must be one
 * Windows accepts as it is, and a template's must be one the Compare API's
 * render route matches.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cutToBytes, nameDigest, safeFolderName } from '../../src/library/safe-folder-name.ts';
import { REVIEW_ROUTES } from '../../src/review/reviews-api.ts';
import { templateFolder } from '../../src/stages/checkpoint-review/templates.ts';
import { subsetFolders } from '../../src/stages/export/subset-folders.ts';
import { tempDir } from '../helpers.ts';

const ADVERSARIAL = [
  'con', 'CON', 'Con', 'nul', 'NUL', 'aux', 'prn', 'com1', 'COM9', 'lpt1', 'LPT¹', 'com²',
  'nul.txt', 'CON.tar.gz', 'con ', ' con', 'con.', 'aux_', 'console', 'connect', 'nullable',
  '.', '..', '...', '.hidden', 'a.', 'a..', 'a. .', 'trailing ', 'trailing  ', 'two words',
  '進撃の巨人', 'é', 'e\u0301', 'Ünïcödé', '😀', 'ᚠᛇᚻ',
  'x'.repeat(200), `${'x'.repeat(199)}y`, 'é'.repeat(200), 'X'.repeat(200),
  'Portrait', 'portrait', 'PORTRAIT', 'a/b', 'a\\b', 'a:b', 'a*b?', '<>|"', '', ' ', '-', '_', 'a\u0000b', 'tab\there',
];

/** What Windows refuses or alters in a file or folder name (Microsoft, "Naming Files, Paths, and Namespaces"). */
function windowsProblem(folder: string): string | null {
  if (/^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i.test(folder)) return 'a reserved device name';
  if (/[. ]$/.test(folder)) return 'a trailing dot or space, which Windows drops';
  if (/[<>:"/\\|?*\u0000-\u001f]/.test(folder)) return 'a character Windows refuses';
  if (folder === '' || folder === '.' || folder === '..') return 'not a name';
  return null;
}

const renderRoute = REVIEW_ROUTES.find(([, pattern]) => pattern.source.includes('renders'))![1];

test('template folders: reserved names in any case are renamed, every folder is Windows-safe, apart ignoring case, within 60 bytes and served by the Compare API', (t) => {
  const dir = tempDir(t);
  const folders = ADVERSARIAL.map((name) => [name, templateFolder(name)] as const);
  for (const [name, folder] of folders) {
    assert.equal(windowsProblem(folder), null, `${JSON.stringify(name)} -> ${JSON.stringify(folder)}: ${windowsProblem(folder)}`);
    assert.match(folder, /^[A-Za-z0-9-][A-Za-z0-9._-]*$/, JSON.stringify(name));
    assert.ok(Buffer.byteLength(folder) <= 60, `${folder}: ${Buffer.byteLength(folder)} bytes`);
    assert.ok(renderRoute.test(`/api/reviews/v1/renders/${folder}/11`), `the Compare API serves ${folder}`);
    mkdirSync(path.join(dir, folder));
  }
  assert.equal(new Set(folders.map(([, folder]) => folder.toLowerCase())).size, ADVERSARIAL.length, 'distinct on a case-blind disk');
  assert.equal(readdirSync(dir).length, ADVERSARIAL.length);

  assert.equal(templateFolder('con'), `con-${nameDigest('con')}`, 'the lower-case reserved name gets its digest');
  assert.equal(templateFolder('nul.txt'), `nul_txt-${nameDigest('nul.txt')}`, 'with an extension the dot goes too: "nul.txt-…" is NUL to Windows');
  assert.equal(templateFolder('a.'), `a.-${nameDigest('a.')}`);
  // Names it kept before stay as they were: stored renders are found again.
  for (const kept of ['portrait', 'wild-1', 'back.ground_2', 'console', 'x'.repeat(60)]) assert.equal(templateFolder(kept), kept);
  assert.equal(templateFolder('Portrait'), `Portrait-${nameDigest('Portrait')}`);
  assert.equal(templateFolder('x'.repeat(200)), `${'x'.repeat(51)}-${nameDigest('x'.repeat(200))}`);
});

test('subset folders: the same names are Windows-safe, apart ignoring case and within 64 bytes; names the export kept stay as they were', (t) => {
  const dir = tempDir(t);
  const folders = subsetFolders(ADVERSARIAL);
  assert.equal(folders.size, new Set(ADVERSARIAL).size);
  for (const [name, folder] of folders) {
    assert.equal(windowsProblem(folder), null, `${JSON.stringify(name)} -> ${JSON.stringify(folder)}: ${windowsProblem(folder)}`);
    assert.ok(Buffer.byteLength(folder) <= 64, `${folder}: ${Buffer.byteLength(folder)} bytes`);
    mkdirSync(path.join(dir, folder));
  }
  assert.equal(new Set([...folders.values()].map((folder) => folder.toLowerCase())).size, folders.size);
  for (const kept of ['console', 'connect', 'aux_', '進撃の巨人', 'é', 'Ünïcödé', 'ᚠᛇᚻ', 'PORTRAIT', '_', '-']) assert.equal(folders.get(kept), kept, kept);
  assert.deepEqual(['Portrait', 'portrait'].map((name) => folders.get(name)), ['Portrait-2', 'portrait-3'], 'the export tells names differing in case apart by a count, in sorted order');
  for (const renamed of ['con', 'CON', 'nul', 'LPT¹', 'com²']) assert.equal(folders.get(renamed), `${renamed}-${nameDigest(renamed)}`);
  assert.equal(folders.get('nul.txt'), `nul_txt-${nameDigest('nul.txt')}`);
  assert.equal(folders.get('é'.repeat(200)), `${'é'.repeat(27)}-${nameDigest('é'.repeat(200))}`, 'cut to whole characters: 27 two-byte é in 55 bytes');
});

test('safeFolderName on its own: the fallback for a name with nothing left, whole code points when cut, and the digest of the name as given', () => {
  const rules = { clean: (name: string) => name.replace(/[^a-z]/g, ''), maxBytes: 20, fallback: 'empty' };
  assert.equal(safeFolderName('abc', rules), 'abc');
  assert.equal(safeFolderName('123', rules), `empty-${nameDigest('123')}`);
  assert.equal(safeFolderName('ABC', { ...rules, clean: (name: string) => name }), 'ABC', 'upper case is kept unless lowerCaseOnly');
  assert.equal(safeFolderName('ABC', { ...rules, clean: (name: string) => name, lowerCaseOnly: true }), `ABC-${nameDigest('ABC')}`);
  assert.equal(cutToBytes('a😀b', 4), 'a', 'a four-byte character is not split');
  assert.equal(cutToBytes('a😀b', 5), 'a😀');
  assert.equal(nameDigest('e\u0301') === nameDigest('é'), false, 'NFD and NFC are different names');
});
